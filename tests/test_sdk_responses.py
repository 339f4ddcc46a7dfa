"""The Responses API, sync and async: create, parse, tool calls, streams and their failures."""

from __future__ import annotations

import pydantic

from ._clients import Caller


def test_create(tapped: Caller) -> None:
    out = tapped.call("responses.create", model="m", input="hello there", instructions="be brief")
    assert out.output_text == "echo: hello there"
    event = tapped.only_event()
    assert event["api"] == "responses"
    assert event["output_text"] == "echo: hello there"
    assert event["request"]["instructions"] == "be brief"
    assert event["usage"]["input_tokens"] == 2 and event["usage"]["output_tokens"] == 3
    assert event["feedback_key"] == out.model_extra["llmtap_feedback_key"]


def test_tool_call(tapped: Caller) -> None:
    tapped.call("responses.create", model="m", input="weather? [[tool:get_weather]]")
    (item,) = tapped.only_event()["response"]["output"]
    assert item["type"] == "function_call"
    assert item["name"] == "get_weather"


class Answer(pydantic.BaseModel):
    value: int


def test_parse(tapped: Caller) -> None:
    out = tapped.call(
        "responses.parse", model="m", input='[[reply:{"value": 42}]]', text_format=Answer
    )
    assert out.output_parsed == Answer(value=42)
    assert tapped.only_event()["output_text"] == '{"value": 42}'


def test_stream_true(tapped: Caller) -> None:
    stream = tapped.call("responses.create", model="m", input="a b c d", stream=True)
    deltas = [e.delta for e in tapped.read(stream) if e.type == "response.output_text.delta"]
    event = tapped.only_event()
    assert event["output_text"] == "".join(deltas) == "echo: a b c d"
    assert event["usage"]["total_tokens"] == 4 + 5
    assert event["ttft_ms"] > 0


def test_stream_helper_with_tool_call(tapped: Caller) -> None:
    manager = tapped.method("responses.stream")(
        model="m", input="[[tool:lookup]]", llmtap={"prompt_template_name": "look"}
    )
    name = tapped.within(manager, lambda stream: stream.get_final_response()).output[0].name
    assert name == "lookup"
    event = tapped.only_event()
    assert event["prompt_template_name"] == "look"
    assert event["response"]["output"][0]["arguments"] == '{"city": "Paris"}'


def test_stream_cancelled_keeps_partial_output(tapped: Caller) -> None:
    stream = tapped.call(
        "responses.create", model="m", input="w1 w2 w3 w4 [[chunks:4]]", stream=True
    )
    got = tapped.read(stream, limit=5)
    tapped.close(stream)
    deltas = "".join(e.delta for e in got if e.type == "response.output_text.delta")
    event = tapped.only_event()
    assert event["status"] == "cancelled"
    assert deltas and event["output_text"] == deltas


def test_stream_failed_response_is_an_error(tapped: Caller) -> None:
    stream = tapped.call("responses.create", model="m", input="w1 w2 w3 [[fail]]", stream=True)
    events = tapped.read(stream)
    assert events[-1].type == "response.failed"
    event = tapped.only_event()
    assert event["status"] == "error"
    assert event["error"]["message"] == "fake provider failed midway"
