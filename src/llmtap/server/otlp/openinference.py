"""OpenInference (Arize Phoenix's conventions): ``llm.*``, ``input.value``/``output.value``,
messages flattened as ``llm.input_messages.N.message.*``, ``llm.prompt_template.*``."""

from __future__ import annotations

import json
import re
from typing import Any

from .common import Attrs, message_text, ordered_messages, put_tool_call
from .decode import Span

__all__ = ["KIND", "api_of", "fill"]

KIND = "openinference.span.kind"
_API = {"LLM": "chat", "EMBEDDING": "embeddings"}
_TOOL_CALL = re.compile(r"^tool_calls\.([0-9]{1,6})\.tool_call\.(.+)$")
_CONTENT = re.compile(r"^contents\.([0-9]{1,6})\.message_content\.(.+)$")
_INDEXED = re.compile(r"^([0-9]{1,6})\.message\.(.+)$")
_FIRST_TOKEN = "First Token Stream Event"
# The completions API's prompts and choices: ``llm.prompts.N.prompt.text`` and
# ``llm.choices.N.completion.text`` (older instrumentations: ``llm.prompts`` as a string array).
_PROMPTS, _CHOICES = "llm.prompts", "llm.choices"


def api_of(attrs: Attrs) -> str | None:
    """The event's ``api`` for an OpenInference span; None for other kinds (chains, tools,
    agents, retrievers) and for spans of other conventions."""
    kind = attrs.rest.get(KIND)
    if not isinstance(kind, str):
        return None
    api = _API.get(kind.upper())
    if api == "chat" and any(k == _PROMPTS or k.startswith(_PROMPTS + ".") for k in attrs.rest):
        return "completion"
    return api


def messages(flat: dict[str, Any]) -> list[dict[str, Any]]:
    """``{"0.message.role": ..., "0.message.tool_calls.0.tool_call.id": ...}`` as OpenAI chat
    messages."""
    by_index: dict[int, dict[str, Any]] = {}
    for key, value in flat.items():
        found = _INDEXED.match(key)
        if not found:
            continue
        message = by_index.setdefault(int(found.group(1)), {})
        field = found.group(2)
        call, part = _TOOL_CALL.match(field), _CONTENT.match(field)
        if call:
            put_tool_call(message, int(call.group(1)), call.group(2), value)
        elif part:
            message.setdefault("_parts", {}).setdefault(int(part.group(1)), {})[part.group(2)] = (
                value
            )
        elif field in ("role", "content", "name", "tool_call_id"):
            message[field] = value
    for message in by_index.values():
        parts = message.pop("_parts", None)
        if parts and "content" not in message:
            message["content"] = _content(parts)
    return ordered_messages(by_index)


def _content(parts: dict[int, dict[str, Any]]) -> str | list[dict[str, Any]] | None:
    """A message's content parts as OpenAI's: one text as a string, images as image parts.
    A tool use part (Anthropic's) is the message's tool call already."""
    out = []
    for _, part in sorted(parts.items()):
        if part.get("type") == "text":
            out.append({"type": "text", "text": part.get("text")})
        elif part.get("type") == "image":
            out.append({"type": "image_url", "image_url": {"url": part.get("image.image.url")}})
    if len(out) == 1 and out[0]["type"] == "text":
        return out[0]["text"]  # type: ignore[no-any-return]
    return out or None


def fill(event: dict[str, Any], span: Span, attrs: Attrs) -> None:
    """Set the event's fields OpenInference attributes give."""
    attrs.take(KIND)
    provider = attrs.take_str("llm.provider") or attrs.take_str("llm.system")
    if provider:
        event.setdefault("provider", provider)
    model = attrs.take_str("llm.model_name") or attrs.take_str("embedding.model_name")
    if model:
        event.setdefault("model", model)
    params = attrs.take_json("llm.invocation_parameters")
    params = (
        params if isinstance(params, dict) else attrs.take_json("embedding.invocation_parameters")
    )
    inputs = messages(attrs.take_prefix("llm.input_messages."))
    outputs = messages(attrs.take_prefix("llm.output_messages."))
    tools = attrs.take_prefix("llm.tools.")
    prompts = _texts(attrs, _PROMPTS, "prompt.text")
    completions = _texts(attrs, _CHOICES, "completion.text")
    request = _json_value(attrs, "input")
    if not isinstance(request, dict) or (inputs and not _provider_request(request)):
        # No JSON request body, or a framework's own input (LangChain's message objects, a
        # Gemini request's ``contents``) where the flattened messages are the call's: the
        # call rebuilt from its parts, as the SDK would record it.
        sent = request
        request = {"model": model, **(params if isinstance(params, dict) else {})}
        if inputs:
            request["messages"] = inputs
        elif prompts:
            request["prompt"] = prompts[0] if len(prompts) == 1 else prompts
        elif sent is not None:
            request["input"] = sent
        if tools:
            request["tools"] = [_parsed(v) for _, v in sorted(tools.items(), key=_index)]
    elif inputs and "system" in request:
        # Anthropic's request: the system prompt beside the messages. The flattened messages
        # have it first, as an OpenAI chat request (what the dashboard shows) does.
        request = {k: v for k, v in request.items() if k != "system"}
        request["messages"] = inputs
    event.setdefault("request", {k: v for k, v in request.items() if v is not None})
    response = _json_value(attrs, "output")
    finish = attrs.take_str("llm.finish_reason")
    if isinstance(response, dict) and ("choices" in response or not outputs):
        event.setdefault("response", response)  # OpenAI's own answer, as the SDK records it
    elif outputs:
        # Another provider's answer (Anthropic's content blocks): as OpenAI choices.
        answer_id = response.get("id") if isinstance(response, dict) else None
        event.setdefault(
            "response", {"id": answer_id, "model": model, "choices": _choices(outputs, finish)}
        )
    elif completions:
        # The completions API's answer, as OpenAI's: a text per choice.
        choices = [
            {"index": i, "text": t, "finish_reason": finish} for i, t in enumerate(completions)
        ]
        event.setdefault("response", {"model": model, "choices": choices})
        event.setdefault("output_text", "\n".join(completions))
    elif isinstance(response, str) and response:
        # Plain text (``output.mime_type`` text/plain, or none): the answer, as one choice.
        message = {"role": "assistant", "content": response}
        event.setdefault("response", {"model": model, "choices": _choices([message], finish)})
        event.setdefault("output_text", response)
    if outputs:
        event.setdefault("output_text", message_text(outputs))
    usage = {
        "input_tokens": attrs.take_int("llm.token_count.prompt"),
        "output_tokens": attrs.take_int("llm.token_count.completion"),
        "total_tokens": attrs.take_int("llm.token_count.total"),
        "cached_tokens": attrs.take_int("llm.token_count.prompt_details.cache_read"),
        "cache_creation_tokens": attrs.take_int("llm.token_count.prompt_details.cache_write"),
        "reasoning_tokens": attrs.take_int("llm.token_count.completion_details.reasoning"),
    }
    tokens_in, tokens_out = usage["input_tokens"], usage["output_tokens"]
    if usage["total_tokens"] is None and tokens_in is not None and tokens_out is not None:
        usage["total_tokens"] = tokens_in + tokens_out
    if any(v is not None for v in usage.values()):
        event.setdefault("usage", {k: v for k, v in usage.items() if v is not None})
    session = attrs.take_str("session.id")
    if session:
        event.setdefault("chat_id", session)
    _template(event, attrs)
    metadata = attrs.take_json("metadata")
    if isinstance(metadata, dict):
        event.setdefault("attributes", {}).update(metadata)
    # The vectors are in the response already, and are the bulk of an embedding span.
    attrs.take_prefix("embedding.embeddings.")
    first = [e.time_unix_nano for e in span.events if e.name == _FIRST_TOKEN]
    if first and first[0] >= span.start_unix_nano:
        event.setdefault("ttft_ms", (first[0] - span.start_unix_nano) / 1e6)


def _texts(attrs: Attrs, name: str, field: str) -> list[str]:
    """The texts of a flattened list (``name.N.field``), in index order; or of ``name``
    itself when it is a string array."""
    whole = attrs.take(name)
    flat = attrs.take_prefix(name + ".")
    texts = {
        _index(item): item[1]
        for item in flat.items()
        if item[0].split(".", 1)[1:] == [field] and isinstance(item[1], str)
    }
    if texts:
        return [text for _, text in sorted(texts.items())]
    if isinstance(whole, (list, tuple)):
        return [text for text in whole if isinstance(text, str)]
    return [whole] if isinstance(whole, str) else []


def _index(item: tuple[str, Any]) -> int:
    head = item[0].split(".", 1)[0]
    return int(head) if head.isascii() and head.isdigit() and len(head) <= 6 else 0


def _parsed(value: Any) -> Any:
    try:
        return json.loads(value) if isinstance(value, str) else value
    except (ValueError, RecursionError):
        return value


def _provider_request(request: dict[str, Any]) -> bool:
    """Whether a JSON ``input.value`` is a chat request as OpenAI's and Anthropic's SDKs send
    it: messages, each with its role."""
    sent = request.get("messages")
    return isinstance(sent, list) and all(isinstance(m, dict) and "role" in m for m in sent)


def _json_value(attrs: Attrs, name: str) -> Any:
    mime = attrs.take_str(f"{name}.mime_type")
    value = attrs.take(f"{name}.value")
    return _parsed(value) if mime == "application/json" else value


def _choices(outputs: list[dict[str, Any]], finish: str | None = None) -> list[dict[str, Any]]:
    return [{"index": i, "message": m, "finish_reason": finish} for i, m in enumerate(outputs)]


def _template(event: dict[str, Any], attrs: Attrs) -> None:
    template = attrs.take_str("llm.prompt_template.template")
    variables = attrs.take_json("llm.prompt_template.variables")
    if template is None:
        return
    try:
        chat = json.loads(template)
    except (ValueError, RecursionError):
        chat = None
    if isinstance(chat, list) and all(isinstance(m, dict) for m in chat):
        event.setdefault("template_chat", chat)
    else:
        event.setdefault("template_text", template)
    if isinstance(variables, dict):
        event.setdefault("template_params", variables)
