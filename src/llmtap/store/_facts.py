"""What the derived tables (see ``_derive``) need from one event: its attributes as text, its
searchable text, whether it has usage, its template, and its cached and reasoning tokens
(kept in the body only, not in columns of the events table). Taken from the validated event at
ingest (on the request's thread, outside the write lock), or from a stored body when the
derived tables are rebuilt."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from ..wire import MAX_ATTRIBUTE_KEY, MAX_TOKENS, Event, template_of

__all__ = [
    "Facts",
    "attribute_text",
    "extra_tokens",
    "facts_of_body",
    "facts_of_event",
    "searchable_text",
    "token_count",
]


class Facts(NamedTuple):
    pairs: list[tuple[str, str]]  # attributes as (key, text), nulls left out
    text: str  # what ``q`` searches
    has_usage: bool
    template: Any  # what the revision is a hash of (see ``wire.template_of``)
    cached_tokens: int = 0  # usage.cached_tokens (0 when absent)
    reasoning_tokens: int = 0  # usage.reasoning_tokens (0 when absent)
    plain: bool = False  # made without a template: ``template`` is its prompt as sent


def attribute_text(value: Any) -> str | None:
    """An attribute value as the index and the filters compare it: what SQLite's
    ``CAST(json_extract(...) AS TEXT)`` gives (strings as they are, true as 1, objects as
    compact JSON); ``None`` for a null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# Of an object attribute's members, how deep and how many are indexed as keys of their own.
_NESTED_DEPTH = 3
_NESTED_PAIRS = 64


def _texts(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _texts(item, out)
    elif isinstance(value, dict):
        for key in ("content", "text", "input", "prompt", "messages"):
            if key in value:
                _texts(value[key], out)


def _search_text(request: dict[str, Any] | None, output_text: str | None) -> str:
    out: list[str] = []
    request = request or {}
    for key in ("messages", "prompt", "input"):
        _texts(request.get(key), out)
    if output_text:
        out.append(output_text)
    return "\n".join(out)


def searchable_text(body: dict[str, Any]) -> str:
    """What ``q`` searches: the prompt as sent (messages, prompt or input) and the output."""
    return _search_text(body.get("request"), body.get("output_text"))


def _pairs(attributes: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The (key, value) pairs the attribute index holds: each attribute, and the members of
    an object's (``{"params": {"audience": ...}}`` as ``params.audience`` too, to a depth of
    ``_NESTED_DEPTH``, at most ``_NESTED_PAIRS`` an event, names a query takes), so a filter
    or a group-by names them. A key is indexed once: an attribute named ``params.audience``
    wins."""
    pairs: dict[str, str] = {}
    nested: list[tuple[str, str]] = []
    for key, value in (attributes or {}).items():
        text = attribute_text(value)
        if text is not None:
            pairs[str(key)] = text
        if isinstance(value, dict):
            _members(str(key), value, 1, nested)
    for key, text in nested:
        pairs.setdefault(key, text)
    return list(pairs.items())


def _members(prefix: str, value: dict[str, Any], depth: int, out: list[tuple[str, str]]) -> None:
    for key, member in value.items():
        if len(out) >= _NESTED_PAIRS:
            return
        name = f"{prefix}.{key}"
        if len(name) > MAX_ATTRIBUTE_KEY:
            continue
        text = attribute_text(member)
        if text is not None:
            out.append((name, text))
        if isinstance(member, dict) and depth < _NESTED_DEPTH:
            _members(name, member, depth + 1, out)


def has_usage(body: dict[str, Any]) -> bool:
    usage = body.get("usage") or {}
    return any(usage.get(k) for k in ("input_tokens", "output_tokens", "total_tokens"))


def token_count(value: Any) -> int:
    """A stored usage count as the aggregates add it: a whole number of tokens, else 0 (a
    body stored before the wire's bounds may hold anything; see ``_repair``)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_TOKENS:
        return value
    return 0


def extra_tokens(body: dict[str, Any]) -> tuple[int, int]:
    """(cached, reasoning) tokens of a stored event's body."""
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return 0, 0
    return token_count(usage.get("cached_tokens")), token_count(usage.get("reasoning_tokens"))


def facts_of_body(body: dict[str, Any]) -> Facts:
    """The facts of a stored event's body (its JSON, parsed)."""
    return Facts(
        _pairs(body.get("attributes")),
        searchable_text(body),
        has_usage(body),
        template_of(Event.model_construct(**body)),
        *extra_tokens(body),
        body.get("template_chat") is None and body.get("template_text") is None,
    )


def facts_of_event(event: Event) -> Facts:
    """The facts of a validated event: the same as ``facts_of_body`` of its JSON."""
    usage = event.usage
    return Facts(
        _pairs(event.attributes),
        _search_text(event.request, event.output_text),
        bool(usage and (usage.input_tokens or usage.output_tokens or usage.total_tokens)),
        template_of(event),
        token_count(usage.cached_tokens) if usage else 0,
        token_count(usage.reasoning_tokens) if usage else 0,
        event.template_chat is None and event.template_text is None,
    )
