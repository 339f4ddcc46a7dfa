"""Finding spans with the recognizers and replacing them; walking JSON-like values."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from . import REDACTION_FAILED
from ._recognizers import RECOGNIZERS

__all__ = ["find", "redact_event", "redact_text", "redact_value"]

log = logging.getLogger("llmtap")

# Text shorter than this cannot hold any of the kinds (the shortest, an IP like 1.1.1.1 or a
# name after "Hi ", is longer); skipping it saves most of the work on ids and enum values.
_SHORTEST = 7


def find(text: str) -> list[tuple[int, int, str]]:
    """The (start, end, entity) spans of personal data in ``text``, in order, not
    overlapping. Where two kinds claim the same characters, the earlier recognizer wins."""
    taken: list[tuple[int, int, str]] = []
    seen = text
    for recognizer in RECOGNIZERS:
        if not recognizer.hint(seen):
            continue
        found: list[tuple[int, int, str]] = []
        for start, end in recognizer.find(seen):
            # Not overlapping what another kind claimed, nor this kind's own earlier spans
            # (two patterns of one kind can find the same secret).
            if end > start and not any(s < end and start < e for s, e, _ in (*taken, *found)):
                found.append((start, end, recognizer.entity))
        if found:
            taken.extend(found)
            # Later recognizers do not see what is already claimed (a card's digits are no
            # phone number): same length, so positions stay, and no character they match.
            seen = _masked(text, taken)
    taken.sort()
    return taken


def _masked(text: str, spans: list[tuple[int, int, str]]) -> str:
    chars = list(text)
    for start, end, _ in spans:
        chars[start:end] = "\x00" * (end - start)
    return "".join(chars)


def redact_text(text: str) -> str:
    if len(text) < _SHORTEST:
        return text
    spans = find(text)
    if not spans:
        return text
    out, position = [], 0
    for start, end, entity in spans:
        out.append(text[position:start])
        out.append(f"<{entity}>")
        position = end
    out.append(text[position:])
    return "".join(out)


def _safe_text(text: str) -> str:
    try:
        return redact_text(text)
    except Exception as exc:  # never send what could not be checked
        log.warning("llmtap: PII redaction failed on a string, its content is dropped: %r", exc)
        return REDACTION_FAILED


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return _safe_text(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item) for item in value]
    return value  # numbers, booleans, None: kept as they are


def redact_event(event: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    for name in fields:
        value = event.get(name)
        if value is None:
            continue
        try:
            event[name] = redact_value(value)
        except Exception as exc:
            log.warning("llmtap: PII redaction failed on %r, the field is dropped: %r", name, exc)
            event[name] = {} if name in ("request", "attributes") else None
    return event
