"""What every convention's mapping shares: reading a span's attributes (each one read is
taken, so what no mapping used is left for the event's ``attributes``), and the event fields
that come from the span itself (ids, times, status, error, source)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from .decode import Span

__all__ = [
    "ANNOTATION_PREFIXES",
    "HELD_ORDER",
    "Attrs",
    "base_event",
    "count_of",
    "event_id",
    "message_text",
    "normalized_error_type",
    "ordered_messages",
    "put_tool_call",
    "valid_ids",
]

# Event ids of spans: derived, so a span sent twice (an exporter's retry) is stored once; per
# project, so two projects sending the same ids do not collide.
_NAMESPACE = uuid.UUID("5c4a7f0e-3b1d-4f6e-9a43-0a0d7e1f2b6c")
_NAMESPACE_BYTES = _NAMESPACE.bytes
# "Error code: 429 - ..." is how the OpenAI and Anthropic SDKs word an HTTP error.
_STATUS_IN_MESSAGE = re.compile(r"\b(?:Error code|status(?: code)?):? ([1-5]\d\d)\b")
# Resource attributes about the OTel SDK itself, not the application: left out.
_NOISE = ("telemetry.sdk.", "telemetry.auto.")
# OpenInference's annotations (in every scope): feedback (see ``evaluation``), not attributes.
ANNOTATION_PREFIXES = tuple(
    f"{scope}{plural}."
    for scope in ("", "trace.", "session.")
    for plural in ("annotations", "evaluations")
)


class _HeldOrder:
    """Keeps a logs request from holding a call's records while a traces request of the same
    project is between reading the records held for its spans and storing their events.

    A traces request reads what is held, then stores; a logs request holds, then looks for
    the events its records belong to (and refuses records whose event is stored). A logs
    request that held and looked in between would find no event yet, and the traces request
    had read before the records were there: the records silently left out of the event. In
    order, the records are in the event, or refused saying why. Traces requests pass
    together; a logs request waits for those under way, and new ones wait for it. In this
    process: several processes (``--workers``, PostgreSQL) keep that window between them."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._reading: Counter[int] = Counter()  # traces requests under way, by project
        self._holding: Counter[int] = Counter()  # logs requests holding or waiting to

    @contextmanager
    def traces(self, project_id: int) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._holding[project_id])
            self._reading[project_id] += 1
        try:
            yield
        finally:
            with self._changed:
                self._reading[project_id] -= 1
                self._changed.notify_all()

    @contextmanager
    def logs(self, project_id: int) -> Iterator[None]:
        with self._changed:
            self._holding[project_id] += 1  # from now on, new traces requests wait
            self._changed.wait_for(lambda: not self._reading[project_id])
        try:
            yield
        finally:
            with self._changed:
                self._holding[project_id] -= 1
                self._changed.notify_all()


HELD_ORDER = _HeldOrder()


class Attrs:
    """A span's attributes, consumed as they are read."""

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.rest = dict(attributes)

    def take(self, key: str) -> Any:
        return self.rest.pop(key, None)

    def take_str(self, key: str) -> str | None:
        value = self.rest.pop(key, None)
        return None if value is None else str(value)

    def take_int(self, key: str) -> int | None:
        return count_of(self.rest.pop(key, None))

    def take_json(self, key: str) -> Any:
        """A value some conventions send as a JSON string: parsed when it is one."""
        value = self.rest.pop(key, None)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except (ValueError, RecursionError):
                return value
        return value

    def take_prefix(self, prefix: str) -> dict[str, Any]:
        """The attributes under ``prefix``, keyed by the rest of their name."""
        found = {k[len(prefix) :]: v for k, v in self.rest.items() if k.startswith(prefix)}
        for key in found:
            del self.rest[prefix + key]
        return found


def count_of(value: Any) -> int | None:
    """``value`` as a count (of tokens): a whole number, not negative, else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number >= 0 else None


def valid_ids(trace_id: str, span_id: str) -> bool:
    """Ids (hex) as OTLP defines them: a trace id of 16 bytes, a span id of 8, neither all
    zeros. What an event's id is made of, so spans (or records) with the empty or zero id
    would all land on one event."""
    return (
        len(trace_id) == 32
        and len(span_id) == 16
        and trace_id.strip("0") != ""
        and span_id.strip("0") != ""
    )


def event_id(project_id: int, trace_id: str, span_id: str) -> str:
    """``str(uuid.uuid5(_NAMESPACE, "project:trace:span"))``, spelled out: the standard
    library's makes a ``UUID`` object on the way, three times the cost of a span's id (and of
    its parent's)."""
    name = f"{project_id}:{trace_id}:{span_id}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name).digest()[:16])
    digest[6] = digest[6] & 0x0F | 0x50  # version 5
    digest[8] = digest[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def normalized_error_type(raw: str) -> str:
    """``<class 'openai.RateLimitError'>`` or ``openai.RateLimitError``: ``RateLimitError``,
    as the llmtap SDK records it."""
    text = raw.strip()
    if text.startswith("<class '") and text.endswith("'>"):
        text = text[8:-2]
    return text.rsplit(".", 1)[-1] or raw


def message_text(messages: list[dict[str, Any]]) -> str | None:
    """The output's text, choices one per line (as the SDK's ``output_text``)."""
    texts = [m["content"] for m in messages if isinstance(m.get("content"), str)]
    return "\n".join(texts) if texts else None


def put_tool_call(message: dict[str, Any], index: int, name: str, value: Any) -> None:
    """One flattened attribute of a message's tool call (``id``, ``name``, ``arguments``, or
    ``function.name``...), set on the call ``index`` of ``message`` being rebuilt."""
    entry = message.setdefault("_calls", {}).setdefault(index, {"type": "function", "function": {}})
    name = name.removeprefix("function.")
    if name in ("name", "arguments"):
        entry["function"][name] = value
    else:
        entry[name] = value


def ordered_messages(by_index: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages rebuilt from flattened attributes, in order, their tool calls as a list."""
    out = []
    for _, message in sorted(by_index.items()):
        calls = message.pop("_calls", None)
        if calls:
            message.setdefault("content", None)
            message["tool_calls"] = [c for _, c in sorted(calls.items())]
        out.append(message)
    return out


def _time(unix_nano: int) -> str:
    return datetime.fromtimestamp(unix_nano / 1e9, tz=timezone.utc).isoformat()


def base_event(span: Span, project_id: int, attrs: Attrs) -> dict[str, Any]:
    """The fields of the event of ``span`` that do not depend on the convention."""
    start, end = span.start_unix_nano, span.end_unix_nano
    event: dict[str, Any] = {
        "id": event_id(project_id, span.trace_id, span.span_id),
        "started_at": _time(start),
        "latency_ms": (end - start) / 1e6 if end and end >= start else None,
        "chain_id": span.trace_id,
        "parent_event_id": (
            event_id(project_id, span.trace_id, span.parent_span_id)
            if span.parent_span_id
            else None
        ),
        "sdk": {"name": span.scope_name or "otlp", "version": span.scope_version},
    }
    error = _error(span, attrs)
    event["status"] = "error" if error else "ok"
    event["error"] = error
    return event


def _error(span: Span, attrs: Attrs) -> dict[str, Any] | None:
    error_type = attrs.take_str("error.type")
    exceptions = [e.attributes for e in span.events if e.name == "exception"]
    if not span.status_error and not error_type and not exceptions:
        return None
    last = exceptions[-1] if exceptions else {}
    raw_type = last.get("exception.type") or error_type or "error"
    message = span.status_message or str(last.get("exception.message") or "")
    status = attrs.take_int("http.response.status_code") or attrs.take_int("http.status_code")
    if status is None:
        found = _STATUS_IN_MESSAGE.search(message)
        status = int(found.group(1)) if found else None
    return {"type": normalized_error_type(str(raw_type)), "message": message, "status_code": status}


def finish(event: dict[str, Any], span: Span, attrs: Attrs) -> dict[str, Any]:
    """``event`` with its ``attributes``: the resource's and the span's left unread. The end
    user (``user.id``, OpenInference's and the current conventions' name; ``enduser.id``, the
    older one) is the ``user`` attribute, as the llmtap SDK's users set it, so one filter
    and one group-by find a user's calls however they were sent."""
    extra = {k: v for k, v in span.resource.items() if not k.startswith(_NOISE)}
    extra.update((k, v) for k, v in attrs.rest.items() if not k.startswith(ANNOTATION_PREFIXES))
    user = extra.pop("user.id", None) or extra.pop("enduser.id", None)
    if user is not None:
        extra.setdefault("user", user)
    extra["otel.span_name"] = span.name
    extra["otel.span_id"] = span.span_id
    event["attributes"] = {**extra, **event.get("attributes", {})}
    return {k: v for k, v in event.items() if v is not None}
