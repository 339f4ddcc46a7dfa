"""``POST /v1/traces`` (and ``/api/v1/otlp/v1/traces``): OTLP/HTTP traces, protobuf or JSON,
gzip or not, with an llmtap ingest key as ``Authorization: Bearer <key>``.

Answers follow the OTLP/HTTP spec: 200 with an ``ExportTraceServiceResponse`` in the
request's encoding, its ``partial_success`` counting the spans refused with the reasons (and,
with none refused, saying how many spans were not model calls and so ignored); 400 for a body
that is not OTLP, 413 over ``max_body_bytes``, 415 for another content type, 401/403 for keys
(each with a ``google.rpc.Status`` body: ``errors.otlp_error``); an empty protobuf body is
a request of no spans. Model-call spans are stored through ingest's own validation and
storing, so a span sent twice (same trace and span id) is stored once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ...store import KeyInfo, Store
from ..errors import ApiError
from ..ingest import read_body, store_valid, validate_items
from ..prices import Pricer
from ..redaction import Redaction
from .common import HELD_ORDER, event_id, valid_ids
from .context import context_row
from .decode import JSON, PROTOBUF, Span, decode, span_events, spans_of
from .evaluation import Judged, ratings_of
from .mapping import event_of

__all__ = [
    "Intake",
    "ingest_traces",
    "otlp_answer",
    "otlp_request",
    "receive_traces",
    "refusals",
]

log = logging.getLogger("llmtap.server")
# Parsing and mapping a big batch is CPU work: at most this many at once, so OTLP traffic
# cannot take every worker thread from the rest of the API.
_CONCURRENT = 2
_REASONS_SHOWN = 5


@dataclass(frozen=True)
class Intake:
    """How the server takes spans in: the limits, redaction and prices of every event, and
    whether spans that are no model call are kept as their trace's context."""

    max_field_bytes: int | None = None
    redaction: Redaction | None = None
    pricer: Pricer | None = None
    keep_context: bool = True


def ingest_traces(
    store: Store, key: KeyInfo, body: bytes, content_type: str, intake: Intake = Intake()
) -> tuple[int, str]:
    """Decode, map and store one OTLP body: (spans rejected, the message saying why)."""
    spans = spans_of(decode(body, content_type))
    with HELD_ORDER.traces(key.project_id):  # from reading the held records to storing
        return _ingest_spans(store, key, spans, intake)


def _ingest_spans(store: Store, key: KeyInfo, spans: list[Span], intake: Intake) -> tuple[int, str]:
    held = _with_held_records(store, key.project_id, spans)
    items: list[dict[str, Any]] = []
    refused: list[str] = []
    judged = Judged()
    context: list[tuple[Any, ...]] = []
    not_calls: set[str] = set()  # the event ids of this request's spans that are no call
    ignored = 0
    for span in spans:
        if not valid_ids(span.trace_id, span.span_id):
            refused.append(
                f"span {span.span_id or '(none)'}: an invalid trace or span id (a trace id is"
                " 16 bytes, a span id 8, neither all zeros)"
            )
            continue
        try:
            event = event_of(span, key.project_id)
        except Exception as exc:  # a span no mapping foresaw: it alone is refused
            log.warning("cannot map span %s: %r", span.span_id, exc)
            refused.append(f"span {span.span_id}: cannot be mapped: {exc}")
            continue
        if event is not None:
            items.append(event)
        else:
            not_calls.add(event_id(key.project_id, span.trace_id, span.span_id))
            if intake.keep_context and (row := _context(span, key, intake)) is not None:
                context.append(row)
            else:
                ignored += 1
        judged.add(ratings_of(span, key.project_id, is_call=event is not None))
    judged.unplace(not_calls)
    # Text that is not Unicode (a lone surrogate escaped in a JSON attribute) is refused per
    # span when the event is serialised (prepare): no walk of every event for it here.
    valid, errors = validate_items(items, check_text=False)
    limit = _limit(spans, intake.max_field_bytes)
    result = store_valid(
        store, key, valid, errors, len(items), limit, intake.redaction, intake.pricer
    )
    store.insert_context(key.project_id, context)
    if held:  # built into their events now (or refused with them: not kept for another try)
        store.forget_held(key.project_id, held)
    for rating in judged.ratings:
        store.insert_feedback(
            key.project_id, rating.feedback_key, rating.rating, None, rating.feedback_id
        )
    for error in result["errors"]:
        span_id = items[error["index"]]["attributes"].get("otel.span_id", "?")
        refused.append(f"span {span_id}: {error['error']}")
    if refused:
        return len(refused), refusals(refused, len(spans), "spans")
    notes = []
    if ignored:
        notes.append(f"{ignored} of {len(spans)} spans are not model calls and were not stored")
    if context:
        notes.append(f"{len(context)} of {len(spans)} spans are not model calls: kept as context")
    if judged.unrated:
        notes.append(f"{judged.unrated} evaluations had no rating from 0 to 1 and were not stored")
    if judged.unplaced:
        notes.append(
            f"{judged.unplaced} evaluations judge a trace, a session or a span that is no"
            " model call, and llmtap's feedback rates one call: not stored"
        )
    return 0, "; ".join(notes)


def _with_held_records(store: Store, project_id: int, spans: list[Span]) -> list[tuple[str, str]]:
    """Give each span the log records held for it (its call's messages, sent as events on the
    logs pipeline, see ``logs``) as events of its own; those records, ``(event id, record
    id)``."""
    ids: dict[str, list[Span]] = {}
    for span in spans:
        if valid_ids(span.trace_id, span.span_id):
            ids.setdefault(event_id(project_id, span.trace_id, span.span_id), []).append(span)
    held = store.held_records(project_id, list(ids)) if ids else {}
    for target, records in held.items():
        events = span_events([record for _, record in records])
        for span in ids[target]:  # each copy of a span sent twice: whichever is stored
            span.events.extend(events)
            # Their texts are the event's too: bound by the field limit as the span's own.
            span.wire_bytes += sum(len(record) for _, record in records)
    return [(target, record_id) for target, records in held.items() for record_id, _ in records]


def _context(span: Span, key: KeyInfo, intake: Intake) -> tuple[Any, ...] | None:
    if intake.redaction is not None:
        span.attributes = intake.redaction.attributes(span.attributes, key.project)
    return context_row(span, intake.max_field_bytes)


def _limit(spans: list[Span], max_field_bytes: int | None) -> int | None:
    """``max_field_bytes`` when some span's event may hold a text over it; else None (no
    walk of every event's texts). A text of an event comes from its span, resource and scope,
    and grows at most six times on the way (a byte of a control character JSON-escaped as
    ``\\u0000``; bytes attributes become hex, twice their size), plus the few ids the
    mapping adds."""
    if max_field_bytes is None:
        return None
    if any(6 * span.wire_bytes + 1024 > max_field_bytes for span in spans):
        return max_field_bytes
    return None


def _answer(rejected: int, message: str, content_type: str) -> Response:
    answer = ExportTraceServiceResponse()
    if rejected or message:
        answer.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
        )
    return otlp_answer(answer, content_type)


def refusals(refused: list[str], total: int, what: str) -> str:
    """The partial success's message: how many of ``total`` were rejected, the first few
    reasons."""
    shown = "; ".join(refused[:_REASONS_SHOWN])
    more = f" (and {len(refused) - _REASONS_SHOWN} more)" if len(refused) > _REASONS_SHOWN else ""
    return f"{len(refused)} of {total} {what} rejected: {shown}{more}"


def otlp_answer(answer: Message, content_type: str) -> Response:
    """An OTLP service response, in the request's encoding."""
    if content_type == PROTOBUF:
        return Response(answer.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(answer, indent=None), media_type=JSON)


async def otlp_request(request: Request) -> tuple[KeyInfo, str, bytes, anyio.CapacityLimiter]:
    """An OTLP/HTTP request's ingest key, content type and body, and the limiter its work runs
    under; 401/403, 415 and 413 as the spec and keys say."""
    state = request.app.state
    key = await run_in_threadpool(state.keys.authenticate, request, "ingest")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (PROTOBUF, JSON):
        raise ApiError(
            415,
            f"unsupported content type {content_type or '(none)'!r}: OTLP/HTTP takes "
            f"{PROTOBUF} or {JSON}",
        )
    # Empty, a protobuf request exports nothing (and is answered so); JSON needs an object.
    body = await read_body(request, state.max_body_bytes, empty=content_type == PROTOBUF)
    limiter = getattr(state, "otlp_limiter", None)
    if limiter is None:
        limiter = state.otlp_limiter = anyio.CapacityLimiter(_CONCURRENT)
    return key, content_type, body, limiter


async def receive_traces(request: Request) -> Response:
    state = request.app.state
    key, content_type, body, limiter = await otlp_request(request)
    intake = Intake(state.max_field_bytes, state.redaction, state.pricer, state.otlp_context)
    rejected, message = await anyio.to_thread.run_sync(
        ingest_traces, state.store, key, body, content_type, intake, limiter=limiter
    )
    return _answer(rejected, message, content_type)
