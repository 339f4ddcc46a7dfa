"""Timings are checked against known delays: a provider that waits a known time before the first
chunk and between chunks, for every kind of stream, sync and async."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ._clients import Caller

FIRST, GAP = 0.3, 0.15  # seconds before the first chunk, and between chunks
# A loaded 2-core machine may be late by this much; still far from the last chunk's time.
SLACK = 0.25
DIRECTIVES = f"[[first:{FIRST}]] [[gap:{GAP}]] [[chunks:4]]"


def prompt(api: str, directives: str = DIRECTIVES) -> dict[str, Any]:
    text = f"one two three four five six seven {directives}"
    if api == "chat.completions.create":
        return {"messages": [{"role": "user", "content": text}]}
    if api == "completions.create":
        return {"prompt": text}
    return {"input": text}


@pytest.mark.parametrize(
    "api", ["chat.completions.create", "completions.create", "responses.create"]
)
def test_ttft_and_latency_of_a_stream_match_the_providers_delays(tapped: Caller, api: str) -> None:
    # The first stream of a kind costs openai a model build per event type (100s of ms on a
    # loaded machine), which the timed stream must not pay.
    tapped.read(tapped.call(api, model="m", stream=True, **prompt(api, "")))
    start = time.perf_counter()
    stream = tapped.call(
        api, model="m", stream=True, llmtap={"prompt_template_name": "timed"}, **prompt(api)
    )
    first = tapped.read(stream, limit=1)
    first_at = time.perf_counter() - start
    rest = tapped.read(stream)
    end_at = time.perf_counter() - start
    chunks = len(first) + len(rest)
    assert chunks >= 4, chunks

    event = tapped.only_event(prompt_template_name="timed")
    ttft, latency = event["ttft_ms"] / 1000, event["latency_ms"] / 1000
    # The first chunk came FIRST seconds after the headers, and reached the caller after the
    # SDK saw it; the last came GAP seconds apart from each other after it.
    assert FIRST <= ttft <= min(first_at, FIRST + SLACK), (ttft, first_at)
    sent_over = FIRST + GAP * (chunks - 1)
    assert sent_over <= latency <= end_at, (latency, sent_over, end_at)
