"""PII redaction: personal data and secrets in text replaced by typed placeholders, or by
pseudonyms that stay the same for the same value.

    >>> from llmtap.pii import redact_text
    >>> redact_text("Hi Ana, write to ana@example.com")
    'Hi <PERSON>, write to <EMAIL_ADDRESS>'
    >>> redact_text("write to ana@example.com", key=pseudonym_key("pseudonymize", "s3cret"))
    'write to <EMAIL_ADDRESS:dd7a5e>'

Used by the SDK (``redact_pii=True``, or ``"pseudonymize"`` with ``pii_secret``: an event is
redacted on the exporter's thread, before it is serialised, so nothing leaves the process
unredacted) and by the server (the ``redact_fields`` setting, for events that come from other
SDKs). Needs the ``pii`` extra: ``pip install 'llmtap[pii]'``.
"""

from __future__ import annotations

from typing import Any

from ..wire import TEXT_FIELDS

__all__ = [
    "ENTITY_TYPES",
    "EVENT_TEXT_FIELDS",
    "PSEUDONYMIZE",
    "PiiExtraMissing",
    "check_mode",
    "pseudonym_key",
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
# The fields of an event (wire v1) that carry user text, and the two ids users make up (a chat
# id is often a user's e-mail); the others are ids, names, numbers and times llmtap itself
# made or that say how the call was made.
EVENT_TEXT_FIELDS = (*TEXT_FIELDS, "chat_id", "chain_id")
# ``redact_pii="pseudonymize"``: each value becomes <TYPE:hash>, a hash keyed by ``pii_secret``.
PSEUDONYMIZE = "pseudonymize"
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


def check_mode(redact_pii: Any, pii_secret: str | None) -> None:
    """Raise ValueError unless ``redact_pii`` is a bool or ``"pseudonymize"`` with a secret."""
    if redact_pii == PSEUDONYMIZE:
        if not pii_secret:
            raise ValueError(
                "llmtap: redact_pii='pseudonymize' needs pii_secret (or LLMTAP_PII_SECRET): the "
                "key that makes one value the same pseudonym in every event"
            )
    elif not isinstance(redact_pii, bool):
        raise ValueError(f"llmtap: redact_pii is True, False or 'pseudonymize', not {redact_pii!r}")


def pseudonym_key(redact_pii: Any, pii_secret: str | None) -> bytes | None:
    """The key pseudonyms are made with, or None for plain placeholders."""
    if redact_pii == PSEUDONYMIZE and pii_secret:
        return pii_secret.encode()
    return None


def redact_text(text: str, key: bytes | None = None) -> str:
    """``text`` with every piece of personal data replaced by ``<ENTITY_TYPE>``, or with
    ``key`` by ``<ENTITY_TYPE:hash>``, the same for the same value and key."""
    from ._engine import redact_text as redact

    return redact(text, key)


def redact_value(value: Any, key: bytes | None = None) -> Any:
    """A copy of ``value`` (JSON-like: dicts, lists, strings, numbers) with every string
    redacted, dict keys included; a string that holds a JSON object or array (tool-call
    arguments) is redacted as JSON. Types are kept: a number stays a number. A string that
    fails to redact becomes ``<REDACTION_FAILED>``. ``value`` itself is never changed."""
    from ._engine import redact_value as redact

    return redact(value, key)


def redact_event(
    event: dict[str, Any], fields: Any = EVENT_TEXT_FIELDS, key: bytes | None = None
) -> dict[str, Any]:
    """``event`` (a wire v1 event dict) with ``fields`` redacted, in place; returned. A field
    whose redaction fails is emptied rather than sent."""
    from ._engine import redact_event as redact

    return redact(event, fields, key)
