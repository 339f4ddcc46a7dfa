"""Chat completions, sync and async: tools, n > 1, media parts, structured outputs, raw and
streaming-response variants, failures."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import openai
import pydantic
import pytest

from llmtap.fake_provider import FakeProvider

from ._clients import Caller, make_caller
from .conftest import Project

IMAGE = base64.b64encode(bytes(range(256)) * 40).decode()  # 10,240 bytes


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_tool_calls_and_n(tapped: Caller) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    out = tapped.call(
        "chat.completions.create",
        model="m",
        messages=ask("weather [[tool:get_weather]]"),
        tools=tools,
        n=2,
    )
    assert len(out.choices) == 2
    event = tapped.only_event()
    assert event["request"]["tools"] == tools
    assert event["request"]["n"] == 2
    calls = [
        c["message"]["tool_calls"][0]["function"]["name"] for c in event["response"]["choices"]
    ]
    assert calls == ["get_weather", "get_weather"]
    assert event["output_text"] is None


def test_media_parts_are_kept_as_references(tapped: Caller, provider: FakeProvider) -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}},
        {"type": "input_audio", "input_audio": {"data": IMAGE, "format": "wav"}},
    ]
    tapped.call(
        "chat.completions.create", model="m", messages=[{"role": "user", "content": content}]
    )
    sent = provider.requests[-1]["body"]["messages"][0]["content"]
    assert sent[1]["image_url"]["url"].endswith(IMAGE)  # the provider got it all
    parts = tapped.only_event()["request"]["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "what is this?"}
    image, audio = parts[1]["image_url"]["url"], parts[2]["input_audio"]["data"]
    # The hash names the bytes (of the base64 text as sent), so two calls with the same image
    # can be told to carry the same one.
    digest = hashlib.sha256(IMAGE.encode()).hexdigest()[:16]
    assert image == f"[llmtap: image/png 10240 bytes omitted, sha256:{digest}]"
    assert audio == f"[llmtap: 10240 bytes omitted, sha256:{digest}]"
    assert parts[2]["input_audio"]["format"] == "wav"


def test_an_answer_holding_half_a_surrogate_pair_is_recorded(
    tapped: Caller, provider: FakeProvider
) -> None:
    """A provider's JSON may escape half of a UTF-16 pair, which no UTF-8 text holds: the
    caller gets the answer as sent, and the call is recorded with the half replaced, not lost."""
    provider.script({"half a pair": "\ud83c ok"})
    out = tapped.call("chat.completions.create", model="m", messages=ask("half a pair"))
    assert out.choices[0].message.content == "\ud83c ok"
    event = tapped.only_event()
    assert event["output_text"] == "? ok"
    assert event["response"]["choices"][0]["message"]["content"] == "? ok"


class Emoji(pydantic.BaseModel):
    emoji: str


def test_parse_structured_output(tapped: Caller) -> None:
    out = tapped.call(
        "chat.completions.parse",
        model="m",
        messages=ask('[[reply:{"emoji": "⚽"}]]'),
        response_format=Emoji,
        llmtap={"prompt_template_name": "structured"},
    )
    assert out.choices[0].message.parsed == Emoji(emoji="⚽")
    event = tapped.only_event()
    assert event["prompt_template_name"] == "structured"
    assert event["feedback_key"] == out.model_extra["llmtap_feedback_key"]
    assert event["response"]["choices"][0]["message"]["parsed"] == {"emoji": "⚽"}
    assert event["request"]["response_format"]["json_schema"]["schema"]["properties"]["emoji"]


def test_with_raw_response(tapped: Caller) -> None:
    raw = tapped.call(
        "chat.completions.with_raw_response.create", model="m", messages=ask("raw one")
    )
    assert raw.headers["content-type"] == "application/json"
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: raw one"
    event = tapped.only_event()
    assert event["output_text"] == "echo: raw one"
    assert event["feedback_key"] == completion.model_extra["llmtap_feedback_key"]


def test_with_raw_response_stream(tapped: Caller) -> None:
    raw = tapped.call(
        "chat.completions.with_raw_response.create", model="m", messages=ask("raw s"), stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in tapped.read(raw.parse()))
    event = tapped.only_event()
    assert event["output_text"] == text == "echo: raw s"
    assert event["usage"]["total_tokens"] > 0


def test_with_streaming_response(tapped: Caller) -> None:
    manager = tapped.method("chat.completions.with_streaming_response.create")(
        model="m", messages=ask("streamed body")
    )
    content = tapped.within(manager, lambda response: response.parse()).choices[0].message.content
    assert content == "echo: streamed body"
    assert tapped.only_event()["output_text"] == "echo: streamed body"


def test_with_streaming_response_read_as_json(tapped: Caller) -> None:
    manager = tapped.method("chat.completions.with_streaming_response.create")(
        model="m", messages=ask("as json")
    )
    body = tapped.within(manager, lambda response: response.json())
    assert body["choices"][0]["message"]["content"] == "echo: as json"
    assert tapped.only_event()["output_text"] == "echo: as json"


def test_status_error_recorded_and_reraised(tapped: Caller) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        tapped.call("chat.completions.create", model="m", messages=ask("[[status:503]]"))
    assert raised.value.status_code == 503
    event = tapped.only_event()
    assert event["status"] == "error"
    assert event["error"]["type"] == "InternalServerError"
    assert event["error"]["message"] == str(raised.value)
    assert event["error"]["status_code"] == 503


def test_timeout_recorded_and_reraised(tapped: Caller) -> None:
    with pytest.raises(openai.APITimeoutError):
        tapped.call("chat.completions.create", model="m", messages=ask("[[delay:1]]"), timeout=0.2)
    event = tapped.only_event()
    assert event["error"]["type"] == "APITimeoutError"
    assert 150 < event["latency_ms"] < 1000


def test_an_async_call_cancelled_while_it_waits_is_recorded_as_cancelled(
    provider: FakeProvider, project: Project
) -> None:
    """A web request that goes away cancels its task: the call is kept, with how long it
    waited, as cancelled (not as an error), and the cancellation reaches the caller."""
    caller = make_caller("async", provider, project)

    async def cancelled() -> None:
        call = caller.client.chat.completions.create(model="m", messages=ask("[[delay:2]] hi"))
        task = asyncio.ensure_future(call)
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    caller.run(cancelled())
    event = caller.only_event()
    assert event["status"] == "cancelled" and event["error"]["type"] == "CancelledError"
    assert 250 < event["latency_ms"] < 1500 and event["output_text"] is None
    caller.shutdown()
