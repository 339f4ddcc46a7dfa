"""An event's request and response, as the messages a person reads: roles, text, images and
audio shown small, tool calls and their results. Pure functions; the templates only lay them
out."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["conversation", "output_messages"]


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return {"kind": "text", "text": part}
    if not isinstance(part, dict):
        return {"kind": "text", "text": json.dumps(part, default=str)}
    kind = part.get("type", "")
    if kind in ("text", "input_text", "output_text"):
        return {"kind": "text", "text": str(part.get("text", ""))}
    if kind in ("image_url", "input_image"):
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        # Only web images get a link (never an <img>: see the CSP in server/app.py); data URLs
        # were reduced to a reference by the SDK, and a javascript: URL must never be a link.
        shown = url if isinstance(url, str) and url.startswith(("https://", "http://")) else None
        return {"kind": "image", "url": shown, "label": _label(url, part)}
    if kind in ("input_audio", "audio"):
        return {"kind": "audio", "label": _label(None, part)}
    if kind in ("file", "input_file"):
        return {"kind": "file", "label": _label(None, part)}
    if kind == "refusal":
        return {"kind": "text", "text": str(part.get("refusal", ""))}
    return {"kind": "other", "label": kind or "part", "text": json.dumps(part, default=str)}


def _label(url: Any, part: dict[str, Any]) -> str:
    for key in ("size", "bytes"):
        if key in part:
            return f"{part[key]:,} bytes"
    if isinstance(url, str) and url.startswith("data:"):
        return url.split(";", 1)[0].removeprefix("data:")
    if isinstance(url, dict) and "size" in url:  # a reference the SDK left in place of data
        return f"{url.get('media_type', 'binary')}, {url['size']:,} bytes"
    return str(url)[:80] if url else part.get("type", "")


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, list):
        return [_part(p) for p in content]
    return [_part(content)]


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        calls.append(
            {
                "id": call.get("id"),
                "name": function.get("name") or call.get("type", "tool"),
                "arguments": _maybe_json(function.get("arguments")),
            }
        )
    if message.get("function_call"):
        function = message["function_call"]
        calls.append(
            {
                "id": None,
                "name": function.get("name"),
                "arguments": _maybe_json(function.get("arguments")),
            }
        )
    return calls


def _maybe_json(text: Any) -> str:
    if not isinstance(text, str):
        return json.dumps(text, indent=2, ensure_ascii=False, default=str)
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _message(message: Any) -> dict[str, Any]:
    if not isinstance(message, dict):
        return {"role": "user", "parts": _parts(message), "tool_calls": []}
    role = message.get("role") or message.get("type") or "message"
    if message.get("type") == "function_call":  # responses API item
        return {
            "role": "assistant",
            "parts": [],
            "tool_calls": [
                {
                    "id": message.get("call_id"),
                    "name": message.get("name"),
                    "arguments": _maybe_json(message.get("arguments")),
                }
            ],
        }
    if message.get("type") == "function_call_output":
        return {
            "role": "tool",
            "parts": _parts(message.get("output")),
            "tool_calls": [],
            "tool_call_id": message.get("call_id"),
        }
    return {
        "role": role,
        "name": message.get("name"),
        "parts": _parts(message.get("content")),
        "tool_calls": _tool_calls(message),
        "tool_call_id": message.get("tool_call_id"),
    }


_EMPTY: dict[str, Any] = {
    "name": None,
    "tool_call_id": None,
    "finish_reason": None,
    "tool_calls": [],
}


def conversation(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages the call sent."""
    return [{**_EMPTY, **m} for m in _sent(event)]


def output_messages(event: dict[str, Any]) -> list[dict[str, Any]]:
    """What came back: one message per choice (or output item)."""
    return [{**_EMPTY, **m} for m in _received(event)]


def _sent(event: dict[str, Any]) -> list[dict[str, Any]]:
    request = event.get("request") or {}
    api = event.get("api")
    if api == "chat":
        return [_message(m) for m in request.get("messages") or []]
    if api == "completion":
        return [{"role": "prompt", "parts": _parts(request.get("prompt")), "tool_calls": []}]
    if api == "responses":
        messages = []
        if request.get("instructions"):
            messages.append(
                {"role": "system", "parts": _parts(request["instructions"]), "tool_calls": []}
            )
        given = request.get("input")
        items = given if isinstance(given, list) else [{"role": "user", "content": given}]
        return messages + [_message(m) for m in items]
    if api == "embeddings":
        given = request.get("input")
        items = given if isinstance(given, list) else [given]
        return [{"role": "input", "parts": _parts(i), "tool_calls": []} for i in items]
    return []


def _received(event: dict[str, Any]) -> list[dict[str, Any]]:
    response = event.get("response")
    if not isinstance(response, dict):
        if event.get("output_text"):
            return [{"role": "assistant", "parts": _parts(event["output_text"]), "tool_calls": []}]
        return []
    api = event.get("api")
    if api == "chat":
        out = []
        for choice in response.get("choices") or []:
            message = _message(choice.get("message") or {})
            message["finish_reason"] = choice.get("finish_reason")
            out.append(message)
        return out
    if api == "completion":
        return [
            {
                "role": "completion",
                "parts": _parts(c.get("text")),
                "tool_calls": [],
                "finish_reason": c.get("finish_reason"),
            }
            for c in response.get("choices") or []
        ]
    if api == "responses":
        return [
            _message(item)
            for item in response.get("output") or []
            if isinstance(item, dict) and item.get("type") != "reasoning"
        ]
    if api == "embeddings":
        data = response.get("data") or []
        dims = len(data[0].get("embedding") or []) if data else 0
        return [
            {
                "role": "embeddings",
                "tool_calls": [],
                "parts": [{"kind": "text", "text": f"{len(data)} vectors of {dims} dimensions"}],
            }
        ]
    return []
