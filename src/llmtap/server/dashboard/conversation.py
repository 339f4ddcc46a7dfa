"""An event's request and response, as the messages a person reads: roles, text, images and
audio shown small, tool calls and their results. Pure functions; the templates only lay them
out.

``request`` and ``response`` are free-form in the wire schema, so any JSON can be here: every
value is checked for the shape it is read as, and a part or message of a shape this module does
not know is shown as its raw JSON (the template escapes it), never an error."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["conversation", "output_messages", "pretty_json"]


def pretty_json(value: Any) -> str:
    """Any value as indented JSON text (what the pages show of a shape they do not know)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    """A list read as one: None is empty, a lone value a list of itself."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _str(value: Any) -> str | None:
    """A label (role, name, id) as text: None stays None, a non-string its JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return {"kind": "text", "text": part}
    if not isinstance(part, dict):
        return {"kind": "text", "text": pretty_json(part)}
    kind = part.get("type", "")
    if kind in ("text", "input_text", "output_text"):
        return {"kind": "text", "text": _text(part.get("text", ""))}
    if kind in ("image_url", "input_image"):
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        # Only web images get a link (never an <img>: see the CSP in server/app.py); data URLs
        # were reduced to a reference by the SDK, and a javascript: URL must never be a link.
        shown = url if isinstance(url, str) and url.startswith(("https://", "http://")) else None
        return {"kind": "image", "url": shown, "label": _label(image, part)}
    if kind in ("input_audio", "audio"):
        return {"kind": "audio", "label": _label(None, part)}
    if kind in ("file", "input_file"):
        return {"kind": "file", "label": _label(None, part)}
    if kind == "refusal":
        return {"kind": "text", "text": _text(part.get("refusal", ""))}
    return {"kind": "other", "label": _str(kind) or "part", "text": pretty_json(part)}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else pretty_json(value)


def _bytes(size: Any) -> str:
    if isinstance(size, int) and not isinstance(size, bool):
        return f"{size:,} bytes"
    return f"size {_str(size)}"


def _label(image: Any, part: dict[str, Any]) -> str:
    for key in ("size", "bytes"):
        if key in part:
            return _bytes(part[key])
    url = image.get("url") if isinstance(image, dict) else image
    if isinstance(url, str) and url.startswith("data:"):
        return url.split(";", 1)[0].removeprefix("data:")
    ref = url if isinstance(url, dict) else image  # a reference left in place of the data
    if isinstance(ref, dict) and "size" in ref:
        return f"{_str(ref.get('media_type', 'binary'))}, {_bytes(ref['size'])}"
    if url:
        return (url if isinstance(url, str) else pretty_json(url))[:80]
    return _str(part.get("type")) or ""


def _parts(content: Any) -> list[dict[str, Any]]:
    return [_part(p) for p in _list(content)]


def _call(id_: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {"id": _str(id_), "name": _str(name), "arguments": _maybe_json(arguments)}


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = []
    for call in _list(message.get("tool_calls")):
        if not isinstance(call, dict):
            calls.append(_call(None, "tool call", call))
            continue
        function = _dict(call.get("function"))
        name = function.get("name") or call.get("type") or "tool"
        calls.append(_call(call.get("id"), name, function.get("arguments", call.get("function"))))
    function_call = message.get("function_call")
    if function_call:
        function = _dict(function_call)
        calls.append(_call(None, function.get("name"), function.get("arguments", function_call)))
    return calls


def _maybe_json(text: Any) -> str:
    if not isinstance(text, str):
        return pretty_json(text)
    try:
        return pretty_json(json.loads(text))
    except (ValueError, RecursionError):  # not JSON, or nested past what the parser takes
        return text


def _message(message: Any) -> dict[str, Any]:
    if not isinstance(message, dict):
        return {"role": "user", "parts": _parts(message), "tool_calls": []}
    kind = message.get("type")
    if kind == "function_call":  # responses API item
        call = _call(message.get("call_id"), message.get("name"), message.get("arguments"))
        return {"role": "assistant", "parts": [], "tool_calls": [call]}
    if kind == "function_call_output":
        return {
            "role": "tool",
            "parts": _parts(message.get("output")),
            "tool_calls": [],
            "tool_call_id": _str(message.get("call_id")),
        }
    return {
        "role": _str(message.get("role") or kind) or "message",
        "name": _str(message.get("name")),
        "parts": _parts(message.get("content")),
        "tool_calls": _tool_calls(message),
        "tool_call_id": _str(message.get("tool_call_id")),
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


def _plain(role: str, content: Any, **more: Any) -> dict[str, Any]:
    return {"role": role, "parts": _parts(content), "tool_calls": [], **more}


def _sent(event: dict[str, Any]) -> list[dict[str, Any]]:
    request = _dict(event.get("request"))
    api = event.get("api")
    if api == "chat":
        return [_message(m) for m in _list(request.get("messages"))]
    if api == "completion":
        return [_plain("prompt", request.get("prompt"))]
    if api == "responses":
        messages = []
        if request.get("instructions"):
            messages.append(_plain("system", request["instructions"]))
        given = request.get("input")
        items = given if isinstance(given, list) else [{"role": "user", "content": given}]
        return messages + [_message(m) for m in items]
    if api == "embeddings":
        return [_plain("input", i) for i in _list(request.get("input"))]
    return []


def _received(event: dict[str, Any]) -> list[dict[str, Any]]:
    response = event.get("response")
    if not isinstance(response, dict):
        if event.get("output_text"):
            return [_plain("assistant", event["output_text"])]
        return [_plain("response", pretty_json(response))] if response is not None else []
    api = event.get("api")
    if api == "chat":
        out = []
        for choice in _list(response.get("choices")):
            if not isinstance(choice, dict):
                out.append(_plain("choice", pretty_json(choice)))
                continue
            message = _message(choice.get("message") or {})
            message["finish_reason"] = _str(choice.get("finish_reason"))
            out.append(message)
        return out
    if api == "completion":
        return [
            _plain("completion", c.get("text"), finish_reason=_str(c.get("finish_reason")))
            if isinstance(c, dict)
            else _plain("choice", pretty_json(c))
            for c in _list(response.get("choices"))
        ]
    if api == "responses":
        return [
            _message(item)
            for item in _list(response.get("output"))
            if not (isinstance(item, dict) and item.get("type") == "reasoning")
        ]
    if api == "embeddings":
        data = _list(response.get("data"))
        first = _dict(data[0]) if data else {}
        dims = len(_list(first.get("embedding")))
        text = f"{len(data)} vectors of {dims} dimensions"
        return [{"role": "embeddings", "tool_calls": [], "parts": [{"kind": "text", "text": text}]}]
    return []
