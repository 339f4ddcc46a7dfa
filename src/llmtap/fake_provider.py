"""A small OpenAI-compatible HTTP server for tests, benchmarks and ``llmtap demo``.

It answers ``/v1/chat/completions``, ``/v1/completions``, ``/v1/responses`` and
``/v1/embeddings``, and Anthropic's ``/v1/messages`` (see ``_fake_anthropic``), streamed or
not, with a reply made from the prompt, so no provider key and no network are needed. The
last user message steers it with directives:

- ``[[status:429]]``: answer with that HTTP error (an OpenAI-shaped error body);
- ``[[delay:0.2]]``: wait that many seconds before answering;
- ``[[first:0.3]]``, ``[[gap:0.1]]``: in a stream, wait that many seconds after the response's
  headers before the first chunk, and between chunks (``gap`` overrides ``chunk_delay``): a
  known time to first token and a known duration;
- ``[[tool:get_weather]]``: answer with a call of that tool;
- ``[[reply:some text]]``: answer with exactly that text;
- ``[[chunks:5]]``: split a streamed reply into that many chunks; ``[[drop]]``: end a stream
  midway by closing the connection; ``[[fail]]``: send an error event midway through a stream;
- ``[[nousage]]``: report no token usage; ``[[cached:N]]``, ``[[reasoning:N]]``: report N of
  the input tokens as cached, N of the output tokens as reasoning; ``[[cache_write:N]]`` (the
  Messages API): N of the input tokens as written to the prompt cache.

Scripted answers stage a change of behaviour without touching prompts: ``script({"Emoji for
soccer": "⚽"})`` (or ``--script FILE.json``) answers any prompt containing that text with
that reply (the first match in the order given, over the whole prompt); a later call may
change the script, so a test can make a new template revision answer worse than the old.

Azure's paths (``/openai/deployments/NAME/...``) answer as Azure does: the model a
deployment runs (``AZURE_MODEL``), not the name the request gave, and a stream that opens
with the prompt filter's chunk (no choices, its id and model blank, created 0).

Run it alone with ``python -m llmtap.fake_provider --port 8001``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._fake_anthropic import AnthropicRoutes, count

__all__ = ["AZURE_MODEL", "FakeProvider"]

_AZURE_PREFIX = re.compile(r"^/openai/deployments/[^/]+")
AZURE_MODEL = "gpt-4o-2024-08-06"
_AZURE_FILTER_CHUNK = {
    "id": "",
    "object": "",
    "created": 0,
    "model": "",
    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
    "choices": [],
}
_DIRECTIVE = re.compile(r"\[\[(\w+)(?::([^\]]*))?\]\]")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and "text" in p)
    return ""


def _prompt_text(body: dict[str, Any]) -> tuple[str, str]:
    """(the text directives are read from, all the prompt's text)"""
    if "messages" in body:
        texts = [_text_of(m.get("content")) for m in body["messages"] if isinstance(m, dict)]
        users = [
            _text_of(m.get("content"))
            for m in body["messages"]
            if isinstance(m, dict) and m.get("role") == "user"
        ]
        return (users[-1] if users else ""), " ".join(texts)
    prompt = body.get("prompt", body.get("input", ""))
    if isinstance(prompt, list):
        prompt = " ".join(
            _text_of(p.get("content")) if isinstance(p, dict) else str(p) for p in prompt
        )
    return str(prompt), str(prompt)


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


class _Handler(AnthropicRoutes, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body in one segment, and no Nagle: else keep-alive requests stall ~40 ms on
    # delayed ACKs, and benchmarks would measure that instead of the client.
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024
    server: _Server
    azure = False  # the request came by an Azure deployment's path

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def handle(self) -> None:
        # A client that stops reading a stream hangs up on us: that is a test, not a failure.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            super().handle()

    def finish(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            super().finish()

    # -- plumbing ----------------------------------------------------------------------

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        kind = {
            400: "invalid_request_error",
            401: "authentication_error",
            429: "rate_limit_exceeded",
        }.get(status, "server_error")
        self._send_json(status, {"error": {"message": message, "type": kind, "code": kind}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._error(400, "malformed JSON")
            return
        self.server.requests.append({"path": self.path, "body": body})
        # OpenAI's paths, with or without /v1, and Azure's (/openai/deployments/NAME/...).
        path = self.path.split("?")[0].removeprefix("/v1")
        self.azure = _AZURE_PREFIX.match(path) is not None
        path = _AZURE_PREFIX.sub("", path)
        routes = {
            "/chat/completions": self._chat,
            "/completions": self._completion,
            "/responses": self._responses,
            "/embeddings": self._embeddings,
            "/messages": self._messages,
        }
        handler = routes.get(path)
        if handler is None:
            self._error(404, f"no route {self.path}")
            return
        directive_text, all_text = _prompt_text(body)
        directives = {m.group(1): m.group(2) for m in _DIRECTIVE.finditer(directive_text)}
        if "delay" in directives:
            time.sleep(float(directives["delay"] or 0))
        if "status" in directives:
            self._error(int(directives["status"] or 500), "fake provider error on request")
            return
        directives["fail_event"] = {
            "error": {"message": "fake provider failed midway", "type": "server_error"}
        }
        scripted = next((r for text, r in self.server.script if text in all_text), None)
        if scripted is not None and "reply" not in directives:
            directives["reply"] = scripted
        reply = directives.get("reply") or _DIRECTIVE.sub("", directive_text).strip()
        reply = reply if "reply" in directives else f"echo: {reply}"
        handler(body, reply, all_text, directives)

    def _stream(
        self, events: list[Any], directives: dict[str, Any], trailing: int = 0, done: bool = True
    ) -> None:
        """Server-sent events, one HTTP chunk each, ``chunk_delay`` (or ``gap``) apart; the last
        ``trailing`` ones (the usage chunk) right after, as a provider sends what it generates
        no token for. ``[[drop]]`` cuts the connection midway (a broken chunked body);
        ``[[fail]]`` sends an error event midway, as OpenAI does when a stream fails on its
        side. ``done``: end with OpenAI's ``[DONE]`` (Anthropic's streams end without)."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.flush()  # the headers go now: a [[first]] wait is after them, as OpenAI's
        self.close_connection = True
        half = len(events) // 2
        delayed = len(events) - trailing
        gap = float(directives["gap"] or 0) if "gap" in directives else self.server.chunk_delay
        for index, event in enumerate(events):
            if index == 0 and directives.get("first"):
                time.sleep(float(directives["first"] or 0))
            elif index and index < delayed and gap:
                time.sleep(gap)
            if index == half and "drop" in directives:
                return
            if index == half and "fail" in directives:
                event = directives["fail_event"]
            name, data = event if isinstance(event, tuple) else (None, event)
            prefix = f"event: {name}\n" if name else ""
            self._chunk(f"{prefix}data: {json.dumps(data)}\n\n".encode())
            if index == half and "fail" in directives:
                break
        else:
            if done:
                self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    @staticmethod
    def _pieces(reply: str, directives: dict[str, str | None]) -> list[str]:
        count = int(directives.get("chunks") or 4)
        words = reply.split(" ")
        size = max(1, -(-len(words) // count))
        groups = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
        return [g if i == 0 else " " + g for i, g in enumerate(groups)]

    # -- the APIs ----------------------------------------------------------------------

    def _usage(self, prompt: str, reply: str, d: dict[str, Any]) -> dict[str, Any]:
        p, c = _tokens(prompt), _tokens(reply)
        return {
            "prompt_tokens": p,
            "completion_tokens": c,
            "total_tokens": p + c,
            "prompt_tokens_details": {"cached_tokens": count(d, "cached")},
            "completion_tokens_details": {"reasoning_tokens": count(d, "reasoning")},
        }

    def _chat(self, body: dict[str, Any], reply: str, prompt: str, d: dict[str, Any]) -> None:
        model, n = AZURE_MODEL if self.azure else body.get("model", "fake"), int(body.get("n") or 1)
        cid, created = "chatcmpl-" + uuid.uuid4().hex[:12], int(time.time())
        tool = d.get("tool")
        if tool:
            call = {
                "id": "call_" + uuid.uuid4().hex[:8],
                "type": "function",
                "function": {"name": tool, "arguments": json.dumps({"city": "Paris"})},
            }
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        else:
            message, finish = {"role": "assistant", "content": reply}, "stop"
        usage = None if "nousage" in d else self._usage(prompt, reply, d)
        if not body.get("stream"):
            choices = [
                {"index": i, "message": message, "finish_reason": finish, "logprobs": None}
                for i in range(n)
            ]
            self._send_json(
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": choices,
                    "usage": usage,
                },
            )
            return
        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
        chunks: list[Any] = [_AZURE_FILTER_CHUNK] if self.azure else []

        def chunk(i: int, delta: dict[str, Any], finish_reason: str | None = None) -> None:
            choice = {
                "index": i,
                "delta": delta,
                **({"finish_reason": finish_reason} if finish_reason else {}),
            }
            chunks.append({**base, "choices": [choice]})

        for i in range(n):
            chunk(i, {"role": "assistant", "content": ""})
            if tool:
                call = message["tool_calls"][0]
                args = call["function"]["arguments"]
                half = len(args) // 2
                # A tool call arrives in pieces: id and name first, the arguments after.
                first = {"name": tool, "arguments": args[:half]}
                chunk(
                    i,
                    {
                        "tool_calls": [
                            {"index": 0, "id": call["id"], "type": "function", "function": first}
                        ]
                    },
                )
                chunk(i, {"tool_calls": [{"index": 0, "function": {"arguments": args[half:]}}]})
            else:
                for piece in self._pieces(reply, d):
                    chunk(i, {"content": piece})
            chunk(i, {}, finish)
        trailing = 0
        if usage and (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({**base, "choices": [], "usage": usage})
            trailing = 1
        self._stream(chunks, d, trailing)

    def _completion(self, body: dict[str, Any], reply: str, prompt: str, d: dict[str, Any]) -> None:
        model, cid = body.get("model", "fake"), "cmpl-" + uuid.uuid4().hex[:12]
        usage = None if "nousage" in d else self._usage(prompt, reply, d)
        base = {"id": cid, "object": "text_completion", "created": int(time.time()), "model": model}
        if not body.get("stream"):
            self._send_json(
                200,
                {
                    **base,
                    "usage": usage,
                    "choices": [
                        {"index": 0, "text": reply, "finish_reason": "stop", "logprobs": None}
                    ],
                },
            )
            return
        chunks: list[Any] = [
            {
                **base,
                "choices": [{"index": 0, "text": piece, "finish_reason": None, "logprobs": None}],
            }
            for piece in self._pieces(reply, d)
        ]
        chunks[-1]["choices"][0]["finish_reason"] = "stop"
        trailing = 0
        if usage and (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({**base, "choices": [], "usage": usage})
            trailing = 1
        self._stream(chunks, d, trailing)

    def _responses(self, body: dict[str, Any], reply: str, prompt: str, d: dict[str, Any]) -> None:
        rid, mid = "resp_" + uuid.uuid4().hex[:12], "msg_" + uuid.uuid4().hex[:8]
        p, c = _tokens(prompt), _tokens(reply)
        usage = {
            "input_tokens": p,
            "output_tokens": c,
            "total_tokens": p + c,
            "input_tokens_details": {"cached_tokens": count(d, "cached")},
            "output_tokens_details": {"reasoning_tokens": count(d, "reasoning")},
        }
        tool = d.get("tool")
        item: dict[str, Any]
        if tool:
            item = {
                "type": "function_call",
                "id": "fc_" + uuid.uuid4().hex[:8],
                "call_id": "call_" + uuid.uuid4().hex[:8],
                "name": tool,
                "arguments": json.dumps({"city": "Paris"}),
                "status": "completed",
            }
        else:
            item = {
                "type": "message",
                "id": mid,
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply, "annotations": []}],
            }
        response = {
            "id": rid,
            "object": "response",
            "created_at": int(time.time()),
            "model": body.get("model", "fake"),
            "status": "completed",
            "output": [item],
            "usage": None if "nousage" in d else usage,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "metadata": {},
            "temperature": None,
            "top_p": None,
            "text": {"format": {"type": "text"}},
        }
        if body.get("background") and not body.get("stream"):
            # Answered at once as OpenAI does: queued, its output and usage to come.
            self._send_json(200, {**response, "status": "queued", "output": [], "usage": None})
            return
        if not body.get("stream"):
            self._send_json(200, response)
            return
        started = {**response, "status": "in_progress", "output": [], "usage": None}
        events: list[Any] = [
            (
                "response.created",
                {"type": "response.created", "sequence_number": 0, "response": started},
            )
        ]
        pending = {**item, "status": "in_progress"}
        if tool:
            pending["arguments"] = ""
        else:
            pending["content"] = []
        events.append(
            (
                "response.output_item.added",
                {
                    "type": "response.output_item.added",
                    "output_index": 0,
                    "item": pending,
                    "sequence_number": len(events),
                },
            )
        )
        if not tool:
            events.append(
                (
                    "response.content_part.added",
                    {
                        "type": "response.content_part.added",
                        "item_id": item["id"],
                        "output_index": 0,
                        "content_index": 0,
                        "part": {"type": "output_text", "text": "", "annotations": []},
                        "sequence_number": len(events),
                    },
                )
            )
        if tool:
            args = item["arguments"]
            pieces = [args[: len(args) // 2], args[len(args) // 2 :]]
            kind = "response.function_call_arguments.delta"
        else:
            pieces, kind = self._pieces(reply, d), "response.output_text.delta"
        for piece in pieces:
            delta = {
                "type": kind,
                "item_id": item["id"],
                "output_index": 0,
                "delta": piece,
                "sequence_number": len(events),
            }
            if not tool:
                delta.update(content_index=0, logprobs=[])
            events.append((kind, delta))
        events.append(
            (
                "response.output_item.done",
                {
                    "type": "response.output_item.done",
                    "output_index": 0,
                    "item": item,
                    "sequence_number": len(events),
                },
            )
        )
        failed = {
            **response,
            "status": "failed",
            "output": [],
            "usage": None,
            "error": {"code": "server_error", "message": "fake provider failed midway"},
        }
        d["fail_event"] = (
            "response.failed",
            {"type": "response.failed", "sequence_number": len(events), "response": failed},
        )
        events.append(
            (
                "response.completed",
                {
                    "type": "response.completed",
                    "sequence_number": len(events),
                    "response": response,
                },
            )
        )
        self._stream(events, d)

    def _embeddings(self, body: dict[str, Any], reply: str, prompt: str, d: dict[str, Any]) -> None:
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": [
                    ((hash(str(x)) >> (s % 48)) % 1000) / 1000
                    for s in range(int(body.get("dimensions") or 8))
                ],
            }
            for i, x in enumerate(inputs)
        ]
        tokens = sum(_tokens(str(x)) for x in inputs)
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model", "fake"),
                "usage": None
                if "nousage" in d
                else {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[dict[str, Any]]
    chunk_delay: float
    script: list[tuple[str, str]]


class FakeProvider:
    """The fake provider on a loopback port, in a background thread.

    >>> with FakeProvider() as provider:
    ...     client = openai.OpenAI(base_url=provider.base_url, api_key="sk-fake")
    """

    def __init__(
        self, port: int = 0, chunk_delay: float = 0.0, script: dict[str, str] | None = None
    ) -> None:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.requests = []
        self._server.chunk_delay = chunk_delay
        self._server.script = []
        self.script(script or {})
        self._thread: threading.Thread | None = None

    def script(self, answers: dict[str, str], replace: bool = False) -> None:
        """Answer prompts containing each key with its value (see the module's doc); these
        come before what was scripted earlier, unless ``replace``."""
        # One assignment: the handler threads read the list while a test changes it.
        self._server.script = [
            *answers.items(),
            *([] if replace else self._server.script),
        ]

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request received: ``{"path", "body"}``."""
        return self._server.requests

    def start(self) -> FakeProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    parser.add_argument("--script", help="a JSON file: {prompt text: reply}")
    args = parser.parse_args()
    script = None
    if args.script:
        with open(args.script, encoding="utf-8") as file:
            script = json.load(file)
    provider = FakeProvider(args.port, args.chunk_delay, script)
    print(provider.base_url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        provider._server.serve_forever()


if __name__ == "__main__":
    main()
