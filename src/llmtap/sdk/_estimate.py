"""Token counts for calls whose provider reported no usage, marked ``estimated``.

Counted with ``bpe-openai`` (the ``llmtap[tokenizer]`` extra), which ships OpenAI's encodings
inside its wheel and so works offline; ``tiktoken`` is not used, as it downloads its encodings
at run time. Without the extra nothing is estimated: a guess from character counts would
look like a measurement on the dashboard. Runs on the exporter's thread only.
"""

from __future__ import annotations

import json
import threading
import warnings
from typing import Any

__all__ = ["estimate_usage"]

# What a chat message costs beyond its text, as OpenAI counts it (role and separators), and the
# tokens that prime the reply.
_PER_MESSAGE = 3
_REPLY_PRIMING = 3

_encodings: dict[str, Any] = {}
_lock = threading.Lock()
_MISSING = object()


def _encoding(model: str | None) -> Any:
    key = model or ""
    found = _encodings.get(key)
    if found is not None:
        return None if found is _MISSING else found
    # bpe-openai reads its bundled data with a deprecated importlib call: not ours to warn
    # about in the user's process.
    with _lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import bpe_openai
        except ImportError:
            encoding: Any = _MISSING
        else:
            try:
                encoding = bpe_openai.encoding_for_model(model or "gpt-4o")
            except Exception:
                encoding = bpe_openai.get_encoding("o200k_base")
            encoding.encode("warm up")
        _encodings[key] = encoding
    return None if encoding is _MISSING else encoding


def _texts(value: Any) -> list[str]:
    """Every piece of text in a prompt: a string, or messages and their content parts."""
    if isinstance(value, str):
        return [value]
    out: list[str] = []
    if isinstance(value, dict):
        for key in ("content", "text", "input", "arguments", "name"):
            out.extend(_texts(value.get(key)))
        for call in value.get("tool_calls") or ():
            out.extend(_texts((call or {}).get("function")))
    elif isinstance(value, list):
        for item in value:
            out.extend(_texts(item))
    return out


def _calls(api: str, response: Any) -> list[str]:
    """The names and arguments of the tool calls an answer made: output tokens its text
    leaves out."""
    out: list[str] = []
    if not isinstance(response, dict):
        return out
    if api == "chat":
        for choice in response.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict):
                for call in message.get("tool_calls") or ():
                    out.extend(_texts((call or {}).get("function")))
    elif api == "responses":
        for item in response.get("output") or ():
            if isinstance(item, dict) and item.get("type") == "function_call":
                out.extend(_texts({"name": item.get("name"), "arguments": item.get("arguments")}))
    return out


def _tools(request: dict[str, Any]) -> list[str]:
    """The tools a request offers, each as its JSON: input tokens the model reads."""
    tools = request.get("tools")
    if not isinstance(tools, list):
        return []
    return [json.dumps(tool, separators=(",", ":"), default=str) for tool in tools]


def estimate_usage(
    api: str,
    model: str | None,
    request: dict[str, Any],
    output_text: str | None,
    response: Any = None,
) -> dict[str, Any] | None:
    """Usage counted locally from the request (its tools too) and the answer (its text and
    tool calls), or None when no tokenizer is installed."""
    encoding = _encoding(model)
    if encoding is None:
        return None
    count = encoding.encode_ordinary if hasattr(encoding, "encode_ordinary") else encoding.encode
    if api == "chat":
        messages = request.get("messages") or []
        prompt = sum(_PER_MESSAGE + sum(len(count(t)) for t in _texts(m)) for m in messages if m)
        prompt += _REPLY_PRIMING
    else:
        key = {"completion": "prompt", "embeddings": "input"}.get(api, "input")
        prompt = sum(len(count(t)) for t in _texts(request.get(key)))
        if api == "responses":
            prompt += sum(len(count(t)) for t in _texts(request.get("instructions")))
    prompt += sum(len(count(t)) for t in _tools(request))
    output = len(count(output_text)) if output_text and api != "embeddings" else 0
    output += sum(len(count(t)) for t in _calls(api, response))
    return {
        "input_tokens": prompt,
        "output_tokens": output if api != "embeddings" else None,
        "cached_tokens": None,
        "reasoning_tokens": None,
        "total_tokens": prompt + output,
        "estimated": True,
    }
