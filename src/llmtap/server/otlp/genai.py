"""OpenTelemetry's GenAI conventions: the current names (``gen_ai.provider.name``,
``gen_ai.input.messages`` as JSON strings or structured values on the
``gen_ai.client.inference.operation.details`` event), then the older ones still sent by many
instrumentations (``gen_ai.system``, ``gen_ai.usage.prompt_tokens``, indexed
``gen_ai.prompt.N.*``/``gen_ai.completion.N.*``, as OpenLLMetry writes them)."""

from __future__ import annotations

import json
import re
from typing import Any

from .common import Attrs, message_text, ordered_messages, put_tool_call
from .decode import Span

__all__ = ["api_of", "fill_current", "fill_legacy"]

_API = {
    "chat": "chat",
    "generate_content": "chat",
    "text_completion": "completion",
    "completion": "completion",
    "embeddings": "embeddings",
    "embedding": "embeddings",
}
DETAILS = "gen_ai.client.inference.operation.details"
# gen_ai.request.* -> the request argument it is in an OpenAI call.
_PARAMS = {
    f"gen_ai.request.{name}": argument
    for name, argument in {
        "temperature": "temperature",
        "max_tokens": "max_tokens",
        "top_p": "top_p",
        "top_k": "top_k",
        "frequency_penalty": "frequency_penalty",
        "presence_penalty": "presence_penalty",
        "stop_sequences": "stop",
        "seed": "seed",
        "choice.count": "n",
        "encoding_formats": "encoding_format",
    }.items()
}
_INDEXED = re.compile(r"^([0-9]{1,6})\.(.+)$")
_TOOL_CALL = re.compile(r"^tool_calls\.([0-9]{1,6})\.(.+)$")


def api_of(attrs: Attrs) -> str | None:
    """The event's ``api`` for a GenAI span; None for tool executions, agents and spans of
    no GenAI convention."""
    operation = attrs.rest.get("gen_ai.operation.name")
    if isinstance(operation, str):
        return _API.get(operation)
    if "gen_ai.system" in attrs.rest or "gen_ai.request.model" in attrs.rest:
        kind = attrs.rest.get("llm.request.type")
        return {"completion": "completion", "embedding": "embeddings"}.get(str(kind), "chat")
    return None


def _parts_message(message: Any) -> dict[str, Any] | None:
    """A GenAI message (``{"role", "parts": [...]}``) as an OpenAI chat message."""
    if not isinstance(message, dict):
        return None
    out: dict[str, Any] = {"role": message.get("role", "user")}
    texts, calls = [], []
    for part in message.get("parts") or ():
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("content", "")))
        elif kind == "tool_call":
            arguments = part.get("arguments")
            calls.append(
                {
                    "id": part.get("id"),
                    "type": "function",
                    "function": {
                        "name": part.get("name"),
                        "arguments": arguments
                        if isinstance(arguments, str)
                        else json.dumps(arguments),
                    },
                }
            )
        elif kind == "tool_call_response":
            out["role"] = "tool"
            out["tool_call_id"] = part.get("id")
            response = part.get("response", part.get("result"))
            texts.append(response if isinstance(response, str) else json.dumps(response))
    out["content"] = "".join(texts) if texts else None
    if calls:
        out["tool_calls"] = calls
    if message.get("name"):
        out["name"] = message["name"]
    return out


def _message_list(value: Any) -> list[dict[str, Any]]:
    """GenAI messages as sent: a list, or its JSON text; the entries that are objects."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return []
    return [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []


def _messages(value: Any) -> list[dict[str, Any]]:
    return [m for m in (_parts_message(v) for v in _message_list(value)) if m is not None]


def _details(span: Span) -> dict[str, Any]:
    for event in span.events:
        if event.name == DETAILS:
            return event.attributes
    return {}


def fill_current(event: dict[str, Any], span: Span, attrs: Attrs) -> None:
    """Set the event's fields the current GenAI names give (where not set already)."""
    attrs.take("gen_ai.operation.name")
    details = _details(span)
    provider = attrs.take_str("gen_ai.provider.name")
    requested = attrs.take_str("gen_ai.request.model")
    responded = attrs.take_str("gen_ai.response.model")
    if provider:
        event.setdefault("provider", provider)
    if responded or requested:
        event.setdefault("model", responded or requested)
    system = attrs.take_json("gen_ai.system_instructions") or details.get(
        "gen_ai.system_instructions"
    )
    inputs = _messages(attrs.take("gen_ai.input.messages") or details.get("gen_ai.input.messages"))
    sent = _message_list(
        attrs.take("gen_ai.output.messages") or details.get("gen_ai.output.messages")
    )
    outputs = _messages(sent)
    # Each output message's own finish reason, where the span's list has none for it.
    own = [
        m.get("finish_reason") if isinstance(m.get("finish_reason"), str) else None for m in sent
    ]
    if system:
        text = _messages([{"role": "system", "parts": system}]) if isinstance(system, list) else []
        inputs = text + inputs
    request: dict[str, Any] = {"model": requested}
    for name, argument in _PARAMS.items():
        value = attrs.take(name)
        if value is not None:
            request[argument] = value
    if inputs:
        request["messages"] = inputs
    if "request" not in event and (inputs or requested):
        event["request"] = {k: v for k, v in request.items() if v is not None}
    finish = attrs.take("gen_ai.response.finish_reasons")
    response_id = attrs.take_str("gen_ai.response.id")
    if outputs and "response" not in event:
        if isinstance(finish, str):  # a string array by the conventions; one string by some
            finish = [finish]
        reasons = finish if isinstance(finish, list) else []
        choices = [
            {"index": i, "message": m, "finish_reason": reasons[i] if i < len(reasons) else own[i]}
            for i, m in enumerate(outputs)
        ]
        event["response"] = {"id": response_id, "model": responded, "choices": choices}
    if outputs:
        event.setdefault("output_text", message_text(outputs))
    _usage(
        event,
        attrs.take_int("gen_ai.usage.input_tokens"),
        attrs.take_int("gen_ai.usage.output_tokens"),
        attrs.take_int("gen_ai.usage.cache_read.input_tokens"),
        attrs.take_int("gen_ai.usage.reasoning.output_tokens"),
        attrs.take_int("gen_ai.usage.cache_creation.input_tokens"),
    )
    conversation = attrs.take_str("gen_ai.conversation.id")
    if conversation:
        event.setdefault("chat_id", conversation)
    first = attrs.take("gen_ai.response.time_to_first_chunk")
    if isinstance(first, (int, float)) and not isinstance(first, bool) and first >= 0:
        event.setdefault("ttft_ms", first * 1000)


def _usage(
    event: dict[str, Any],
    input_tokens: int | None,
    output_tokens: int | None,
    cached: int | None = None,
    reasoning: int | None = None,
    cache_creation: int | None = None,
) -> None:
    if input_tokens is None and output_tokens is None:
        return
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    if input_tokens is not None and output_tokens is not None:
        usage["total_tokens"] = input_tokens + output_tokens
    usage["cached_tokens"], usage["reasoning_tokens"] = cached, reasoning
    usage["cache_creation_tokens"] = cache_creation
    event.setdefault("usage", {k: v for k, v in usage.items() if v is not None})


def _indexed(flat: dict[str, Any]) -> list[dict[str, Any]]:
    """``{"0.role": ..., "0.tool_calls.0.name": ...}`` (OpenLLMetry's flattening) as OpenAI
    chat messages."""
    by_index: dict[int, dict[str, Any]] = {}
    for key, value in flat.items():
        found = _INDEXED.match(key)
        if not found:
            continue
        message = by_index.setdefault(int(found.group(1)), {})
        field = found.group(2)
        call = _TOOL_CALL.match(field)
        if call:
            put_tool_call(message, int(call.group(1)), call.group(2), value)
        elif field in ("role", "content", "name", "tool_call_id", "finish_reason"):
            message[field] = value
    return ordered_messages(by_index)


_MESSAGE_EVENT = re.compile(r"^gen_ai\.(system|user|assistant|tool)\.message$")


def carries_call_content(event_name: str) -> bool:
    """Whether an event of this name holds a call's messages or answer (on the call's span, or
    as a log record belonging to it)."""
    return bool(_MESSAGE_EVENT.match(event_name)) or event_name in ("gen_ai.choice", DETAILS)


def _json_dict(value: Any) -> dict[str, Any] | None:
    """``value`` as a dict: itself, or parsed when it is a JSON object's text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    return value if isinstance(value, dict) else None


def _event_body(attributes: dict[str, Any]) -> dict[str, Any]:
    """A message event's fields: its attributes, or the JSON body some SDKs put in
    ``gen_ai.event.content`` when they turn a log event into a span event."""
    return _json_dict(attributes.get("gen_ai.event.content")) or attributes


def _event_message(role: str, body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": body.get("role") or role, "content": body.get("content")}
    calls = body.get("tool_calls")
    if isinstance(calls, str):
        try:
            calls = json.loads(calls)
        except (ValueError, RecursionError):
            calls = None
    if isinstance(calls, list) and calls:
        message["tool_calls"] = calls
    if role == "tool" and body.get("id"):
        message["tool_call_id"] = body["id"]
    return message


def _message_events(span: Span) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The older conventions' per-message events on the span (``gen_ai.user.message``...,
    ``gen_ai.choice``): (the prompt's messages, the answer's choices)."""
    inputs: list[dict[str, Any]] = []
    choices: list[dict[str, Any]] = []
    for span_event in span.events:
        found = _MESSAGE_EVENT.match(span_event.name)
        body = _event_body(span_event.attributes)
        if found:
            inputs.append(_event_message(found.group(1), body))
        elif span_event.name == "gen_ai.choice":
            message = _json_dict(body.get("message")) or body
            choices.append(
                {
                    "index": body.get("index", len(choices)),
                    "message": _event_message("assistant", message),
                    "finish_reason": body.get("finish_reason"),
                }
            )
    return inputs, choices


def fill_legacy(event: dict[str, Any], span: Span, attrs: Attrs) -> None:
    """Set the event's fields the older GenAI (and OpenLLMetry) names give."""
    system = attrs.take_str("gen_ai.system")
    if system:
        event.setdefault("provider", system.lower())
    attrs.take("llm.request.type")
    inputs = _indexed(attrs.take_prefix("gen_ai.prompt."))
    outputs = _indexed(attrs.take_prefix("gen_ai.completion."))
    if not inputs and not outputs:
        inputs, choices = _message_events(span)
        if inputs:
            event.setdefault("request", {}).setdefault("messages", inputs)
        if choices:
            messages = [c["message"] for c in choices]
            event.setdefault("response", {"model": event.get("model"), "choices": choices})
            event.setdefault("output_text", message_text(messages))
    if inputs:
        request = event.setdefault("request", {})
        request.setdefault("messages", inputs)
    if outputs:
        reasons = [m.pop("finish_reason", None) for m in outputs]
        choices = [
            {"index": i, "message": m, "finish_reason": r}
            for i, (m, r) in enumerate(zip(outputs, reasons, strict=True))
        ]
        event.setdefault("response", {"model": event.get("model"), "choices": choices})
        event.setdefault("output_text", message_text(outputs))
    _usage(
        event,
        attrs.take_int("gen_ai.usage.prompt_tokens"),
        attrs.take_int("gen_ai.usage.completion_tokens"),
        # OpenLLMetry's names (Anthropic's prompt caching), included in the prompt tokens.
        cached=attrs.take_int("gen_ai.usage.cache_read_input_tokens"),
        cache_creation=attrs.take_int("gen_ai.usage.cache_creation_input_tokens"),
    )
    attrs.take("llm.usage.total_tokens")
