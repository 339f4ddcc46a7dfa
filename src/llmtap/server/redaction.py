"""Server-side PII redaction, per project, for events from SDKs that do not redact themselves.

The ``redact_fields`` setting (``LLMTAP_REDACT_FIELDS``) maps a project name, or ``"*"`` for
every project, to the event fields to redact on ingest: a list of names from
``llmtap.pii.EVENT_TEXT_FIELDS`` plus ``"feedback"`` (a feedback's better response), or
``"all"`` for all of them. A project named explicitly uses its own entry, not ``"*"``'s::

    LLMTAP_REDACT_FIELDS='{"shop": ["request", "response", "output_text"], "*": "all"}'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..pii import EVENT_TEXT_FIELDS, redact_event, redact_value, require
from ..wire import ErrorInfo, Event

__all__ = ["FEEDBACK", "Redaction"]

FEEDBACK = "feedback"
_KNOWN = frozenset(EVENT_TEXT_FIELDS) | {FEEDBACK}


class Redaction:
    """Which fields to redact for which project; ``apply`` does it to one event."""

    def __init__(self, config: Mapping[str, Any] | None) -> None:
        self._fields: dict[str, frozenset[str]] = {}
        for project, fields in (config or {}).items():
            if fields in ("all", "*", True):
                self._fields[project] = _KNOWN
                continue
            names = [fields] if isinstance(fields, str) else list(fields or [])
            unknown = set(names) - _KNOWN
            if unknown:
                raise ValueError(
                    f"redact_fields[{project!r}]: unknown fields {sorted(unknown)}; "
                    f"known: {sorted(_KNOWN)}, or 'all'"
                )
            self._fields[project] = frozenset(names)
        if self._fields:
            require()  # the server refuses to start rather than store what it should redact

    def fields_for(self, project: str) -> frozenset[str]:
        return self._fields.get(project, self._fields.get("*", frozenset()))

    def apply(self, event: Event, project: str) -> Event:
        """``event`` with the chosen fields of ``project`` redacted (a new event if any)."""
        fields = self.fields_for(project) - {FEEDBACK}
        if not fields:
            return event
        data = event.model_dump(mode="json", include=set(fields))
        redacted = redact_event(data, fields)
        return event.model_copy(update=_models(redacted))

    def held(self, project: str, lands_in: frozenset[str]) -> bool:
        """Whether a call's content held apart from its event (OTLP log records waiting for
        their span) is redacted as it is held, given the event fields it lands in: when any
        of them is redacted. A held copy may be less faithful than the event would have
        been (an answer lands in ``response`` and ``output_text``), never less private."""
        return bool(lands_in & self.fields_for(project))

    def attributes(self, attributes: dict[str, Any], project: str) -> dict[str, Any]:
        """Attributes held apart from an event (an OTLP context span's), redacted as an
        event's ``attributes`` field is for ``project``."""
        if "attributes" not in self.fields_for(project):
            return attributes
        return redact_value(attributes)  # type: ignore[no-any-return]

    def feedback(self, better_response: str | None, project: str) -> str | None:
        if better_response is None or FEEDBACK not in self.fields_for(project):
            return better_response
        return redact_value(better_response)  # type: ignore[no-any-return]


def _models(redacted: dict[str, Any]) -> dict[str, Any]:
    """The redacted fields as the event holds them (``error`` is a model, not a dict)."""
    if isinstance(redacted.get("error"), dict):
        redacted["error"] = ErrorInfo.model_validate(redacted["error"])
    return redacted
