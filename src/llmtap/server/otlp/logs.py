"""``POST /v1/logs`` (and ``/api/v1/otlp/v1/logs``): OTLP/HTTP log records, protobuf or JSON,
gzip or not, with an llmtap ingest key, answered as traces are (see ``endpoint``).

Instrumentations send a call's content as events, which OpenTelemetry carries as log records
belonging to the call's span: OpenTelemetry's OpenAI instrumentation, capturing content as
events, sends ``gen_ai.client.inference.operation.details``; its older versions and others
send each message (``gen_ai.user.message``...) and each choice (``gen_ai.choice``);
evaluators send ``gen_ai.evaluation.result``. Logs and spans go out on pipelines of their
own, and a call's records usually leave before its span (the span ends after its events were
emitted):

- a record of a call's content is held (``store._held``) until its span arrives, whose event
  is then built with it as the span's own event would be; a record whose span was stored
  already is rejected, saying so, and one whose span never comes expires after
  ``HELD_FOR_US``;
- an evaluation becomes feedback on the call at once (feedback finds its call whenever the
  call arrives);
- records of no GenAI event (an application's ordinary logs, exported to the same endpoint)
  are counted in the answer and not stored.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from typing import Any

import anyio.to_thread
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceResponse,
)
from starlette.requests import Request
from starlette.responses import Response

from ...pii import redact_value
from ...store import KeyInfo, Store
from ..redaction import Redaction
from .common import HELD_ORDER, event_id, valid_ids
from .decode import decode_logs, held_record, records_of
from .endpoint import otlp_answer, otlp_request, refusals
from .evaluation import EVALUATION, rating_of_record
from .genai import DETAILS, carries_call_content

__all__ = ["HELD_FOR_US", "ingest_logs", "receive_logs"]

# How long a call's records wait for its span: an exporter's batches leave every few seconds,
# and retry for a minute or two when the server is away.
HELD_FOR_US = 15 * 60 * 1_000_000
# What one call may hold: its event is built with all of it, so without a bound a key could
# pile records on one span, request after request, into an event no read can load. A call's
# messages and choices are a few to a few hundred records; their characters together at most
# one request's worth (``max_body_bytes``), the size a span's own event is bounded by.
MAX_HELD_PER_CALL = 1_000
_EXPIRE_EVERY_S = 60.0
_expired_at = 0.0
_expiring = threading.Lock()


def ingest_logs(
    store: Store,
    key: KeyInfo,
    body: bytes,
    content_type: str,
    max_held_chars: int = 32 << 20,
    redaction: Redaction | None = None,
) -> tuple[int, str]:
    """Decode one OTLP logs body, hold the call content its records carry and store the
    evaluations as feedback: (records rejected, the message saying why or what was left).
    A call holds at most ``MAX_HELD_PER_CALL`` records of ``max_held_chars`` together; what
    the project redacts is redacted before it is held (``Redaction.held``)."""
    project = key.project_id
    records = records_of(decode_logs(body, content_type))
    refused: list[str] = []
    held: dict[str, list[tuple[str, str, str]]] = {}  # event id -> (name, record id, record)
    ratings = {}  # by feedback id: a record sent twice is one feedback
    unrated = other = 0
    copies: Counter[str] = Counter()  # records alike so far in this request
    for position, record in enumerate(records):
        if not (carries_call_content(record.name) or record.name == EVALUATION):
            other += 1
            continue
        if not valid_ids(record.trace_id, record.span_id):
            refused.append(f"a {record.name} record belongs to no span (no valid trace or span id)")
            continue
        # ASCII JSON: a lone surrogate (valid in OTLP/JSON's escapes) stores as its escape.
        held_as = held_record(record)
        content = json.dumps(held_as, sort_keys=True)
        record_id = hashlib.sha256(content.encode()).hexdigest()[:32]  # sent again: one row
        if record.name == EVALUATION:
            rating = rating_of_record(
                project, record.trace_id, record.span_id, record.attributes, record_id
            )
            if rating is None:
                unrated += 1
            else:
                ratings[rating.feedback_id] = rating
            continue
        # Two messages alike in one request (a "yes" said twice, in records that carry no
        # time of their own) are two: the second is held as the content's second.
        copy = copies[content]
        copies[content] += 1
        if copy:
            record_id = hashlib.sha256(f"{content}\x00{copy}".encode()).hexdigest()[:32]
        if redaction is not None:
            _redact_held(held_as, redaction, key.project)
        text = json.dumps({**held_as, "position": position})
        target = event_id(project, record.trace_id, record.span_id)
        held.setdefault(target, []).append((record.name, record_id, text))
    now_us = time.time_ns() // 1000
    # No traces request of the project between reading the held records and storing its
    # events meanwhile (see ``HELD_ORDER``).
    with HELD_ORDER.logs(project):
        refused += _over_bounds(store, project, held, max_held_chars)
        store.hold_records(
            project,
            [(target, rid, now_us, text) for target, rows in held.items() for _, rid, text in rows],
        )
        # Looked for once held, not before: a span stored before this look has its event,
        # and these records come too late for it (dropped again, and refused saying so); one
        # stored after it read them.
        for target in store.existing_event_ids(project, list(held)) if held else ():
            rows = held.pop(target)
            store.forget_held(project, [(target, rid) for _, rid, _ in rows])
            refused += [
                f"a {name} record came after its call's span {target}, whose event is stored:"
                " send logs at least as often as spans"
                for name, _, _ in rows
            ]
    for rating in ratings.values():
        store.insert_feedback(project, rating.feedback_key, rating.rating, None, rating.feedback_id)
    _expire(store, now_us)
    if refused:
        return len(refused), refusals(refused, len(records), "log records")
    notes = []
    if other:
        notes.append(f"{other} of {len(records)} log records are no GenAI event: not stored")
    if unrated:
        notes.append(f"{unrated} evaluations had no rating from 0 to 1 and were not stored")
    return 0, "; ".join(notes)


_REQUEST, _ANSWER = frozenset({"request"}), frozenset({"response", "output_text"})


def _redact_held(held_as: dict[str, Any], redaction: Redaction, project: str) -> None:
    """Redact a record about to be held as the event fields its content lands in are
    redacted: a message in the request, a choice in the answer, and the details record's
    input and output messages each in their own."""
    attributes = held_as["attributes"]
    if held_as["name"] == DETAILS:
        for name, value in attributes.items():
            lands_in = _ANSWER if name == "gen_ai.output.messages" else _REQUEST
            if redaction.held(project, lands_in):
                attributes[name] = redact_value(value)
    elif redaction.held(project, _ANSWER if held_as["name"] == "gen_ai.choice" else _REQUEST):
        held_as["attributes"] = redact_value(attributes)


def _over_bounds(
    store: Store, project: int, held: dict[str, list[tuple[str, str, str]]], max_chars: int
) -> list[str]:
    """Take out of ``held`` the records that would take their call past what a call may hold
    (counting what it holds already); why each was refused."""
    refused = []
    sizes = store.held_sizes(project, list(held)) if held else {}
    for target, rows in held.items():
        count, chars = sizes.get(target, (0, 0))
        kept = []
        for row in rows:
            if count >= MAX_HELD_PER_CALL or chars + len(row[2]) > max_chars:
                refused.append(
                    f"a {row[0]} record would take call {target} past what a call may hold"
                    f" ({MAX_HELD_PER_CALL} records, {max_chars} characters)"
                )
                continue
            count, chars = count + 1, chars + len(row[2])
            kept.append(row)
        rows[:] = kept
    return refused


def _expire(store: Store, now_us: int) -> None:
    """Drop the records whose span never came, at most once a minute per process."""
    global _expired_at
    if time.monotonic() - _expired_at < _EXPIRE_EVERY_S or not _expiring.acquire(blocking=False):
        return
    try:
        _expired_at = time.monotonic()
        store.expire_held(now_us - HELD_FOR_US)
    finally:
        _expiring.release()


async def receive_logs(request: Request) -> Response:
    key, content_type, body, limiter = await otlp_request(request)
    state = request.app.state
    rejected, message = await anyio.to_thread.run_sync(
        ingest_logs,
        *(state.store, key, body, content_type, state.max_body_bytes, state.redaction),
        limiter=limiter,
    )
    answer = ExportLogsServiceResponse()
    if rejected or message:
        answer.partial_success.CopyFrom(
            ExportLogsPartialSuccess(rejected_log_records=rejected, error_message=message)
        )
    return otlp_answer(answer, content_type)
