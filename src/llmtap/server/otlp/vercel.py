"""Vercel's AI SDK (``experimental_telemetry``): ``ai.*`` attributes. The provider call is the
inner span (``ai.generateText.doGenerate``, ``ai.streamText.doStream``, ``ai.embed.doEmbed``
...); the outer one (``ai.generateText``) wraps it, retries and tool steps included, and is no
model call of its own. Messages come in the AI SDK's shape (content parts ``text``,
``tool-call``, ``tool-result``) and become OpenAI chat messages; usage by the names of
either generation (``promptTokens`` before 5.0, ``inputTokens`` since)."""

from __future__ import annotations

import json
from typing import Any

from .common import Attrs, count_of
from .decode import Span

__all__ = ["api_of", "fill"]

_CALLS = {
    "doGenerate": "chat",
    "doStream": "chat",
    "doEmbed": "embeddings",
}
_SETTINGS = {
    "temperature": "temperature",
    "maxOutputTokens": "max_tokens",
    "maxTokens": "max_tokens",
    "topP": "top_p",
    "frequencyPenalty": "frequency_penalty",
    "presencePenalty": "presence_penalty",
    "stopSequences": "stop",
    "seed": "seed",
}


def api_of(attrs: Attrs) -> str | None:
    """The event's ``api`` for a provider call of the AI SDK; None for its other spans."""
    operation = attrs.rest.get("ai.operationId")
    if not isinstance(operation, str) or not operation.startswith("ai."):
        return None
    return _CALLS.get(operation.rsplit(".", 1)[-1])


def _first_count(*values: Any) -> int | None:
    """The first of ``values`` that is a count of tokens."""
    return next((n for n in map(count_of, values) if n is not None), None)


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return None
    return value


def _call(part: dict[str, Any]) -> dict[str, Any]:
    arguments = part.get("input", part.get("args"))
    return {
        "id": part.get("toolCallId"),
        "type": "function",
        "function": {
            "name": part.get("toolName"),
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        },
    }


def _message(message: Any) -> list[dict[str, Any]]:
    """An AI SDK message as OpenAI chat messages (tool results are one message each)."""
    if not isinstance(message, dict):
        return []
    role, content = message.get("role", "user"), message.get("content")
    if isinstance(content, str) or content is None:
        return [{"role": role, "content": content}]
    texts, calls, results = [], [], []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "tool-call":
            calls.append(_call(part))
        elif kind == "tool-result":
            result = part.get("output", part.get("result"))
            text = result if isinstance(result, str) else json.dumps(result)
            results.append(
                {"role": "tool", "tool_call_id": part.get("toolCallId"), "content": text}
            )
    if results:
        return results
    out: dict[str, Any] = {"role": role, "content": "".join(texts) if texts else None}
    if calls:
        out["tool_calls"] = calls
    return [out]


def fill(event: dict[str, Any], span: Span, attrs: Attrs) -> None:
    """Set the event's fields the ``ai.*`` attributes give (where not set already)."""
    attrs.take("ai.operationId")
    attrs.take("operation.name")
    provider = attrs.take_str("ai.model.provider")  # "openai.chat": the library's name first
    model = attrs.take_str("ai.response.model") or attrs.take_str("ai.model.id")
    # Its GenAI names say the same ("gen_ai.system": "openai.chat"): the provider is the
    # first word.
    if provider and event.get("provider") in (None, provider.lower()):
        event["provider"] = provider.split(".", 1)[0]
    if model:
        event.setdefault("model", model)
    messages = _json(attrs.take("ai.prompt.messages"))
    request: dict[str, Any] = {"model": attrs.take_str("ai.model.id") or model}
    if isinstance(messages, list):
        request["messages"] = [m for raw in messages for m in _message(raw)]
    for name, argument in _SETTINGS.items():
        value = attrs.take(f"ai.settings.{name}")
        if value is not None:
            request[argument] = value
    # An embedding call's inputs (``ai.embedMany``: each value as JSON; ``ai.embed``: one).
    values = attrs.take("ai.values")
    value = attrs.take("ai.value")
    if isinstance(values, list):
        inputs = [_json(v) for v in values]
        request["input"] = inputs[0] if len(inputs) == 1 else inputs
    elif value is not None:
        request["input"] = _json(value)
    # The vectors themselves are not kept (as the SDK's embeddings events keep only sizes).
    vectors = attrs.take("ai.embeddings")
    vector = attrs.take("ai.embedding")
    if isinstance(vectors, list) or vector is not None:
        sizes = [len(_json(v) or ()) for v in (vectors if isinstance(vectors, list) else [vector])]
        data = [
            {"index": i, "embedding": f"[{n} floats omitted by llmtap]"}
            for i, n in enumerate(sizes)
        ]
        event.setdefault("response", {"model": model, "data": data})
    tools = attrs.take("ai.prompt.tools")
    if isinstance(tools, list):
        request["tools"] = [_json(t) for t in tools]
    # The GenAI names on the same span may have begun the request (model, settings): the
    # messages are only here.
    known = event.setdefault("request", {})
    for name, value in request.items():
        if value is not None:
            known.setdefault(name, value)
    text = attrs.take_str("ai.response.text")
    calls = _json(attrs.take("ai.response.toolCalls"))
    finish = attrs.take_str("ai.response.finishReason")
    if text is not None or isinstance(calls, list):
        answer: dict[str, Any] = {"role": "assistant", "content": text}
        if isinstance(calls, list) and calls:
            answer["tool_calls"] = [_call(c) for c in calls if isinstance(c, dict)]
        choice = {"index": 0, "message": answer, "finish_reason": finish}
        response = {"id": attrs.take_str("ai.response.id"), "model": model, "choices": [choice]}
        event.setdefault("response", response)
        if text is not None:
            event.setdefault("output_text", text)
    # AI SDK 6 counts the input whole and details it (``inputTokenDetails``); AI SDK 5 gives
    # the provider's own count, which for Anthropic leaves out the tokens read from and
    # written to the prompt cache (the written ones only in the provider's metadata).
    input_details = attrs.take_prefix("ai.usage.inputTokenDetails.")
    output_details = attrs.take_prefix("ai.usage.outputTokenDetails.")
    metadata = _json(attrs.take("ai.response.providerMetadata"))
    usage = {
        "input_tokens": attrs.take_int("ai.usage.inputTokens"),
        "output_tokens": attrs.take_int("ai.usage.outputTokens"),
        "cached_tokens": _first_count(
            attrs.take_int("ai.usage.cachedInputTokens"), input_details.get("cacheReadTokens")
        ),
        "reasoning_tokens": _first_count(
            attrs.take_int("ai.usage.reasoningTokens"), output_details.get("reasoningTokens")
        ),
        "cache_creation_tokens": _first_count(input_details.get("cacheWriteTokens")),
    }
    exclusive = not input_details and "anthropic" in (provider or "").lower()
    if exclusive:
        anthropic = metadata.get("anthropic") if isinstance(metadata, dict) else None
        written = anthropic.get("cacheCreationInputTokens") if isinstance(anthropic, dict) else None
        usage["cache_creation_tokens"] = _first_count(written)
    usage["input_tokens"] = (
        usage["input_tokens"]
        or attrs.take_int("ai.usage.promptTokens")
        or attrs.take_int("ai.usage.tokens")  # an embedding call's
    )
    usage["output_tokens"] = usage["output_tokens"] or attrs.take_int("ai.usage.completionTokens")
    total = attrs.take_int("ai.usage.totalTokens")
    if usage["input_tokens"] is not None and usage["output_tokens"] is not None:
        total = usage["input_tokens"] + usage["output_tokens"]
    if any(v is not None for v in usage.values()):
        usage["total_tokens"] = total
        # Its spans carry the GenAI names too, with the totals only: the cached and reasoning
        # counts come from here, field by field, under what an earlier convention set.
        merged = event.setdefault("usage", {})
        for name, value in usage.items():
            if value is not None:
                merged.setdefault(name, value)
        cached, given = merged.get("cached_tokens"), merged.get("input_tokens")
        if given is not None and (exclusive or (cached is not None and cached > given)):
            # Not included in the input: llmtap's input tokens include those read from the
            # cache and written to it, as OpenAI counts them.
            merged["input_tokens"] = (
                given + (cached or 0) + (merged.get("cache_creation_tokens") or 0)
            )
            if merged.get("output_tokens") is not None:
                merged["total_tokens"] = merged["input_tokens"] + merged["output_tokens"]
    first = attrs.take("ai.response.msToFirstChunk")
    if isinstance(first, int | float) and not isinstance(first, bool) and first >= 0:
        event.setdefault("ttft_ms", float(first))
    function = attrs.take_str("ai.telemetry.functionId")
    metadata = attrs.take_prefix("ai.telemetry.metadata.")
    extra = {**metadata, **({"function_id": function} if function else {})}
    if extra:
        event.setdefault("attributes", {}).update(extra)
