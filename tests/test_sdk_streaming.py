"""Streams pass through live, keep the SDK's own type, and are recorded once, whole: reassembled
output, time to first token, real usage; cancelled or failed streams with what arrived."""

from __future__ import annotations

import asyncio
import threading
import time

import openai
import pytest

import llmtap
from llmtap.fake_provider import FakeProvider

from ._clients import Caller, make_caller
from .conftest import Project

USER = "user"


def chat_stream(tapped: Caller, text: str, **kwargs: object) -> object:
    return tapped.call(
        "chat.completions.create",
        model="m",
        messages=[{"role": USER, "content": text}],
        stream=True,
        **kwargs,
    )


def test_chat_stream_is_the_sdks_own_and_recorded_whole(
    tapped: Caller, provider: FakeProvider
) -> None:
    stream = chat_stream(tapped, "one two three four five six [[chunks:3]]")
    assert isinstance(stream, openai.AsyncStream if tapped.is_async else openai.Stream)
    chunks = tapped.read(stream)
    # The caller did not ask for usage: llmtap did, and hid the usage chunk from the caller.
    assert provider.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "echo: one two three four five six"
    key = chunks[0].model_extra["llmtap_feedback_key"]

    event = tapped.only_event()
    assert event["status"] == "ok"
    assert event["output_text"] == text
    assert event["request"]["stream"] is True
    assert "stream_options" not in event["request"]  # what the caller asked, not what we added
    assert event["response"]["choices"][0]["finish_reason"] == "stop"
    assert event["usage"]["input_tokens"] == 7
    assert event["usage"]["output_tokens"] == 7
    assert event["usage"].get("estimated") in (None, False)
    assert 0 < event["ttft_ms"] <= event["latency_ms"]
    assert event["feedback_key"] == key


def test_usage_the_caller_asked_for_is_passed_through(tapped: Caller) -> None:
    chunks = tapped.read(chat_stream(tapped, "a b", stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 5
    assert tapped.only_event()["usage"]["total_tokens"] == 5


def test_stream_usage_setting_off(provider: FakeProvider, project: Project) -> None:
    caller = make_caller("sync", provider, project, stream_usage=False)
    try:
        caller.read(chat_stream(caller, "a b"))
        assert "stream_options" not in provider.requests[-1]["body"]
        event = caller.only_event()
        assert event["output_text"] == "echo: a b"
        # No usage from the provider: counted locally, and marked so.
        assert event["usage"]["estimated"] is True
        assert event["usage"]["output_tokens"] == len(["echo", ":", " a", " b"])
    finally:
        caller.shutdown()


def test_tool_calls_and_n_are_rebuilt_from_deltas(tapped: Caller) -> None:
    tapped.read(chat_stream(tapped, "weather? [[tool:get_weather]]", n=2))
    event = tapped.only_event()
    choices = event["response"]["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    for choice in choices:
        assert choice["finish_reason"] == "tool_calls"
        (call,) = choice["message"]["tool_calls"]
        assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
        assert call["id"].startswith("call_")


def test_completion_stream(tapped: Caller) -> None:
    stream = tapped.call("completions.create", model="m", prompt="say it twice", stream=True)
    text = "".join(c.choices[0].text for c in tapped.read(stream))
    event = tapped.only_event()
    assert event["api"] == "completion"
    assert event["output_text"] == text == "echo: say it twice"
    assert event["usage"]["total_tokens"] == 3 + 4


def test_first_chunk_reaches_the_caller_before_the_last_is_sent(
    project: Project,
) -> None:
    with FakeProvider(chunk_delay=0.15) as slow:
        for kind in ("sync", "async"):
            caller = make_caller(kind, slow, project)
            try:
                start = time.perf_counter()
                stream = chat_stream(caller, "a b c d e f [[chunks:6]]")
                first = caller.read(stream, limit=1)
                first_at = time.perf_counter() - start
                rest = caller.read(stream)
                last_at = time.perf_counter() - start
                caller.flush()
            finally:
                caller.shutdown()
            assert first and rest
            # A role chunk, 4 text chunks and the finish chunk, 0.15 s apart: the last is sent
            # 0.75 s after the first, which had reached the caller long before.
            assert first_at < 0.5, (kind, first_at)
            assert last_at - first_at > 0.7, (kind, first_at, last_at)


def test_break_then_close_is_cancelled_with_what_arrived(tapped: Caller) -> None:
    stream = chat_stream(tapped, "w1 w2 w3 w4 w5 w6 w7 w8 [[chunks:4]]")
    got = tapped.read(stream, limit=3)
    tapped.close(stream)
    tapped.collect_garbage()
    event = tapped.only_event()
    assert event["status"] == "cancelled"
    arrived = "".join(c.choices[0].delta.content or "" for c in got)
    assert event["output_text"] == arrived == "echo: w1 w2 w3 w4 w5"  # 2 of 3 text chunks
    assert event["latency_ms"] >= event["ttft_ms"] > 0


def test_abandoned_stream_is_recorded_when_collected(tapped: Caller) -> None:
    stream = chat_stream(tapped, "w1 w2 w3 w4 [[chunks:4]]")
    tapped.read(stream, limit=2)
    del stream
    tapped.collect_garbage()
    never_read = chat_stream(tapped, "never read")
    del never_read
    tapped.collect_garbage()
    events = tapped.events()
    assert [e["status"] for e in events] == ["cancelled", "cancelled"]
    assert events[1]["output_text"] == "echo: w1"  # the first of 3 text chunks
    assert events[0]["ttft_ms"] is None  # nothing was read


def test_with_block_left_early(tapped: Caller) -> None:
    stream = chat_stream(tapped, "w1 w2 w3 w4 [[chunks:4]]")
    if tapped.is_async:

        async def use() -> None:
            async with stream:
                async for _ in stream:
                    break

        tapped.run(use())
    else:
        with stream:
            for _ in stream:
                break
    assert tapped.only_event()["status"] == "cancelled"


@pytest.mark.parametrize("directive", ["fail", "drop"])
def test_failure_midway_is_recorded_and_reraised(tapped: Caller, directive: str) -> None:
    stream = chat_stream(tapped, f"w1 w2 w3 w4 w5 w6 [[chunks:6]] [[{directive}]]")
    expected = openai.APIError if directive == "fail" else openai.APIConnectionError
    got: list[object] = []
    with pytest.raises(expected) as raised:
        if tapped.is_async:

            async def read() -> None:
                async for chunk in stream:
                    got.append(chunk)

            tapped.run(read())
        else:
            for chunk in stream:
                got.append(chunk)
    assert got
    event = tapped.only_event()
    assert event["status"] == "error"
    assert event["error"]["type"] == type(raised.value).__name__
    assert event["output_text"].startswith("echo: w1")
    assert event["latency_ms"] > 0


def test_error_raised_in_the_callers_loop_is_cancelled_not_lost(tapped: Caller) -> None:
    stream = chat_stream(tapped, "w1 w2 w3 w4 [[chunks:4]]")
    with pytest.raises(KeyError):
        if tapped.is_async:

            async def use() -> None:
                async with stream:
                    async for _ in stream:
                        raise KeyError("caller's own bug")

            tapped.run(use())
        else:
            with stream:
                for _ in stream:
                    raise KeyError("caller's own bug")
    assert tapped.only_event()["status"] == "cancelled"


def test_stream_helper_with_llmtap_params(tapped: Caller) -> None:
    manager = tapped.method("chat.completions.stream")(
        model="m",
        messages=[{"role": USER, "content": "helper"}],
        llmtap={"prompt_template_name": "helper"},
    )
    if tapped.is_async:

        async def use() -> str | None:
            async with manager as stream:
                async for _ in stream:
                    pass
                final = await stream.get_final_completion()
            return final.choices[0].message.content

        content = tapped.run(use())
    else:
        with manager as stream:
            for _ in stream:
                pass
            content = stream.get_final_completion().choices[0].message.content
    assert content == "echo: helper"
    event = tapped.only_event()
    assert event["prompt_template_name"] == "helper"
    assert event["output_text"] == "echo: helper"
    assert event["usage"]["total_tokens"] > 0


def test_a_stream_read_from_two_threads_is_recorded_once(
    provider: FakeProvider, project: Project
) -> None:
    caller = make_caller("sync", provider, project)
    try:
        stream = chat_stream(caller, "w1 w2 w3 w4 w5 w6 w7 w8 [[chunks:8]]")
        caller.read(stream, limit=2)
        threads = [threading.Thread(target=stream.close) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        del stream
        caller.collect_garbage()
        assert [e["status"] for e in caller.events()] == ["cancelled"]
    finally:
        caller.shutdown()


def test_async_stream_used_across_tasks(provider: FakeProvider, project: Project) -> None:
    async def main() -> list[str]:
        async with llmtap.AsyncClient(
            api_key="sk",
            base_url=provider.base_url,
            llmtap={"api_key": project.key, "url": project.server.url},
        ) as client:

            async def one(i: int) -> str:
                stream = await client.chat.completions.create(
                    model="m", messages=[{"role": USER, "content": f"task {i}"}], stream=True
                )
                return "".join([c.choices[0].delta.content or "" async for c in stream])

            return await asyncio.gather(*(one(i) for i in range(5)))

    texts = asyncio.run(main())
    events = project.events()
    assert sorted(e["output_text"] for e in events) == sorted(texts)
    assert all(e["status"] == "ok" for e in events)


@pytest.mark.parametrize("stream", [True, False])
def test_cached_and_reasoning_tokens_are_kept_apart(tapped: Caller, stream: bool) -> None:
    text = "think hard [[cached:2]] [[reasoning:1]]"
    chat = tapped.call(
        "chat.completions.create",
        model="m",
        messages=[{"role": USER, "content": text}],
        stream=stream,
    )
    answer = tapped.call("responses.create", model="m", input=text, stream=stream)
    for result in (chat, answer):
        if stream:
            tapped.read(result)
    events = tapped.events()
    assert sorted(e["api"] for e in events) == ["chat", "responses"]
    for event in events:
        usage = event["usage"]
        assert (usage["cached_tokens"], usage["reasoning_tokens"]) == (2, 1), event["api"]
        assert usage["input_tokens"] > 2 and usage["output_tokens"] > 1
