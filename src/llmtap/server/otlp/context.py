"""Spans that are no model call (tool executions, retrieval, agent steps, HTTP requests): the
context of their trace's calls, kept as rows of their own (see ``store._context``) unless the
``otlp_context_spans`` setting drops them. Their attributes are kept with the same field limit
and redaction as an event's attributes."""

from __future__ import annotations

import json
import math
from typing import Any

from ...wire import EARLIEST, LATEST, truncate_strings
from .decode import Span

__all__ = ["context_row", "kind_of"]

_EARLIEST_NS, _LATEST_NS = (int(t.timestamp()) * 1_000_000_000 for t in (EARLIEST, LATEST))
_OTEL_KINDS = {0: "span", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def kind_of(span: Span) -> str:
    """What the step is, by the most specific convention that says: OpenInference's kind
    (``TOOL``, ``RETRIEVER``, ``AGENT``...), GenAI's operation (``execute_tool``...), an HTTP
    request, else OpenTelemetry's span kind."""
    attributes = span.attributes
    for name in ("openinference.span.kind", "gen_ai.operation.name"):
        value = attributes.get(name)
        if isinstance(value, str) and value:
            return value.lower()
    if "http.request.method" in attributes or "http.method" in attributes:
        return "http"
    return _OTEL_KINDS.get(span.kind, "span")


def _text(value: str) -> str:
    """``value`` as text any store and page can hold: a lone surrogate (which JSON can
    escape) becomes a question mark."""
    return value.encode("utf-8", "replace").decode("utf-8")


def _finite(value: Any) -> Any:
    """``value`` with every number JSON can write (an infinite double becomes its text)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def context_row(span: Span, max_field_bytes: int | None) -> tuple[Any, ...] | None:
    """The row ``store.insert_context`` takes for ``span``; None when its start is outside
    the instants an event may have (see ``wire``): no page could show it."""
    start, end = span.start_unix_nano, span.end_unix_nano
    if not _EARLIEST_NS <= start <= _LATEST_NS:
        return None
    attributes: Any = _finite(span.attributes)
    if max_field_bytes is not None:
        attributes = truncate_strings(attributes, max_field_bytes, "", [])
    return (
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        _text(span.name[:512]),
        _text(kind_of(span)[:64]),
        start // 1000,
        (end - start) / 1e6 if end and end >= start else None,
        "error" if span.status_error else "ok",
        _text(json.dumps(attributes, ensure_ascii=False)),
    )
