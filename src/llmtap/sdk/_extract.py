"""Reading a response: its text and usage, a stream's chunks put back together, and large
binary data replaced by a reference. Pure functions on JSON-ready values, run on the
exporter's thread (never the caller's)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

__all__ = ["complete", "output_and_usage", "reassemble", "shrink"]

# A string this long that is base64 (or a data: URL) is binary data: an image, audio, a file.
# It is kept as a reference with its size and hash, not inline, so the store does not bloat.
BINARY_MIN_CHARS = 1024
_BASE64 = re.compile(r"[A-Za-z0-9+/=_\-\s]+")
_DATA_URL = re.compile(r"data:([\w.+/-]*)(;[^,]*)?,")


def shrink(value: Any) -> Any:
    """``value`` with every large base64 string replaced by a short reference, and every
    embedding vector by its length."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "embedding" and isinstance(item, list) and len(item) > 16:
                out[key] = f"[{len(item)} floats omitted by llmtap]"
            else:
                out[key] = shrink(item)
        return out
    if isinstance(value, list):
        return [shrink(item) for item in value]
    if isinstance(value, str) and len(value) >= BINARY_MIN_CHARS:
        return _binary_reference(value)
    return value


def _binary_reference(text: str) -> str:
    media, payload = "", text
    match = _DATA_URL.match(text)
    if match:
        media, payload = match.group(1) or "application/octet-stream", text[match.end() :]
    elif not _BASE64.fullmatch(text[:4096]) or " " in text[:200]:
        return text  # long prose, not binary data
    size = len(payload) * 3 // 4 - payload[-2:].count("=")
    digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
    kind = f"{media} " if media else ""
    return f"[llmtap: {kind}{size} bytes omitted, sha256:{digest}]"


# -- text and usage ---------------------------------------------------------------------------


def output_and_usage(
    api: str, response: dict[str, Any]
) -> tuple[str | None, dict[str, Any] | None]:
    """The answer's text (several choices one per line) and its usage, in the event's terms."""
    if api == "chat":
        texts = [(c.get("message") or {}).get("content") for c in response.get("choices") or ()]
        return _joined(texts), _usage(response.get("usage"), "prompt_tokens", "completion_tokens")
    if api == "completion":
        texts = [c.get("text") for c in response.get("choices") or ()]
        return _joined(texts), _usage(response.get("usage"), "prompt_tokens", "completion_tokens")
    if api == "responses":
        texts = [
            part.get("text")
            for item in response.get("output") or ()
            if isinstance(item, dict) and item.get("type") == "message"
            for part in item.get("content") or ()
            if isinstance(part, dict) and part.get("type") == "output_text"
        ]
        text = "".join(t for t in texts if isinstance(t, str)) if texts else None
        return text, _usage(response.get("usage"), "input_tokens", "output_tokens")
    if api == "embeddings":
        return None, _usage(response.get("usage"), "prompt_tokens", "completion_tokens")
    return None, None


def _usage(raw: Any, input_key: str, output_key: str) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    input_details = raw.get(input_key.replace("tokens", "tokens_details")) or {}
    output_details = raw.get(output_key.replace("tokens", "tokens_details")) or {}
    return {
        "input_tokens": raw.get(input_key),
        "output_tokens": raw.get(output_key),
        "cached_tokens": input_details.get("cached_tokens"),
        "reasoning_tokens": output_details.get("reasoning_tokens"),
        "total_tokens": raw.get("total_tokens"),
    }


def _joined(texts: list[Any]) -> str | None:
    texts = [t for t in texts if isinstance(t, str)]
    if not texts:
        return None
    return texts[0] if len(texts) == 1 else "\n".join(texts)


def complete(api: str, response: dict[str, Any] | None) -> bool:
    """Whether a streamed answer arrived whole (every choice finished, or the response
    completed): a caller that stops reading after that has not cancelled anything."""
    if not response:
        return False
    if api == "responses":
        return response.get("status") in ("completed", "incomplete")
    choices = response.get("choices") or ()
    return bool(choices) and all(c.get("finish_reason") for c in choices)


# -- streams ----------------------------------------------------------------------------------


def reassemble(api: str, chunks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The response a stream's chunks add up to, shaped like the non-streamed response."""
    if not chunks:
        return None
    if api == "responses":
        return _responses_from_events(chunks)
    return _choices_from_chunks(api, chunks)


_TOP_KEYS = ("id", "created", "model", "system_fingerprint", "service_tier")


def _choices_from_chunks(api: str, chunks: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for key in _TOP_KEYS:
            # Not Azure's first chunk's blanks (its prompt filter's: model "", created 0).
            if key not in out and chunk.get(key) not in (None, "", 0):
                out[key] = chunk[key]
        if chunk.get("usage"):
            out["usage"] = chunk["usage"]
        for part in chunk.get("choices") or ():
            index = part.get("index") or 0
            choice = choices.get(index)
            if choice is None:
                choice = choices[index] = _new_choice(api, index)
            if api == "chat":
                _add_delta(choice["message"], part.get("delta") or {})
            elif part.get("text"):
                choice["text"] += part["text"]
            if part.get("finish_reason"):
                choice["finish_reason"] = part["finish_reason"]
    out["object"] = "chat.completion" if api == "chat" else "text_completion"
    out["choices"] = [choices[i] for i in sorted(choices)]
    return out


def _new_choice(api: str, index: int) -> dict[str, Any]:
    if api == "chat":
        message = {"role": "assistant", "content": None}
        return {"index": index, "message": message, "finish_reason": None}
    return {"index": index, "text": "", "finish_reason": None}


def _add_delta(message: dict[str, Any], delta: dict[str, Any]) -> None:
    if delta.get("role"):
        message["role"] = delta["role"]
    for key in ("content", "refusal"):
        piece = delta.get(key)
        if piece:
            message[key] = (message.get(key) or "") + piece
    for piece in delta.get("tool_calls") or ():
        calls = message.setdefault("tool_calls", [])
        index = piece.get("index", len(calls))
        while len(calls) <= index:
            calls.append(
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
        call = calls[index]
        for key in ("id", "type"):
            if piece.get(key):
                call[key] = piece[key]
        function = piece.get("function") or {}
        for key in ("name", "arguments"):
            if function.get(key):
                call["function"][key] += function[key]
    legacy = delta.get("function_call")
    if legacy:
        call = message.setdefault("function_call", {"name": "", "arguments": ""})
        for key in ("name", "arguments"):
            if legacy.get(key):
                call[key] += legacy[key]


_FINAL = ("response.completed", "response.incomplete", "response.failed")


def _responses_from_events(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    base: dict[str, Any] | None = None
    items: dict[int, dict[str, Any]] = {}
    texts: dict[tuple[int, int], str] = {}
    arguments: dict[int, str] = {}
    error: Any = None
    for event in events:
        kind = event.get("type")
        if kind in _FINAL:
            return dict(event["response"])  # the whole response, as the API sent it
        if kind in ("response.created", "response.in_progress", "response.queued"):
            base = event.get("response") or base
        elif kind in ("response.output_item.added", "response.output_item.done"):
            items[event.get("output_index", len(items))] = event.get("item") or {}
        elif kind == "response.output_text.delta":
            key = (event.get("output_index", 0), event.get("content_index", 0))
            texts[key] = texts.get(key, "") + (event.get("delta") or "")
        elif kind == "response.function_call_arguments.delta":
            index = event.get("output_index", 0)
            arguments[index] = arguments.get(index, "") + (event.get("delta") or "")
        elif kind == "error":
            error = {k: event.get(k) for k in ("code", "message")}
    # The stream stopped before the response was complete: build what arrived.
    out = dict(base or {})
    output = []
    for index in sorted({*items, *(i for i, _ in texts), *arguments}):
        item = dict(items.get(index) or {"type": "message", "role": "assistant"})
        parts = [(c, t) for (i, c), t in sorted(texts.items()) if i == index]
        if parts and item.get("status") != "completed":
            item["content"] = [{"type": "output_text", "text": t} for _, t in parts]
        if index in arguments and item.get("status") != "completed":
            item["arguments"] = arguments[index]
        output.append(item)
    out["output"] = output
    if error:
        out["error"] = error
    return out
