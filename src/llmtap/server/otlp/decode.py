"""OTLP/HTTP trace and log bodies (protobuf or JSON) into plain spans and log records, with
the official ``opentelemetry-proto`` messages: nothing here parses the wire format by hand.

A :class:`Span` carries what the mapping needs, its attributes as Python values (``AnyValue``
unwrapped: lists, dicts, bytes as hex), with the resource's and the instrumentation scope's;
a :class:`LogRecord`, the span it belongs to and its event's name, attributes and body.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from ..errors import ApiError

__all__ = [
    "JSON",
    "MAX_RECORDS",
    "MAX_SPANS",
    "MAX_SPAN_EVENTS",
    "PROTOBUF",
    "LogRecord",
    "Span",
    "SpanEvent",
    "decode",
    "decode_logs",
    "held_record",
    "records_of",
    "span_events",
    "spans_of",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# What one request may hold, as the events API's ``MAX_BATCH_EVENTS``: the work of a request
# (and the write transaction that stores it) grows with its items, and a small body can hold
# a great many (an empty span event is two bytes). Exporters send batches of 512.
MAX_SPANS = 10_000
MAX_SPAN_EVENTS = 100_000  # of all its spans together
MAX_RECORDS = 10_000
# OTLP/JSON writes ids as hex, where protobuf's JSON mapping expects base64 for bytes.
_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


@dataclass
class SpanEvent:
    name: str
    time_unix_nano: int
    attributes: dict[str, Any]


@dataclass
class Span:
    trace_id: str  # hex
    span_id: str  # hex
    parent_span_id: str | None
    name: str
    kind: int
    start_unix_nano: int
    end_unix_nano: int
    status_error: bool
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str
    scope_version: str
    events: list[SpanEvent] = field(default_factory=list)
    # The span's size in protobuf, with its resource's and scope's: what bounds every text
    # its event can hold (see ``endpoint.ingest_traces``).
    wire_bytes: int = 0


@dataclass
class LogRecord:
    trace_id: str  # hex; "" when the record belongs to no span
    span_id: str
    name: str  # its event's: ``event_name``, else the older ``event.name`` attribute
    time_unix_nano: int
    attributes: dict[str, Any]
    body: Any


def decode(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """The request message of an OTLP traces body; a 400 when it is not one, a 413 when it
    holds more than ``MAX_SPANS`` spans or ``MAX_SPAN_EVENTS`` span events."""
    message = ExportTraceServiceRequest()
    _parse(body, content_type, message, _trace_ids_to_base64)
    spans = [s.spans for r in message.resource_spans for s in r.scope_spans]
    _at_most(sum(len(s) for s in spans), MAX_SPANS, "spans")
    _at_most(sum(len(pb.events) for s in spans for pb in s), MAX_SPAN_EVENTS, "span events")
    return message


def _at_most(count: int, most: int, what: str) -> None:
    if count > most:
        raise ApiError(413, f"{count:,} {what}: {most:,} at most in one request")


def decode_logs(body: bytes, content_type: str) -> ExportLogsServiceRequest:
    """The request message of an OTLP logs body; a 400 when it is not one, a 413 past
    ``MAX_RECORDS`` log records."""
    message = ExportLogsServiceRequest()
    _parse(body, content_type, message, _log_ids_to_base64)
    records = sum(len(s.log_records) for r in message.resource_logs for s in r.scope_logs)
    _at_most(records, MAX_RECORDS, "log records")
    return message


def _parse(body: bytes, content_type: str, message: Message, fix_ids: Any) -> None:
    if content_type == PROTOBUF:
        try:
            message.ParseFromString(body)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise ApiError(400, f"malformed OTLP protobuf: {exc or 'cannot be parsed'}") from None
        return
    try:
        payload = json.loads(body)
        fix_ids(payload)
        json_format.ParseDict(payload, message, ignore_unknown_fields=True)
    except (ValueError, UnicodeDecodeError, json_format.ParseError, TypeError) as exc:
        raise ApiError(400, f"malformed OTLP JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "malformed OTLP JSON: nested too deeply") from None


def _trace_ids_to_base64(payload: Any) -> None:
    if not isinstance(payload, dict):
        raise ValueError('expected a JSON object {"resourceSpans": [...]}')
    for resource_spans in _list(payload, "resourceSpans", "resource_spans"):
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            for span in _list(scope_spans, "spans"):
                _fix_ids(span)
                for link in _list(span, "links"):
                    _fix_ids(link)


def _log_ids_to_base64(payload: Any) -> None:
    if not isinstance(payload, dict):
        raise ValueError('expected a JSON object {"resourceLogs": [...]}')
    for resource_logs in _list(payload, "resourceLogs", "resource_logs"):
        for scope_logs in _list(resource_logs, "scopeLogs", "scope_logs"):
            for record in _list(scope_logs, "logRecords", "log_records"):
                _fix_ids(record)


def _list(obj: Any, *names: str) -> list[Any]:
    if not isinstance(obj, dict):
        return []
    for name in names:
        value = obj.get(name)
        if isinstance(value, list):
            return value
    return []


def _fix_ids(obj: Any) -> None:
    if not isinstance(obj, dict):
        return
    for name in _ID_FIELDS:
        value = obj.get(name)
        if isinstance(value, str) and value:
            try:
                obj[name] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise ValueError(f"{name} {value[:40]!r} is not hex") from None


def value_of(any_value: AnyValue) -> Any:
    """An ``AnyValue`` as a JSON-ready Python value."""
    kind = any_value.WhichOneof("value")
    if kind == "string_value":  # most attributes: first
        return any_value.string_value
    if kind is None:
        return None
    if kind == "array_value":
        return [value_of(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(any_value.kvlist_value.values)
    if kind == "bytes_value":
        return binascii.hexlify(any_value.bytes_value).decode()
    return getattr(any_value, kind)


# AnyValue's kinds a Python value is read from as it is: every attribute but arrays, maps and
# bytes.
_PLAIN = frozenset({"string_value", "int_value", "double_value", "bool_value"})


def attributes_of(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """Attributes as a dict of Python values. ``value_of``'s work, with the plain kinds read
    in the loop: a span's attributes are most of what decoding costs, and a call per
    attribute had doubled it."""
    out: dict[str, Any] = {}
    for item in pairs:
        value = item.value
        kind = value.WhichOneof("value")
        if kind == "string_value":
            out[item.key] = value.string_value
        elif kind in _PLAIN:
            out[item.key] = getattr(value, kind)
        else:
            out[item.key] = value_of(value)
    return out


def _parent(raw: bytes) -> str | None:
    """A parent span id in hex; None when there is none: absent, or all zeros as some
    exporters send it."""
    return raw.hex() if raw.strip(b"\0") else None


def spans_of(message: ExportTraceServiceRequest) -> list[Span]:
    """Every span of the request, flattened, in order."""
    out = []
    for resource_spans in message.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        resource_bytes = resource_spans.resource.ByteSize()
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            shared_bytes = resource_bytes + scope.ByteSize()
            pb: PbSpan
            for pb in scope_spans.spans:
                out.append(
                    Span(
                        trace_id=pb.trace_id.hex(),
                        span_id=pb.span_id.hex(),
                        parent_span_id=_parent(pb.parent_span_id),
                        name=pb.name,
                        kind=pb.kind,
                        start_unix_nano=pb.start_time_unix_nano,
                        end_unix_nano=pb.end_time_unix_nano,
                        status_error=pb.status.code == Status.STATUS_CODE_ERROR,
                        status_message=pb.status.message,
                        attributes=attributes_of(pb.attributes),
                        resource=resource,
                        scope_name=scope.name,
                        scope_version=scope.version,
                        events=[
                            SpanEvent(e.name, e.time_unix_nano, attributes_of(e.attributes))
                            for e in pb.events
                        ],
                        wire_bytes=shared_bytes + pb.ByteSize(),
                    )
                )
    return out


def records_of(message: ExportLogsServiceRequest) -> list[LogRecord]:
    """Every log record of the request, flattened, in order."""
    out = []
    for resource_logs in message.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for pb in scope_logs.log_records:
                attributes = attributes_of(pb.attributes)
                name = pb.event_name or attributes.pop("event.name", "")
                out.append(
                    LogRecord(
                        trace_id=pb.trace_id.hex(),
                        span_id=pb.span_id.hex(),
                        name=name if isinstance(name, str) else "",
                        time_unix_nano=pb.time_unix_nano or pb.observed_time_unix_nano,
                        attributes=attributes,
                        body=value_of(pb.body) if pb.HasField("body") else None,
                    )
                )
    return out


def held_record(record: LogRecord) -> dict[str, Any]:
    """A log record of a call's content as the event of its span it stands for, while it waits
    for the span: its attributes, with its body's fields (where the per-message events keep
    their content) over them."""
    attributes = dict(record.attributes)
    if isinstance(record.body, dict):
        attributes.update(record.body)
    elif record.body is not None:
        attributes["content"] = record.body
    return {"name": record.name, "time": record.time_unix_nano, "attributes": attributes}


def span_events(held: list[str]) -> list[SpanEvent]:
    """Held records (``held_record``'s, in JSON, with their ``position`` in the request that
    brought them), as their span's events, in the order they were made."""
    records = sorted((json.loads(text) for text in held), key=lambda r: (r["time"], r["position"]))
    return [SpanEvent(r["name"], r["time"], r["attributes"]) for r in records]
