"""Legacy completions, sync and async."""

from __future__ import annotations

import llmtap

from ._clients import Caller


def test_create_with_template(tapped: Caller) -> None:
    out = tapped.call(
        "completions.create",
        model="m",
        prompt=llmtap.TemplateText("Hi {name}", {"name": "Ada"}),
        max_tokens=5,
    )
    assert out.choices[0].text == "echo: Hi Ada"
    event = tapped.only_event()
    assert event["api"] == "completion"
    assert event["template_text"] == "Hi {name}"
    assert event["output_text"] == "echo: Hi Ada"
    assert event["usage"]["total_tokens"] == 2 + 3


def test_raw_response(tapped: Caller) -> None:
    raw = tapped.call("completions.with_raw_response.create", model="m", prompt="raw")
    assert raw.parse().choices[0].text == "echo: raw"
    assert tapped.only_event()["output_text"] == "echo: raw"


def test_no_usage_is_estimated(tapped: Caller) -> None:
    tapped.call("completions.create", model="gpt-3.5-turbo-instruct", prompt="one two [[nousage]]")
    usage = tapped.only_event()["usage"]
    assert usage["estimated"] is True
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0


def test_an_estimate_counts_the_tools_offered_and_the_calls_made(tapped: Caller) -> None:
    """A streamed answer that is a tool call, with no usage reported: its arguments are the
    answer's output tokens, and the tools' definitions count in the input."""
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather now in a city of the world, by its name",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    plain = [{"role": "user", "content": "Paris? [[nousage]]"}]
    tapped.call("chat.completions.create", model="gpt-4o-mini", messages=plain)
    prompt = [{"role": "user", "content": "Paris? [[nousage]] [[tool:get_weather]]"}]
    stream = tapped.call(
        "chat.completions.create", model="gpt-4o-mini", messages=prompt, tools=[tool], stream=True
    )
    tapped.read(stream)
    events = {bool(e["request"].get("tools")): e["usage"] for e in tapped.events()}
    without, usage = events[False], events[True]
    assert usage["estimated"] is True
    assert usage["output_tokens"] >= 5  # the call's name and arguments
    assert usage["input_tokens"] > without["input_tokens"] + 20  # the tool's definition
