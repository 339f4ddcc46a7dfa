"""PII redaction: personal data and secrets in text replaced by typed placeholders.

    >>> from llmtap.pii import redact_text
    >>> redact_text("Hi Ana, write to ana@example.com")
    'Hi <PERSON>, write to <EMAIL_ADDRESS>'

Used by the SDK (``redact_pii=True``: an event is redacted on the exporter's thread, before it
is serialised, so nothing leaves the process unredacted) and by the server (the
``redact_fields`` setting, for events that come from other SDKs). Needs the ``pii`` extra:
``pip install 'llmtap[pii]'``.
"""

from __future__ import annotations

from typing import Any

from ..wire import TEXT_FIELDS

__all__ = [
    "ENTITY_TYPES",
    "EVENT_TEXT_FIELDS",
    "PiiExtraMissing",
    "redact_event",
    "redact_text",
    "redact_value",
    "require",
]

ENTITY_TYPES = (
    "SECRET",
    "EMAIL_ADDRESS",
    "IBAN_CODE",
    "CREDIT_CARD",
    "US_SSN",
    "IP_ADDRESS",
    "PHONE_NUMBER",
    "STREET_ADDRESS",
    "PERSON",
)
# The fields of an event (wire v1) that carry user text; the others are ids, names, numbers
# and times llmtap itself made or that say how the call was made.
EVENT_TEXT_FIELDS = TEXT_FIELDS
# What a string becomes when redacting it failed: its content is dropped, never sent.
REDACTION_FAILED = "<REDACTION_FAILED>"


class PiiExtraMissing(ImportError):
    """``redact_pii`` was asked for, but the ``pii`` extra is not installed."""


def require() -> None:
    """Raise :class:`PiiExtraMissing`, saying what to install, unless redaction can run."""
    try:
        from . import _recognizers  # noqa: F401
    except ImportError as exc:
        raise PiiExtraMissing(
            f"llmtap: redact_pii needs the 'pii' extra ({exc.name} is missing): "
            "pip install 'llmtap[pii]'"
        ) from exc


def redact_text(text: str) -> str:
    """``text`` with every piece of personal data replaced by ``<ENTITY_TYPE>``."""
    from ._engine import redact_text as redact

    return redact(text)


def redact_value(value: Any) -> Any:
    """A copy of ``value`` (JSON-like: dicts, lists, strings, numbers) with every string
    redacted. Keys are kept, and so are types: a number stays a number. A string that fails
    to redact becomes ``<REDACTION_FAILED>``. ``value`` itself is never changed."""
    from ._engine import redact_value as redact

    return redact(value)


def redact_event(event: dict[str, Any], fields: Any = EVENT_TEXT_FIELDS) -> dict[str, Any]:
    """``event`` (a wire v1 event dict) with ``fields`` redacted, in place; returned. A field
    whose redaction fails is emptied rather than sent."""
    from ._engine import redact_event as redact

    return redact(event, fields)
