"""Streams with no network: a canned answer through httpx's MockTransport, so that the
caller's thread CPU per stream is all parsing and recording, and llmtap's share of it shows
above the noise of a loaded machine (no scheduling of other processes between chunks)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai

import llmtap

from ._harness import Server

CONTENT = ["one", " two", " three", " four", " five"]
# What the caller sees: a role chunk, the content chunks, a finish chunk.
CHUNKS = len(CONTENT) + 2


def _body(include_usage: bool) -> bytes:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    deltas: list[tuple[dict[str, Any], str | None]] = [({"role": "assistant", "content": ""}, None)]
    deltas += [({"content": piece}, None) for piece in CONTENT]
    deltas.append(({}, "stop"))
    chunks = [
        {**base, "choices": [{"index": 0, "delta": d, "finish_reason": f}]} for d, f in deltas
    ]
    if include_usage:
        usage = {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}
        chunks.append({**base, "choices": [], "usage": usage})
    events = [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]
    return "".join(events).encode()


_BODIES = {flag: _body(flag) for flag in (False, True)}


def _answer(request: httpx2.Request) -> httpx2.Response:
    options = json.loads(request.content).get("stream_options") or {}
    body = _BODIES[bool(options.get("include_usage"))]
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def canned_pair(server: Server) -> tuple[openai.OpenAI, llmtap.Client]:
    """(plain ``openai.OpenAI``, ``llmtap.Client`` delivering to ``server``), both answered
    in-process by the same canned stream."""
    common: dict[str, Any] = {"api_key": "sk-bench", "base_url": "http://canned/v1"}
    plain = openai.OpenAI(
        **common, http_client=httpx2.Client(transport=httpx2.MockTransport(_answer))
    )
    tapped = llmtap.Client(
        **common,
        http_client=httpx2.Client(transport=httpx2.MockTransport(_answer)),
        llmtap={"url": server.url, "api_key": server.key},
    )
    return plain, tapped
