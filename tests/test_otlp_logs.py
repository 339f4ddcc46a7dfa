"""OTLP/HTTP logs (``POST /v1/logs``): a call's messages sent as events on the logs pipeline,
held until the call's span comes and built into its event; evaluations as feedback; records
of no GenAI event counted and left; bad input a clear 4xx. On each store backend (the held
records live in the database, so a second server process finds them)."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry._logs import LogRecord, get_logger
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from llmtap.server.otlp.common import event_id
from llmtap.server.otlp.endpoint import Intake, ingest_traces
from llmtap.server.otlp.logs import HELD_FOR_US, MAX_HELD_PER_CALL, ingest_logs
from llmtap.server.redaction import Redaction
from llmtap.server.retention import Purger
from llmtap.store import KeyInfo, Store

from ._stores import STORE_BACKENDS
from .conftest import Project, server_on_each_backend, start_server, stop_server
from .test_otlp_hostile import otlp_error

server = pytest.fixture(scope="module", params=STORE_BACKENDS, name="server")(
    server_on_each_backend
)

PROTOBUF = {"content-type": "application/x-protobuf"}
PROTOBUF_TYPE = PROTOBUF["content-type"]
CALL = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 12,
    "gen_ai.usage.output_tokens": 3,
}
# The older conventions' events, each message its own record, content in the body.
MESSAGES = [
    ("gen_ai.system.message", {"content": "Be brief."}),
    ("gen_ai.user.message", {"content": "Capital of France?"}),
    (
        "gen_ai.choice",
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Paris."},
        },
    ),
]


class Call:
    """A model call's span and the log records emitted inside it, as an instrumented app's
    SDK makes them (the real TracerProvider and LoggerProvider), encoded by the official
    OTLP encoders."""

    def __init__(
        self,
        records: list[tuple[str, Any]],
        details: dict[str, Any] | None = None,
        at: int | None = None,
    ) -> None:
        """``at``: the one time every record carries (else each its own, as emitted)."""
        spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
        resource = Resource.create({"service.name": "logs-app"})
        tracing = TracerProvider(resource=resource)
        tracing.add_span_processor(SimpleSpanProcessor(spans))
        logging = LoggerProvider(resource=resource)
        logging.add_log_record_processor(SimpleLogRecordProcessor(logs))
        logger = get_logger("logs.app", logger_provider=logging)
        with tracing.get_tracer("logs.app").start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attributes(CALL)
            for name, body in records:
                attributes = details or {"gen_ai.system": "openai"}
                when = {"timestamp": at, "observed_timestamp": at} if at else {}
                record = LogRecord(event_name=name, body=body, attributes=attributes, **when)
                logger.emit(record)
        self.span_body = encode_spans(spans.get_finished_spans()).SerializeToString()
        self.logs_body = encode_logs(logs.get_finished_logs()).SerializeToString()
        self.trace_id = format(span.get_span_context().trace_id, "032x")
        self.span_id = format(span.get_span_context().span_id, "016x")


def _logs(project: Project, body: bytes, headers: dict[str, str] | None = None) -> httpx2.Response:
    return project.server.post(
        "/v1/logs", project.key, headers=PROTOBUF if headers is None else headers, content=body
    )


def _answer(response: httpx2.Response) -> ExportLogsServiceResponse:
    assert response.status_code == 200, response.text
    answer = ExportLogsServiceResponse()
    answer.ParseFromString(response.content)
    return answer


def _spans(project: Project, call: Call) -> None:
    response = project.server.post(
        "/v1/traces", project.key, headers=PROTOBUF, content=call.span_body
    )
    assert response.status_code == 200, response.text


def _event(project: Project) -> dict[str, Any]:
    (listed,) = project.events()
    return project.event(listed["id"])


def test_records_sent_before_the_span_fill_its_event_once(project: Project) -> None:
    """The messages arrive first (twice: an exporter's retry), then the span: one event with
    each message once, as the span's own events would give it."""
    call = Call(MESSAGES)
    for _ in range(2):
        answer = _answer(_logs(project, call.logs_body))
        assert answer.partial_success.rejected_log_records == 0
    _spans(project, call)
    event = _event(project)
    assert event["request"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert event["output_text"] == "Paris."
    assert event["response"]["choices"][0]["finish_reason"] == "stop"
    assert event["chain_id"] == call.trace_id
    # Built into the event, the records are gone: the span sent again changes nothing.
    _spans(project, call)
    assert _event(project)["request"]["messages"][1]["content"] == "Capital of France?"


def test_a_span_twice_in_one_request_is_built_with_its_records(project: Project) -> None:
    """An exporter's retry can put a span in a batch twice: whichever copy is stored, it
    carries the messages held for it."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    call = Call(MESSAGES)
    assert _answer(_logs(project, call.logs_body)).partial_success.rejected_log_records == 0
    request = ExportTraceServiceRequest()
    request.ParseFromString(call.span_body)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans.add().CopyFrom(spans[0])
    response = project.server.post(
        "/v1/traces", project.key, headers=PROTOBUF, content=request.SerializeToString()
    )
    assert response.status_code == 200, response.text
    assert [m["content"] for m in _event(project)["request"]["messages"]] == [
        "Be brief.",
        "Capital of France?",
    ]


def test_the_details_event_with_structured_messages(project: Project) -> None:
    """The newer conventions' ``gen_ai.client.inference.operation.details``: the messages as
    structured attributes of one record."""
    details = {
        "gen_ai.input.messages": [
            {"role": "user", "parts": [{"type": "text", "content": "Two plus two?"}]}
        ],
        "gen_ai.output.messages": [
            {"role": "assistant", "parts": [{"type": "text", "content": "Four."}],
             "finish_reason": "stop"}
        ],
    }  # fmt: skip
    call = Call([("gen_ai.client.inference.operation.details", None)], details=details)
    assert _answer(_logs(project, call.logs_body)).partial_success.rejected_log_records == 0
    _spans(project, call)
    event = _event(project)
    assert event["request"]["messages"] == [{"role": "user", "content": "Two plus two?"}]
    assert event["output_text"] == "Four."
    assert event["response"]["choices"][0]["finish_reason"] == "stop"


def test_records_after_their_span_are_rejected_saying_why(project: Project) -> None:
    call = Call(MESSAGES)
    _spans(project, call)
    answer = _answer(_logs(project, call.logs_body))
    assert answer.partial_success.rejected_log_records == 3
    assert "came after its call's span" in answer.partial_success.error_message
    event = _event(project)
    assert "messages" not in event["request"]


def test_an_evaluation_record_is_feedback_on_the_call(project: Project) -> None:
    """An evaluator's record belongs to the evaluated call's span (the conventions parent it
    there); after the call's span, sent twice: one rating on the call."""
    call = Call(MESSAGES)
    _spans(project, call)
    stored = _event(project)
    logs = InMemoryLogRecordExporter()
    logging = LoggerProvider()
    logging.add_log_record_processor(SimpleLogRecordProcessor(logs))
    span_id = int(stored["attributes"]["otel.span_id"], 16)
    context = SpanContext(int(call.trace_id, 16), span_id, False, TraceFlags(1))
    with trace.use_span(NonRecordingSpan(context)):
        get_logger("judge", logger_provider=logging).emit(
            LogRecord(
                event_name="gen_ai.evaluation.result",
                attributes={
                    "gen_ai.evaluation.name": "relevance",
                    "gen_ai.evaluation.score.value": 0.25,
                },
            )
        )
    body = encode_logs(logs.get_finished_logs()).SerializeToString()
    for _ in range(2):
        assert _answer(_logs(project, body)).partial_success.rejected_log_records == 0
    ratings = [f["rating"] for f in project.event(stored["id"])["feedback"]]
    assert ratings == [0.25]


def test_an_application_s_own_logs_are_counted_not_stored(project: Project) -> None:
    logs = InMemoryLogRecordExporter()
    logging = LoggerProvider()
    logging.add_log_record_processor(SimpleLogRecordProcessor(logs))
    logger = get_logger("app", logger_provider=logging)
    for text in ("user signed in", "cache miss"):
        logger.emit(LogRecord(body=text, attributes={"level": "info"}))
    answer = _answer(_logs(project, encode_logs(logs.get_finished_logs()).SerializeToString()))
    assert answer.partial_success.rejected_log_records == 0
    assert "2 of 2 log records are no GenAI event" in answer.partial_success.error_message
    assert project.events() == []


def test_the_json_form_gzip_and_the_api_path(project: Project) -> None:
    call = Call(MESSAGES)
    payload = json_format.MessageToDict(encode_logs_request(call))
    for record in payload["resourceLogs"][0]["scopeLogs"][0]["logRecords"]:
        # OTLP/JSON: ids in hex, not protobuf's base64.
        record["traceId"] = call.trace_id
        record["spanId"] = _hex_of_base64(record["spanId"])
    body = gzip.compress(json.dumps(payload).encode())
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    response = project.server.post("/api/v1/otlp/v1/logs", project.key, headers=headers,
                                   content=body)  # fmt: skip
    assert response.status_code == 200 and response.json() == {}, response.text
    _spans(project, call)
    assert _event(project)["output_text"] == "Paris."


def encode_logs_request(call: Call) -> Any:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    request.ParseFromString(call.logs_body)
    return request


def _hex_of_base64(value: str) -> str:
    import base64

    return base64.b64decode(value).hex()


def test_bad_bodies_get_clear_4xx(project: Project) -> None:
    assert "protobuf" in otlp_error(_logs(project, b"\xff\x00 not protobuf"), 400)
    # Empty: a protobuf request of no records (answered as one), not JSON.
    assert _answer(_logs(project, b"")).partial_success.rejected_log_records == 0
    assert "JSON" in otlp_error(_logs(project, b"", {"content-type": "application/json"}), 400)
    empty = project.server.post("/v1/traces", project.key, headers=PROTOBUF, content=b"")
    assert empty.status_code == 200 and empty.content == b"", empty.text
    assert _logs(project, b"{", {"content-type": "application/json"}).status_code == 400
    assert _logs(project, b"[]", {"content-type": "application/json"}).status_code == 400
    assert _logs(project, b"x", {"content-type": "text/plain"}).status_code == 415
    assert (
        project.server.post("/v1/logs", "lt_wrong", headers=PROTOBUF, content=b"").status_code
        == 401
    )
    # A record of a call's content that belongs to no span: rejected, with why.
    logs = InMemoryLogRecordExporter()
    logging = LoggerProvider()
    logging.add_log_record_processor(SimpleLogRecordProcessor(logs))
    get_logger("x", logger_provider=logging).emit(
        LogRecord(event_name="gen_ai.user.message", body={"content": "lost"})
    )
    answer = _answer(_logs(project, encode_logs(logs.get_finished_logs()).SerializeToString()))
    assert answer.partial_success.rejected_log_records == 1
    assert "belongs to no span" in answer.partial_success.error_message


def test_a_held_text_over_the_field_limit_is_cut(tmp_path: Path) -> None:
    """The held records' texts join the span's: the server's field limit holds for them."""
    small = start_server(tmp_path, env={"LLMTAP_MAX_FIELD_BYTES": "4096"})
    try:
        project = Project(small.new_key(), small)
        call = Call([("gen_ai.user.message", {"content": "x" * 100_000}), *MESSAGES[2:]])
        assert _answer(_logs(project, call.logs_body)).partial_success.rejected_log_records == 0
        _spans(project, call)
        event = _event(project)
        assert event["truncated"] == ["request.messages.0.content"]
        assert len(event["request"]["messages"][0]["content"]) <= 4096
    finally:
        stop_server(small)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)
NAMES = st.sampled_from(
    ["gen_ai.user.message", "gen_ai.assistant.message", "gen_ai.tool.message", "gen_ai.choice",
     "gen_ai.evaluation.result", "gen_ai.client.inference.operation.details", "", "other"]
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    garbage=st.binary(max_size=400),
    records=st.lists(st.tuples(NAMES, JSON_VALUES), max_size=4),
    details=st.none() | st.dictionaries(
        st.sampled_from(["gen_ai.input.messages", "gen_ai.output.messages",
                         "gen_ai.system_instructions", "gen_ai.evaluation.score.value"]),
        JSON_VALUES, max_size=3),
)  # fmt: skip
def test_hostile_log_bodies_never_5xx(
    project: Project, garbage: bytes, records: list[tuple[str, Any]], details: Any
) -> None:
    """Any bytes, and records of any names and shapes inside a call's span: below 500; the
    span that follows them answers below 500 too, and every event stored reads back."""
    assert _logs(project, garbage).status_code < 500
    call = Call(records, details=details or None)
    assert _logs(project, call.logs_body).status_code < 500
    response = project.server.post(
        "/v1/traces", project.key, headers=PROTOBUF, content=call.span_body
    )
    assert response.status_code < 500, response.text
    for listed in project.events():
        assert project.server.get(f"/api/v1/events/{listed['id']}", project.key).status_code == 200


def test_records_whose_span_never_came_expire(store: Store) -> None:
    project = store.ensure_project("p")
    now = time.time_ns() // 1000
    store.hold_records(project, [("old", "r1", now - 10**9, "{}"), ("new", "r2", now, "{}")])
    assert store.hold_records(project, [("new", "r2", now, "{}")]) == 0  # held once
    assert store.expire_held(now - 10**6) == 1
    assert list(store.held_records(project, ["old", "new"])) == ["new"]
    store.forget_held(project, [("new", "r2")])
    assert store.held_records(project, ["new"]) == {}


def test_expiry_drops_every_expired_record_in_bounded_steps(store: Store) -> None:
    project = store.ensure_project("p")
    now = time.time_ns() // 1000
    old = [(f"e{i % 7}", f"r{i}", now - 10**9, "{}") for i in range(1_203)]
    store.hold_records(project, [*old, ("fresh", "r", now, "{}")])
    assert store.expire_held(now - 10**6) == 1_203
    calls = [f"e{i}" for i in range(7)]
    assert list(store.held_records(project, [*calls, "fresh"])) == ["fresh"]


def test_the_retention_purge_drops_records_no_span_came_for(store: Store) -> None:
    """The logs endpoint drops expired records as new ones arrive; when none arrive any more,
    the periodic purge drops them (retention itself off here)."""
    project = store.ensure_project("p")
    now = time.time_ns() // 1000
    store.hold_records(project, [("gone", "r1", now - HELD_FOR_US - 1, "{}")])
    store.hold_records(project, [("waiting", "r2", now, "{}")])
    purger = Purger(store, days=0, interval=60, clock=lambda: now / 1_000_000)
    try:
        assert purger.run_once() == {}
    finally:
        purger.close()
    assert list(store.held_records(project, ["gone", "waiting"])) == ["waiting"]


def test_an_event_built_forgets_only_the_records_it_was_built_with(store: Store) -> None:
    """A record held for a call while its span's event is being built stays held (the logs
    side then finds it late), rather than going with the ones the event holds."""
    project = store.ensure_project("p")
    now = time.time_ns() // 1000
    store.hold_records(project, [("e", "r1", now, "{}")])
    read = store.held_records(project, ["e"])
    assert read == {"e": [("r1", "{}")]}
    store.hold_records(project, [("e", "r2", now, '{"a": 1}')])  # meanwhile
    assert store.held_sizes(project, ["e", "nothing"]) == {"e": (2, 10)}
    store.forget_held(project, [("e", record_id) for record_id, _ in read["e"]])
    assert store.held_records(project, ["e"]) == {"e": [("r2", '{"a": 1}')]}


def test_records_after_their_span_are_refused_and_not_left_held(store: Store) -> None:
    """Records whose span's event is stored already are looked for once held (so a span
    stored while they were held is seen too): refused as late, and not left waiting for a
    span that came."""
    key = KeyInfo(1, store.ensure_project("p"), "p", "dev")
    call = Call(MESSAGES)
    assert ingest_traces(store, key, call.span_body, PROTOBUF_TYPE) == (0, "")
    rejected, message = ingest_logs(store, key, call.logs_body, PROTOBUF_TYPE)
    assert rejected == len(MESSAGES) and "came after its call's span" in message
    target = event_id(key.project_id, call.trace_id, call.span_id)
    assert store.held_records(key.project_id, [target]) == {}


def test_records_held_while_their_span_is_being_stored_are_not_lost(store: Store) -> None:
    """A logs request that holds a call's records while a traces request is between reading
    the held records and storing the call's event: without an order, the records are read
    by neither (the traces request read before they were held, the logs request looked
    before the event was stored) and wait 15 minutes for nothing. In order, the logs
    request waits, finds the event, and refuses them saying why."""
    import threading

    key = KeyInfo(1, store.ensure_project("race"), "race", "dev")
    call = Call(MESSAGES)
    answers: list[tuple[int, str]] = []
    store_events = store.insert_events

    def meanwhile(rows: Any) -> Any:  # the traces request, about to store its events
        logs = threading.Thread(
            target=lambda: answers.append(ingest_logs(store, key, call.logs_body, PROTOBUF_TYPE))
        )
        logs.start()
        logs.join(0.5)  # done by now, unless it waits for this request
        return store_events(rows)

    store.insert_events = meanwhile  # type: ignore[method-assign]
    try:
        assert ingest_traces(store, key, call.span_body, PROTOBUF_TYPE) == (0, "")
    finally:
        store.insert_events = store_events  # type: ignore[method-assign]
    for _ in range(100):
        if answers:
            break
        time.sleep(0.05)
    ((rejected, message),) = answers
    assert rejected == len(MESSAGES) and "came after its call's span" in message
    target = event_id(key.project_id, call.trace_id, call.span_id)
    assert store.held_records(key.project_id, [target]) == {}


def test_what_a_project_redacts_is_redacted_before_it_is_held(store: Store) -> None:
    """Records wait in the database up to 15 minutes: each is redacted before it is held as
    the event field its content lands in is redacted (a message in the request, a choice in
    the answer), so a project that redacts part of a call holds no raw copy of that part;
    its event is redacted as its fields say, as an event of the span's own attributes
    would be."""
    asked, answered = "ana.lopez@example.com", "bo.berg@example.com"
    redaction = Redaction({"whole": "all", "asks": ["request"], "answers": ["response"]})
    call = Call(
        [
            ("gen_ai.user.message", {"content": f"Write to {asked}"}),
            ("gen_ai.choice", {"index": 0, "message": {"content": f"Done: {answered}"}}),
        ]
    )
    for name, held_raw in (("whole", set()), ("asks", {answered}), ("answers", {asked})):
        key = KeyInfo(1, store.ensure_project(name), name, "dev")
        assert ingest_logs(store, key, call.logs_body, PROTOBUF_TYPE, redaction=redaction)[0] == 0
        target = event_id(key.project_id, call.trace_id, call.span_id)
        held = json.dumps(store.held_records(key.project_id, [target]))
        assert {e for e in (asked, answered) if e in held} == held_raw, (name, held)
        intake = Intake(redaction=redaction)
        assert ingest_traces(store, key, call.span_body, PROTOBUF_TYPE, intake) == (0, "")
        event = store.get_event(key.project_id, target)
        assert event is not None
        assert (asked in json.dumps(event["request"])) is (asked in held_raw), name
        assert (answered in json.dumps(event["response"])) is (answered in held_raw), name
    # One details record carries both: its input and output messages each as theirs.
    details = {
        "gen_ai.input.messages": [
            {"role": "user", "parts": [{"type": "text", "content": f"Write to {asked}"}]}
        ],
        "gen_ai.output.messages": [
            {"role": "assistant", "parts": [{"type": "text", "content": f"Done: {answered}"}]}
        ],
    }
    both = Call([("gen_ai.client.inference.operation.details", None)], details=details)
    key = KeyInfo(1, store.ensure_project("answers"), "answers", "dev")
    assert ingest_logs(store, key, both.logs_body, PROTOBUF_TYPE, redaction=redaction)[0] == 0
    target = event_id(key.project_id, both.trace_id, both.span_id)
    held = json.dumps(store.held_records(key.project_id, [target]))
    assert asked in held and answered not in held, held


def test_a_call_holds_a_bounded_number_of_records(project: Project) -> None:
    """A key cannot pile records on one call, request after request, into an event no read
    could load: past ``MAX_HELD_PER_CALL`` they are refused, saying why."""
    many = [("gen_ai.user.message", {"content": f"m{i}"}) for i in range(MAX_HELD_PER_CALL + 5)]
    call = Call(many)
    answer = _answer(_logs(project, call.logs_body))
    assert answer.partial_success.rejected_log_records == 5
    assert "past what a call may hold (1000 records" in answer.partial_success.error_message
    later = encode_logs_request(call)  # three more records of the same call
    records = later.resource_logs[0].scope_logs[0].log_records
    del records[3:]
    for record in records:
        record.time_unix_nano += 1
    answer = _answer(_logs(project, later.SerializeToString()))
    assert answer.partial_success.rejected_log_records == 3
    _spans(project, call)
    assert len(_event(project)["request"]["messages"]) == MAX_HELD_PER_CALL


def test_a_record_sent_again_in_another_batch_is_held_once(project: Project) -> None:
    """An exporter may resend a record in a batch of other records: the same record, held
    once, whatever its place in the request."""
    call = Call(MESSAGES)
    assert _answer(_logs(project, call.logs_body))
    again = encode_logs_request(call)
    records = again.resource_logs[0].scope_logs[0].log_records
    records.reverse()  # in another order, the choice first
    del records[-1]
    assert _answer(_logs(project, again.SerializeToString()))
    _spans(project, call)
    event = _event(project)
    assert [m["content"] for m in event["request"]["messages"]] == [
        "Be brief.",
        "Capital of France?",
    ]
    assert [c["message"]["content"] for c in event["response"]["choices"]] == ["Paris."]


def test_a_lone_surrogate_in_otlp_json_breaks_nothing(project: Project) -> None:
    """OTLP/JSON can escape half of a UTF-16 pair, which no UTF-8 text holds: the body is
    refused, saying where, and the call's span then stores its event, readable."""
    call = Call(MESSAGES)
    payload = json_format.MessageToDict(encode_logs_request(call))
    for record in payload["resourceLogs"][0]["scopeLogs"][0]["logRecords"]:
        record["traceId"] = call.trace_id
        record["spanId"] = _hex_of_base64(record["spanId"])
    body = json.dumps(payload).replace("Capital of France?", "Capital \\ud800 of France?")
    headers = {"content-type": "application/json"}
    response = project.server.post("/v1/logs", project.key, headers=headers, content=body.encode())
    assert response.status_code == 400 and "Unpaired surrogate" in response.text, response.text
    spans = project.server.post("/v1/traces", project.key, headers=PROTOBUF, content=call.span_body)
    assert spans.status_code == 200, spans.text
    for listed in project.events():
        assert project.server.get(f"/api/v1/events/{listed['id']}", project.key).status_code == 200


def test_two_messages_alike_in_one_request_are_both_kept(project: Project) -> None:
    """Records stamped with one time (an instrumentation that stamps a call's messages all
    at once) that say the same thing ("Yes." twice in a conversation) are two messages, not
    one sent again; the request sent again still adds none."""
    said = [
        ("gen_ai.user.message", {"content": "Yes."}),
        ("gen_ai.assistant.message", {"content": "Sure?"}),
        ("gen_ai.user.message", {"content": "Yes."}),
        ("gen_ai.choice", {"index": 0, "message": {"role": "assistant", "content": "Done."}}),
    ]
    call = Call(said, at=1_700_000_000_000_000_000)
    for _ in range(2):
        assert _answer(_logs(project, call.logs_body)).partial_success.rejected_log_records == 0
    _spans(project, call)
    messages = _event(project)["request"]["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "Yes."),
        ("assistant", "Sure?"),
        ("user", "Yes."),
    ]
