"""Anthropic's Messages API (``POST /v1/messages``) for the fake provider: a reply, a tool
use or an error, streamed as Anthropic streams (``message_start``, content blocks with their
deltas, ``message_delta`` with the usage, ``message_stop``) or not. The same directives as
the OpenAI routes steer it (see ``fake_provider``); only the shapes differ."""

from __future__ import annotations

import json
import uuid
from typing import Any, Protocol

__all__ = ["AnthropicRoutes", "count"]


class _Sender(Protocol):
    def _send_json(self, status: int, payload: Any) -> None: ...

    def _stream(
        self,
        events: list[Any],
        directives: dict[str, Any],
        trailing: int = 0,
        done: bool = True,
    ) -> None: ...

    @staticmethod
    def _pieces(reply: str, directives: dict[str, str | None]) -> list[str]: ...


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def count(directives: dict[str, Any], name: str) -> int:
    """The token count a directive like ``[[cached:2]]`` asks for; 0 when absent or not a
    number."""
    value = directives.get(name) or ""
    return int(value) if value.isdigit() else 0


class AnthropicRoutes:
    """Mixed into the fake provider's request handler."""

    def _messages(
        self: _Sender, body: dict[str, Any], reply: str, prompt: str, d: dict[str, Any]
    ) -> None:
        system = body.get("system")
        system_text = system if isinstance(system, str) else ""
        # Anthropic counts the prompt's tokens read from and written to its cache apart from
        # its input_tokens.
        prompt_tokens = _tokens(f"{system_text} {prompt}")
        read = min(count(d, "cached"), prompt_tokens)
        written = min(count(d, "cache_write"), prompt_tokens - read)
        usage = {
            "input_tokens": prompt_tokens - read - written,
            "output_tokens": _tokens(reply),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
        }
        tool = d.get("tool")
        block: dict[str, Any]
        if tool:
            arguments = {"city": "Paris"}
            block = {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:12], "name": tool}
            stop = "tool_use"
        else:
            block, stop = {"type": "text", "text": reply}, "end_turn"
        message = {
            "id": "msg_" + uuid.uuid4().hex[:12],
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "fake"),
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            content = {**block, "input": arguments} if tool else block
            self._send_json(200, {**message, "content": [content]})
            return
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {**usage, "output_tokens": 1},
        }
        events: list[Any] = [("message_start", {"type": "message_start", "message": start})]
        opened = {**block, "input": {}} if tool else {**block, "text": ""}
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": opened},
            )
        )
        if tool:
            text = json.dumps(arguments)
            half = len(text) // 2
            deltas = [
                {"type": "input_json_delta", "partial_json": p} for p in (text[:half], text[half:])
            ]
        else:
            deltas = [{"type": "text_delta", "text": p} for p in self._pieces(reply, d)]
        events += [
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
            for delta in deltas
        ]
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        self._stream(events, d, done=False)
