"""Finding spans with the recognizers and replacing them; walking JSON-like values."""

from __future__ import annotations

import bisect
import functools
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from . import REDACTION_FAILED
from ._names import is_name_key, looks_like_name, strip_title
from ._recognizers import RECOGNIZERS

__all__ = ["find", "redact_event", "redact_text", "redact_value"]

log = logging.getLogger("llmtap")

# Text shorter than this cannot hold any of the kinds (the shortest: "Bo Li", "a@b.co");
# skipping it saves most of the work on ids and enum values.
_SHORTEST = 5
# Fields that are ids: their redacted form is cut to the schema's bound.
_ID_FIELDS = {"chat_id": 512, "chain_id": 512}


def find(text: str) -> list[tuple[int, int, str]]:
    """The (start, end, entity) spans of personal data in ``text``, in order, not
    overlapping. Where two kinds claim the same characters, the earlier recognizer wins."""
    taken: list[tuple[int, int, str]] = []  # sorted by start, never overlapping
    seen = text
    for recognizer in RECOGNIZERS:
        if not recognizer.hint(seen):
            continue
        before = len(taken)
        for start, end in recognizer.find(seen):
            # Not overlapping what another kind claimed, nor this kind's own earlier spans
            # (two patterns of one kind can find the same secret). A bisection, not a scan:
            # text with thousands of spans must not take quadratic time.
            i = bisect.bisect_left(taken, (start,))
            if end <= start or (i and taken[i - 1][1] > start):
                continue
            if i < len(taken) and taken[i][0] < end:
                continue
            taken.insert(i, (start, end, recognizer.entity))
        if len(taken) > before:
            # Later recognizers do not see what is already claimed (a card's digits are no
            # phone number): same length, so positions stay, and no character they match.
            seen = _masked(text, taken)
    return taken


def _masked(text: str, spans: list[tuple[int, int, str]]) -> str:
    chars = list(text)
    for start, end, _ in spans:
        chars[start:end] = "\x00" * (end - start)
    return "".join(chars)


# -- placeholders and pseudonyms ------------------------------------------------------------

_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]")


def _normal(entity: str, value: str) -> str:
    """One spelling per value, so that one person gets one pseudonym: digits of a number
    without its separators, a name without its title and case, an address without case."""
    if entity in ("PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE"):
        compact = _NOT_ALNUM.sub("", value).upper()
        return compact[2:] if entity == "PHONE_NUMBER" and value.startswith("00") else compact
    if entity == "PERSON":
        value = strip_title(value)
    return " ".join(value.split()).casefold()


def _token(entity: str, value: str, key: bytes | None) -> str:
    if key is None:
        return f"<{entity}>"
    message = f"{entity}\x00{_normal(entity, value)}".encode()
    return f"<{entity}:{hmac.new(key, message, hashlib.sha256).hexdigest()[:6]}>"


def redact_text(text: str, key: bytes | None = None) -> str:
    if len(text) < _SHORTEST:
        return text
    return _replaced(text, find(text), key)


# Keys that say what their value is ({"phone": "4155550132"}, {"password": "..."}): the value
# is read after its key, as in running text, so the context words the recognizers know (a
# phone's, a card's, a credential's assignment) apply to it.
_CONTEXT_KEY = re.compile(
    r"(?i)phone|tel(?:$|_)|mobile|cell|fax|whatsapp|contact|pass(?:word|wd)|secret|token"
    r"|api[_-]?key|card|ssn|social|iban"
)


def _redact_after_key(text: str, name: str, key: bytes | None) -> str:
    prefix = f"{name}: "
    n = len(prefix)
    spans = [(s - n, e - n, kind) for s, e, kind in find(prefix + text) if s >= n]
    return _replaced(text, spans, key)


def _replaced(text: str, spans: list[tuple[int, int, str]], key: bytes | None) -> str:
    if not spans:
        return text
    out, position = [], 0
    for start, end, entity in spans:
        out.append(text[position:start])
        out.append(_token(entity, text[start:end], key))
        position = end
    out.append(text[position:])
    return "".join(out)


# -- JSON-like values -----------------------------------------------------------------------


def _safe_text(text: str, key: bytes | None, field: str | None = None) -> str:
    try:
        if field is not None and is_name_key(field) and looks_like_name(text):
            return _token("PERSON", text, key)  # {"name": "Mei Chen"}: the field says so
        if field is not None and len(field) <= 40 and _CONTEXT_KEY.search(field):
            return _redact_after_key(text, field, key)
        inner = _json_inside(text)
        if inner is not None:  # tool-call arguments: redacted as JSON, keys giving context
            redacted = redact_value(inner, key)
            return text if redacted == inner else json.dumps(redacted, ensure_ascii=False)
        return redact_text(text, key)
    except Exception as exc:  # never send what could not be checked
        log.warning("llmtap: PII redaction failed on a string, its content is dropped: %r", exc)
        return REDACTION_FAILED


def _json_inside(text: str) -> Any:
    """The object or array ``text`` holds as JSON, else None."""
    stripped = text.strip()
    if len(stripped) < 2 or (stripped[0], stripped[-1]) not in (("{", "}"), ("[", "]")):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):  # too deep to parse: redacted as text instead
        return None
    return value if isinstance(value, (dict, list)) else None


@functools.lru_cache(maxsize=4096)
def _redacted_key(name: str, key: bytes | None) -> str:
    # Keys repeat from event to event ("role", "content"): each is checked once.
    return _safe_text(name, key)


def redact_value(value: Any, key: bytes | None = None, field: str | None = None) -> Any:
    if isinstance(value, str):
        return _safe_text(value, key, field)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for name, item in value.items():
            new_name = _redacted_key(name, key) if isinstance(name, str) else name
            if new_name != name:  # two keys redacted alike must not overwrite each other
                base, n = new_name, 1
                while new_name in out or new_name in value:
                    n += 1
                    new_name = f"{base}#{n}"
            out[new_name] = redact_value(item, key, name if isinstance(name, str) else None)
        return out
    if isinstance(value, (list, tuple)):
        return [redact_value(item, key, field) for item in value]
    if (
        type(value) is int
        and field is not None
        and len(field) <= 40
        and _CONTEXT_KEY.search(field)
        and value >= 10**6
    ):
        # {"phone_number": 4155550132, "card": 4111111111111111}: the number, read after its
        # key, is redacted (as the placeholder's text) when it is what the key says.
        text = str(value)
        redacted = _redact_after_key(text, field, key)
        return value if redacted == text else redacted
    return value  # other numbers, booleans, None: kept as they are


def redact_event(
    event: dict[str, Any], fields: Iterable[str], key: bytes | None = None
) -> dict[str, Any]:
    for name in fields:
        value = event.get(name)
        if value is None:
            continue
        try:
            redacted = redact_value(value, key)
            if name in _ID_FIELDS and isinstance(redacted, str):
                redacted = redacted[: _ID_FIELDS[name]]
            event[name] = redacted
        except Exception as exc:
            log.warning("llmtap: PII redaction failed on %r, the field is dropped: %r", name, exc)
            event[name] = {} if name in ("request", "attributes") else None
    return event
