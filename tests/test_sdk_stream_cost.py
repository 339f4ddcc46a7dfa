"""Issue 21: what recording a stream may cost the caller. The usage chunk llmtap asks for is
read before openai builds a model of it, the request for it costs openai no argument checking,
and a stream is recorded once, however it ends."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from llmtap.fake_provider import FakeProvider

from ._clients import Caller
from .test_sdk_streaming import chat_stream


def _count_models(tapped: Caller) -> list[int]:
    """How many models openai builds from response data on this client from now on (a
    wrapper around openai's own method on this one client instance; llmtap untouched)."""
    built = [0]
    build = tapped.client._process_response_data

    def counted(**kwargs: Any) -> Any:
        built[0] += 1
        return build(**kwargs)

    tapped.client._process_response_data = counted
    return built


def test_the_hidden_usage_chunk_is_never_built_into_a_model(
    tapped: Caller, provider: FakeProvider
) -> None:
    built = _count_models(tapped)
    chunks = tapped.read(chat_stream(tapped, "one two three four five six [[chunks:3]]"))
    assert provider.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks)
    assert built[0] == len(chunks)  # one model per chunk the caller sees, none for usage
    event = tapped.only_event()
    assert event["usage"]["input_tokens"] == 7
    assert event["usage"]["output_tokens"] == 7
    assert event["usage"]["total_tokens"] == 14
    assert event["output_text"] == "echo: one two three four five six"


def test_the_callers_extra_body_is_kept_beside_the_usage_request(
    tapped: Caller, provider: FakeProvider
) -> None:
    extra = {"metadata_tag": "kept"}
    chunks = tapped.read(chat_stream(tapped, "a b", extra_body=extra))
    body = provider.requests[-1]["body"]
    assert body["metadata_tag"] == "kept"
    assert body["stream_options"] == {"include_usage": True}
    assert extra == {"metadata_tag": "kept"}  # the caller's dict is not changed
    assert all(c.choices for c in chunks)
    event = tapped.only_event()
    assert event["usage"]["total_tokens"] == 5
    assert "stream_options" not in event["request"]


def test_stream_options_in_the_callers_extra_body_are_theirs(
    tapped: Caller, provider: FakeProvider
) -> None:
    extra = {"stream_options": {"include_usage": True}}
    chunks = tapped.read(chat_stream(tapped, "a b", extra_body=extra))
    assert provider.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    # Asked for by the caller: it reaches the caller, as openai gives it.
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 5
    assert tapped.only_event()["usage"]["total_tokens"] == 5


def test_a_chunk_that_mentions_empty_lists_is_not_mistaken_for_usage(tapped: Caller) -> None:
    chunks = tapped.read(chat_stream(tapped, 'choices [] "choices":[] usage'))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == 'echo: choices [] "choices":[] usage'
    event = tapped.only_event()
    assert event["output_text"] == text
    assert event["usage"]["output_tokens"] > 0


def test_every_way_a_stream_ends_is_recorded_once(tapped: Caller) -> None:
    """openai's own closing of the response (and httpx's again, when openai's byte iterator
    is collected) is not a cancel; the caller's is."""
    tapped.call("chat.completions.create", model="m", messages=[{"role": "user", "content": "a"}])
    tapped.read(chat_stream(tapped, "read to the end"))
    tapped.read(chat_stream(tapped, "w1 w2 w3 w4 [[chunks:4]]"), limit=1)  # abandoned
    stream = chat_stream(tapped, "never read")
    del stream
    tapped.collect_garbage()
    with pytest.raises(openai.APIError):
        tapped.read(chat_stream(tapped, "w1 w2 w3 [[chunks:3]] [[fail]]"))
    tapped.collect_garbage()
    statuses = sorted(e["status"] for e in tapped.events())
    assert statuses == ["cancelled", "cancelled", "error", "ok", "ok"]


def test_a_raw_stream_is_the_providers_own(tapped: Caller, provider: FakeProvider) -> None:
    """Read raw (``with_streaming_response``), a stream reaches the caller as the provider
    sent it: no usage chunk llmtap asked for among its lines."""
    messages = [{"role": "user", "content": "raw one two [[chunks:2]]"}]
    raw = tapped.client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=messages, stream=True
    )

    def lines_of(response: Any) -> Any:
        if not tapped.is_async:
            return list(response.iter_lines())

        async def collect() -> list[str]:
            return [line async for line in response.iter_lines()]

        return collect()

    lines = tapped.within(raw, lines_of)
    assert "stream_options" not in provider.requests[-1]["body"]
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert chunks and all(c["choices"] for c in chunks)


def test_credentials_in_the_query_and_the_body_are_not_recorded(
    tapped: Caller, provider: FakeProvider
) -> None:
    """``extra_query`` steers the request (a SAS token rides there); in ``extra_body``, what
    secret-named fields hold (Azure's data sources' ``authentication``) is recorded hidden."""
    secret_body = {
        "data_sources": [{"type": "search", "parameters": {"authentication": {"key": "SKEY-1"}}}],
        "top_k": 3,
    }
    tapped.call(
        "chat.completions.create",
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        extra_query={"sig": "SAS-TOKEN-1"},
        extra_body=secret_body,
    )
    assert provider.requests[-1]["body"]["data_sources"] == secret_body["data_sources"]
    event = tapped.only_event()
    recorded = json.dumps(event["request"])
    assert "SAS-TOKEN-1" not in recorded and "SKEY-1" not in recorded
    assert event["request"]["extra_body"]["top_k"] == 3
    assert event["request"]["extra_body"]["data_sources"][0]["parameters"] == {
        "authentication": "[hidden]"
    }
