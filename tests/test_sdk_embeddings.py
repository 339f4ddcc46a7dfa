"""Embeddings, sync and async: recorded without their vectors."""

from __future__ import annotations

from ._clients import Caller


def test_embeddings(tapped: Caller) -> None:
    out = tapped.call("embeddings.create", model="text-embedding-3-small", input=["a b", "c"])
    assert len(out.data) == 2
    event = tapped.only_event()
    assert event["api"] == "embeddings"
    assert event["request"]["input"] == ["a b", "c"]
    assert event["usage"]["input_tokens"] == 3
    assert event["output_text"] is None
    assert len(event["response"]["data"]) == 2


def test_long_vectors_are_not_stored(tapped: Caller) -> None:
    raw = tapped.call("embeddings.with_raw_response.create", model="e", input="x", dimensions=64)
    assert len(raw.parse().data[0].embedding) == 64
    (item,) = tapped.only_event()["response"]["data"]
    assert item["embedding"] == "[64 floats omitted by llmtap]"
