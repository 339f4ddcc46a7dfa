"""``POST /api/v1/events`` and ``POST /api/v1/feedback``: validate, then store.

A batch is judged event by event: each invalid event is reported by its index and the valid
ones are stored. Storing is idempotent by event id, so a retried batch stores nothing twice.
The answer is sent only once the batch is committed.
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from datetime import datetime, timezone
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..store import KeyInfo, Store, event_row
from ..wire import (
    MAX_BATCH_EVENTS,
    TEXT_FIELDS,
    Batch,
    Event,
    Feedback,
    template_of,
    template_revision,
    truncate_strings,
    unnamed_template_name,
)
from .errors import ApiError
from .prices import Pricer
from .redaction import Redaction

__all__ = [
    "ingest_batch",
    "prepare",
    "read_body",
    "receive_events",
    "receive_feedback",
    "store_feedback",
    "store_valid",
    "truncate_event",
    "validate_items",
]

# How far after the server's clock an event may say it started. Retention purges by that
# time, so an event stamped in 2099 (a client's clock, or a leaked key) would outlive any
# retention; a clock this far off is refused instead, and the SDK counts it as refused.
MAX_AHEAD_US = 86_400_000_000


async def read_body(request: Request, max_bytes: int, empty: bool = False) -> bytes:
    """The request's body, read with a size limit; gzip bodies are accepted. ``empty``: an
    empty body is one (an OTLP protobuf request with nothing in it), not an error."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body of {declared} bytes is over the {max_bytes} byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"request body is over the {max_bytes} byte limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        # Megabytes take a while to inflate: not on the event loop. (A small body is done in
        # microseconds, less than the trip to a thread.)
        if len(body) > 64 * 1024:
            body = await run_in_threadpool(_gunzip, body, max_bytes)
        else:
            body = _gunzip(body, max_bytes)
    if not body and not empty:
        raise ApiError(400, "empty request body: expected JSON")
    return body


def parse_json(body: bytes) -> Any:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply") from None
    return payload


def not_unicode(value: Any) -> str | None:
    """Why parsed JSON cannot be stored as text, or None when it can. Python's JSON parser
    lets through escapes of lone surrogates (``"\\ud800"``), which are not Unicode text;
    pydantic's rejects them, so only what takes the slower path is checked."""
    return _not_dumped(value, finite=False)


def not_storable(value: Any) -> str | None:
    """Why parsed JSON kept as a document (a run's config, its summary) could not be answered
    again, or None: text that is not Unicode (``not_unicode``), or a number that is not
    finite (Python's parser takes ``NaN``, ``Infinity`` and ``1e999``; no JSON answer holds
    them)."""
    return _not_dumped(value, finite=True)


# How deep a document kept as it came may nest: every read of it recurses that deep.
MAX_DEPTH = 100
# Errors an ingest answer lists (its "rejected" counts them all).
MAX_ERRORS_LISTED = 100


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth >= limit:
                return True
            stack.extend(
                (v, depth + 1) for v in (node.values() if isinstance(node, dict) else node)
            )
    return False


def _not_dumped(value: Any, finite: bool) -> str | None:
    if finite and _deeper_than(value, MAX_DEPTH):
        return f"nested more than {MAX_DEPTH} levels deep"
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=not finite).encode()
    except UnicodeEncodeError:
        return "text is not valid Unicode (an escaped lone surrogate such as \\ud800)"
    except ValueError:
        return "a number is not finite (NaN, Infinity or past a float's range: not JSON)"
    except RecursionError:
        return "nested too deeply"
    return None


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise ApiError(400, f"malformed gzip body: {exc}") from None
    if len(out) > max_bytes:
        raise ApiError(413, f"decompressed body is over the {max_bytes} byte limit")
    return out


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}" for err in exc.errors()
    )


_BATCH = TypeAdapter(Batch)


def validate_batch(body: bytes) -> tuple[list[tuple[int, Event]], list[dict[str, Any]], int]:
    """(valid events with their index in the batch, errors by index, events sent). The whole
    batch is validated in one go, in pydantic's Rust core, straight from the bytes; only when
    something in it is invalid is it taken apart event by event, to keep the valid ones and
    name the others."""
    try:
        events = _BATCH.validate_json(body).events
        return list(enumerate(events)), [], len(events)
    except ValidationError:
        pass
    payload = parse_json(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise ApiError(400, 'expected a JSON object {"events": [...]}')
    if len(payload["events"]) > MAX_BATCH_EVENTS:
        raise ApiError(
            413, f"{len(payload['events'])} events: {MAX_BATCH_EVENTS} at most in one request"
        )
    valid, errors = validate_items(payload["events"])
    return valid, errors, len(payload["events"])


def validate_items(
    items: list[Any], check_text: bool = True
) -> tuple[list[tuple[int, Event]], list[dict[str, Any]]]:
    """(valid events with their index, errors by index): each item of ``items`` (parsed JSON,
    or event dicts built by the server, as OTLP's mapping does) judged on its own.
    ``check_text``: refuse text that is not Unicode here (else ``prepare`` refuses it)."""
    valid, errors = [], []
    for index, item in enumerate(items):
        problem = not_unicode(item) if check_text else None
        if problem is not None:
            errors.append({"index": index, "id": _id_of(item), "error": problem})
            continue
        try:
            valid.append((index, Event.model_validate(item)))
        except ValidationError as exc:
            errors.append({"index": index, "id": _id_of(item), "error": _describe(exc)})
    return valid, errors


def _id_of(item: Any) -> str | None:
    event_id = item.get("id") if isinstance(item, dict) else None
    return event_id if isinstance(event_id, str) and not_unicode(event_id) is None else None


def truncate_event(event: Event, limit: int) -> None:
    """Cut every text longer than ``limit`` bytes in ``event`` and list it in ``truncated``."""
    cut: list[str] = []
    for name in TEXT_FIELDS:
        value = getattr(event, name)
        if value is None:
            continue
        if name == "error":
            message = truncate_strings(value.message, limit, "error.message", cut)
            if message is not value.message:
                value.message = message
            continue
        new = truncate_strings(value, limit, name, cut)
        if new is not value:
            setattr(event, name, new)
    if cut:
        event.truncated = sorted({*(event.truncated or ()), *cut})


# Bytes past a field's cut that redaction still reads (a long key or address across the cut).
REDACTION_MARGIN = 4096


def prepare(
    event: Event,
    key: KeyInfo,
    received_us: int,
    max_field_bytes: int | None,
    redaction: Redaction | None = None,
    pricer: Pricer | None = None,
) -> tuple[Any, ...]:
    """One valid event's row: limits applied, server-side fields filled in. Every per-event
    enrichment belongs here (it runs on the request's thread, outside the write lock)."""
    if redaction is not None:
        if max_field_bytes is not None:
            # Redaction reads what is kept, and a little past the cut: a value the cut
            # splits is found whole. (A field of the body's 32 MB had been read whole.)
            truncate_event(event, max_field_bytes + REDACTION_MARGIN)
        event = redaction.apply(event, key.project)
    # The revision of the template as sent, before a cut: two long templates that differ
    # only past the field limit had been one revision.
    revision = template_revision(template_of(event))
    if max_field_bytes is not None:
        truncate_event(event, max_field_bytes)
    if event.prompt_template_name is None:
        event.prompt_template_name = unnamed_template_name(event.api, revision)
    cost = pricer.event_cost(key.project_id, event) if pricer is not None else None
    return event_row(event, key.project_id, key.environment, revision, cost, received_us)


def ingest_batch(
    store: Store,
    key: KeyInfo,
    body: bytes,
    max_field_bytes: int | None = None,
    redaction: Redaction | None = None,
    pricer: Pricer | None = None,
) -> dict[str, Any]:
    """Validate, prepare and store one batch; the answer's body. ``max_field_bytes``: cut
    longer texts (None: no limit)."""
    events, errors, sent = validate_batch(body)
    # No field can be over the limit when the whole body is not: skip the walk.
    limit = max_field_bytes if max_field_bytes is not None and len(body) > max_field_bytes else None
    return store_valid(store, key, events, errors, sent, limit, redaction, pricer)


def store_valid(
    store: Store,
    key: KeyInfo,
    events: list[tuple[int, Event]],
    errors: list[dict[str, Any]],
    sent: int,
    max_field_bytes: int | None = None,
    redaction: Redaction | None = None,
    pricer: Pricer | None = None,
) -> dict[str, Any]:
    """Prepare and store validated ``events`` (``errors``: those already refused, of ``sent``
    in all); the answer's body. Every way in (the events API, OTLP) stores through here."""
    received_us = int(time.time() * 1_000_000)
    latest = datetime.fromtimestamp((received_us + MAX_AHEAD_US) / 1e6, timezone.utc)
    rows = []
    for index, event in events:
        if event.started_at > latest:
            errors.append({"index": index, "id": event.id, "error": _ahead(event.started_at)})
            continue
        try:
            rows.append(prepare(event, key, received_us, max_field_bytes, redaction, pricer))
        except Exception as exc:  # valid JSON the store cannot take: this event alone fails
            errors.append({"index": index, "id": event.id, "error": f"cannot be stored: {exc}"})
    stored = store.insert_events(rows)
    result: dict[str, Any] = {
        "ok": not errors,
        "accepted": len(rows),
        "stored": stored,
        "duplicates": len(rows) - stored,
        "rejected": len(errors),
        # The first ones: the count says how many, and a batch of a million empty
        # objects would otherwise be answered with a gigabyte.
        "errors": sorted(errors, key=lambda e: e["index"])[:MAX_ERRORS_LISTED],
    }
    if errors:
        result["error"] = f"{len(errors)} of {sent} events were rejected"
        # All-invalid is a client error; a mixed batch is a success with the failures listed.
        result["status"] = 400 if not rows else 200
    return result


def _ahead(started_at: datetime) -> str:
    return (
        f"started_at: {started_at.isoformat()} is more than a day after the server's clock"
        " (an event from the future would outlive the project's retention)"
    )


async def receive_events(request: Request) -> JSONResponse:
    state = request.app.state
    key = await run_in_threadpool(state.keys.authenticate, request, "ingest")
    body = await read_body(request, state.max_body_bytes)
    result = await run_in_threadpool(
        ingest_batch,
        state.store,
        key,
        body,
        state.max_field_bytes,
        state.redaction,
        state.pricer,
    )
    return JSONResponse(result, status_code=result.get("status", 200))


async def receive_feedback(request: Request) -> JSONResponse:
    state = request.app.state
    key = await run_in_threadpool(state.keys.authenticate, request, "ingest")
    body = await read_body(request, state.max_body_bytes)
    stored = await run_in_threadpool(store_feedback, state.store, key, body, state.redaction)
    return JSONResponse({"ok": True, "duplicate": not stored})


def store_feedback(store: Store, key: KeyInfo, body: bytes, redaction: Redaction) -> bool:
    """Parse, validate, redact and store one feedback; on a worker thread, as all of it may
    take a while (the body may be megabytes)."""
    payload = parse_json(body)
    problem = not_unicode(payload)
    if problem is not None:
        raise ApiError(400, f"invalid feedback: {problem}")
    try:
        feedback = Feedback.model_validate(payload)
    except ValidationError as exc:
        raise ApiError(400, f"invalid feedback: {_describe(exc)}") from None
    better = redaction.feedback(feedback.better_response, key.project)
    return store.insert_feedback(
        key.project_id, feedback.feedback_key, feedback.rating, better, feedback.id
    )
