"""OTLP ingest's edges: conventions written by hand (the older GenAI names, OpenInference
templates and sessions), idempotence, the spec's answers, and hostile bodies; never a 5xx.

Spans are made with the OpenTelemetry SDK and encoded by the OTLP exporter's own encoder."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path
from typing import Any

import genai_prices
import httpx2
import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status as RpcStatus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from llmtap.store import open_store
from tests._stores import STORE_BACKENDS
from tests.conftest import Project, server_on_each_backend, start_server, stop_server
from tests.test_server import assert_error_shape

# Every test here runs on a server of each store backend.
server = pytest.fixture(scope="module", params=STORE_BACKENDS, name="server")(
    server_on_each_backend
)

PROTOBUF = {"content-type": "application/x-protobuf"}
LEGACY = {
    "gen_ai.system": "Anthropic",
    "gen_ai.request.model": "claude-3-5-haiku-latest",
    "gen_ai.prompt.0.role": "user",
    "gen_ai.prompt.0.content": "hello",
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.content": "hi there",
    "gen_ai.completion.0.finish_reason": "stop",
    "gen_ai.usage.prompt_tokens": 7,
    "gen_ai.usage.completion_tokens": 3,
}


def _spans(*specs: dict[str, Any]) -> list[ReadableSpan]:
    """Finished spans, the first the parent of the others; each spec's ``_name``, ``_error``
    and ``_evaluations`` (attributes of its evaluation events) shape the span, its other keys
    are attributes."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "hand-made"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("hand.made", "1.2.3")
    with tracer.start_as_current_span(specs[0].get("_name", "root")) as root:
        root.set_attributes({k: v for k, v in specs[0].items() if not k.startswith("_")})
        for spec in specs[1:]:
            span = tracer.start_span(spec.get("_name", "child"))
            span.set_attributes({k: v for k, v in spec.items() if not k.startswith("_")})
            for evaluation in spec.get("_evaluations", ()):
                span.add_event("gen_ai.evaluation.result", evaluation)
            if spec.get("_error"):
                span.set_status(Status(StatusCode.ERROR, "boom"))
                span.record_exception(ValueError("it broke"))
            span.end()
    return list(exporter.get_finished_spans())


def _body(spans: list[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()  # type: ignore[no-any-return]


def _post(project: Project, body: bytes, headers: dict[str, str] | None = None) -> httpx2.Response:
    return project.server.post(
        "/v1/traces", project.key, headers=PROTOBUF if headers is None else headers, content=body
    )


def _answer(response: httpx2.Response) -> ExportTraceServiceResponse:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    return answer


def test_older_genai_names_parent_and_idempotence(project: Project) -> None:
    spans = _spans({"_name": "agent", "user.id": "u-7"}, {"_name": "llm", **LEGACY})
    body = _body(spans)
    first = _answer(_post(project, body))
    assert first.partial_success.rejected_spans == 0
    assert "1 of 2 spans are not model calls" in first.partial_success.error_message
    _answer(_post(project, gzip.compress(body), {**PROTOBUF, "content-encoding": "gzip"}))
    events = project.events()
    assert len(events) == 1  # sent twice (once gzipped), stored once; the agent span ignored
    event = project.event(events[0]["id"])
    root, llm = spans[1], spans[0]  # the child ends first
    assert event["provider"] == "anthropic" and event["model"] == "claude-3-5-haiku-latest"
    assert event["request"]["messages"] == [{"role": "user", "content": "hello"}]
    assert event["output_text"] == "hi there"
    assert event["response"]["choices"][0]["finish_reason"] == "stop"
    assert event["usage"]["input_tokens"] == 7 and event["usage"]["total_tokens"] == 10
    assert event["cost_usd"] is not None  # the price library knows Anthropic's models
    assert event["chain_id"] == format(llm.context.trace_id, "032x")
    assert event["parent_event_id"] is not None
    assert event["sdk"] == {"name": "hand.made", "version": "1.2.3"}
    assert event["attributes"]["service.name"] == "hand-made"
    assert event["attributes"]["otel.span_id"] == format(llm.context.span_id, "016x")
    assert root.name == "agent"


def test_openinference_template_session_and_metadata(project: Project) -> None:
    template = json.dumps([{"role": "user", "content": "Emoji for {sport}"}])
    spans = _spans(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini",
            "llm.provider": "openai",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "Emoji for soccer",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "⚽",
            "llm.prompt_template.template": template,
            "llm.prompt_template.variables": json.dumps({"sport": "soccer"}),
            "llm.prompt_template.version": "v3",
            "session.id": "chat-42",
            "user.id": "u-1",
            "metadata": json.dumps({"team": "blue"}),
            "gen_ai.request.model": "ignored-older-name",
        }
    )
    _answer(_post(project, _body(spans)))
    (event,) = project.events(chat_id="chat-42")
    assert event["model"] == "gpt-4o-mini"  # OpenInference wins over the GenAI names
    assert event["template_chat"] == [{"role": "user", "content": "Emoji for {sport}"}]
    assert event["template_params"] == {"sport": "soccer"}
    assert event["template_revision"]
    assert event["output_text"] == "⚽"
    attributes = event["attributes"]
    # The end user is the "user" attribute, as the llmtap SDK's users name it: one filter and
    # one group-by for calls however sent.
    assert attributes["user"] == "u-1" and "user.id" not in attributes
    assert attributes["team"] == "blue"
    assert attributes["llm.prompt_template.version"] == "v3"
    assert project.events(**{"attributes.user": "u-1"})
    stats = project.server.get("/api/v1/stats", project.key, group_by="attributes.user").json()
    assert [g["key"] for g in stats["groups"]] == [{"attributes.user": "u-1"}]


def test_a_frameworks_own_input_gives_way_to_the_flattened_messages(project: Project) -> None:
    """OpenInference's LangChain spans carry LangChain's own objects as ``input.value``; the
    call is its flattened messages, model and parameters, as an OpenAI request."""
    langchain = {
        "messages": [
            [
                {
                    "lc": 1,
                    "type": "constructor",
                    "id": ["langchain", "schema", "messages", "HumanMessage"],
                    "kwargs": {"content": "Capital of France?", "type": "human"},
                }
            ]
        ]
    }
    spans = _spans(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini",
            "llm.invocation_parameters": json.dumps({"temperature": 0.2}),
            "input.value": json.dumps(langchain),
            "input.mime_type": "application/json",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "Capital of France?",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "Paris.",
        }
    )
    _answer(_post(project, _body(spans)))
    (listed,) = project.events()
    assert project.event(listed["id"])["request"] == {
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "messages": [{"role": "user", "content": "Capital of France?"}],
    }


def test_mixed_batch_good_stored_bad_counted_never_5xx(project: Project) -> None:
    huge = "x" * (10 * 1024 * 1024)
    spans = _spans(
        {"_name": "root"},
        {"_name": "good", **LEGACY},
        {"_name": "bad", **LEGACY, "gen_ai.conversation.id": "c" * 600},
        {"_name": "failed", **LEGACY, "_error": True},
        {"_name": "huge", **LEGACY, "gen_ai.prompt.0.content": huge, "odd": [1, 2, 3]},
    )
    answer = _answer(_post(project, _body(spans)))
    assert answer.partial_success.rejected_spans == 1
    assert "chat_id" in answer.partial_success.error_message
    events = {e["attributes"]["otel.span_name"]: e for e in project.events()}
    assert sorted(events) == ["failed", "good", "huge"]
    failed = events["failed"]
    assert failed["status"] == "error"
    assert failed["error"]["type"] == "ValueError" and failed["error"]["message"] == "boom"
    cut = project.event(events["huge"]["id"])
    assert cut["truncated"] == ["request.messages.0.content"]
    assert cut["attributes"]["odd"] == [1, 2, 3]


def test_spans_with_invalid_ids_are_rejected_not_merged(project: Project) -> None:
    """An event's id is made of its span's trace and span ids: two spans with empty or zero
    ids would be stored as one, the second silently gone. Each is rejected, with why; the
    span beside them is stored."""
    spans = _spans({"_name": "root"}, {"_name": "good", **LEGACY})
    request = encode_spans(spans)
    pbs = request.resource_spans[0].scope_spans[0].spans
    for name, trace, span in (("empty", b"", b""), ("zero", bytes(16), bytes(8)),
                              ("short", b"\x01" * 4, b"\x02" * 8)):  # fmt: skip
        added = pbs.add()
        added.CopyFrom(next(pb for pb in pbs if pb.name == "good"))
        added.name, added.trace_id, added.span_id = name, trace, span
    answer = _answer(_post(project, request.SerializeToString()))
    assert answer.partial_success.rejected_spans == 3
    assert "invalid trace or span id" in answer.partial_success.error_message
    assert [e["attributes"]["otel.span_name"] for e in project.events()] == ["good"]


def test_a_span_from_further_than_a_day_ahead_is_rejected_alone(project: Project) -> None:
    """As an event: stamped in the future, it would outlive the project's retention."""
    spans = _spans({"_name": "root"}, {"_name": "good", **LEGACY})
    request = encode_spans(spans)
    pbs = request.resource_spans[0].scope_spans[0].spans
    ahead = pbs.add()
    ahead.CopyFrom(next(pb for pb in pbs if pb.name == "good"))
    ahead.name, ahead.span_id = "ahead", b"\x07" * 8
    ahead.start_time_unix_nano += 2 * 86_400 * 10**9
    ahead.end_time_unix_nano += 2 * 86_400 * 10**9
    answer = _answer(_post(project, request.SerializeToString()))
    assert answer.partial_success.rejected_spans == 1
    assert "more than a day after the server's clock" in answer.partial_success.error_message
    assert [e["attributes"]["otel.span_name"] for e in project.events()] == ["good"]


def test_span_without_end_time_and_json_form(project: Project) -> None:
    (span,) = _spans({"_name": "llm", **LEGACY})
    payload = json_format.MessageToDict(encode_spans([span]))
    # OTLP/JSON: ids in hex, not protobuf's base64; no end time at all.
    scope_span = payload["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    scope_span["traceId"] = format(span.context.trace_id, "032x")
    scope_span["spanId"] = format(span.context.span_id, "016x")
    del scope_span["endTimeUnixNano"]
    response = project.server.post("/api/v1/otlp/v1/traces", project.key, json=payload)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    (event,) = project.events()
    assert event["latency_ms"] is None and event["chain_id"] == scope_span["traceId"]


def test_hostile_bodies_get_clear_4xx(project: Project) -> None:
    good = _body(_spans({"_name": "llm", **LEGACY}))
    read_only = project.server.new_key(scopes=("read",))
    cases = [
        (_post(project, b"\x0a\xff\xff\xff\xff\x0f garbage"), 400, "protobuf"),
        (_post(project, good[: len(good) // 2]), 400, "protobuf"),
        (_post(project, b"{not json", {"content-type": "application/json"}), 400, "JSON"),
        (_post(project, b'{"resourceSpans": 5}', {"content-type": "application/json"}), 400, ""),
        (
            _post(
                project,
                b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}',
                {"content-type": "application/json"},
            ),
            400,
            "hex",
        ),
        (_post(project, b"[]", {"content-type": "application/json"}), 400, ""),
        (_post(project, good, {"content-type": "text/plain"}), 415, "content type"),
        (_post(project, good, {}), 415, "content type"),
        (_post(project, b"junk", {**PROTOBUF, "content-encoding": "gzip"}), 400, "gzip"),
        (project.server.post("/v1/traces", None, headers=PROTOBUF, content=good), 401, "key"),
        (project.server.post("/v1/traces", read_only, headers=PROTOBUF, content=good), 403, ""),
        (_post(project, b"x" * (33 * 1024 * 1024)), 413, "limit"),
    ]
    for response, status, words in cases:
        message = otlp_error(response, status)
        assert words.lower() in message.lower(), message
    assert project.events() == []


def test_a_request_of_too_many_spans_events_or_records_is_a_413(project: Project) -> None:
    """A small body can hold a great many items (an empty span event is two bytes): spans,
    span events and log records have a bound per request, as events do."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    def traces(spans: int, events: int) -> bytes:
        request = ExportTraceServiceRequest()
        scope = request.resource_spans.add().scope_spans.add()
        for i in range(spans):
            span = scope.spans.add(trace_id=b"\x01" * 16, span_id=(i + 1).to_bytes(8, "big"))
            span.start_time_unix_nano = 1_767_225_600 * 10**9
        for _ in range(events):
            scope.spans[0].events.add()
        return request.SerializeToString()  # type: ignore[no-any-return]

    logs = ExportLogsServiceRequest()
    records = logs.resource_logs.add().scope_logs.add()
    for _ in range(10_001):
        records.log_records.add(event_name="gen_ai.user.message")
    for path, body, words in (
        ("/v1/traces", traces(10_001, 0), "10,001 spans: 10,000 at most"),
        ("/v1/traces", traces(1, 100_001), "100,001 span events: 100,000 at most"),
        ("/v1/logs", logs.SerializeToString(), "10,001 log records: 10,000 at most"),
    ):
        response = project.server.post(path, project.key, headers=PROTOBUF, content=body)
        assert words in otlp_error(response, 413)
    # At the bounds, taken (these spans are no model calls: kept as their trace's context).
    answer = _answer(_post(project, traces(10_000, 100_000)))
    assert answer.partial_success.rejected_spans == 0


def otlp_error(response: httpx2.Response, status: int) -> str:
    """The message of an OTLP endpoint's error, whose body the OTLP/HTTP spec makes a
    ``google.rpc.Status`` in the request's encoding: protobuf, or JSON (with llmtap's own
    error fields beside)."""
    assert response.status_code == status, response.text
    if response.headers["content-type"] == "application/x-protobuf":
        answer = RpcStatus()
        answer.ParseFromString(response.content)
        assert answer.code != 0 and answer.message, answer
        return str(answer.message)
    body = assert_error_shape(response, status)
    assert body["message"] == body["error"] and body["code"] != 0
    return str(body["message"])


def test_field_limit_holds_when_the_event_outgrows_its_body(tmp_path: Path) -> None:
    """A bytes attribute is stored as hex, twice its size: a body under ``max_field_bytes``
    can still map to a longer field, which is cut and listed like any other."""
    server = start_server(tmp_path, {"LLMTAP_MAX_FIELD_BYTES": "2000"})
    try:
        project = Project(server.new_key(), server)
        request = encode_spans(_spans({"_name": "llm", **LEGACY}))
        blob = request.resource_spans[0].scope_spans[0].spans[0].attributes.add()
        blob.key, blob.value.bytes_value = "blob", b"\xab" * 1200
        body = request.SerializeToString()
        assert len(body) < 2000
        _answer(_post(project, body))
        (event,) = project.events()
        stored = project.event(event["id"])
        assert len(stored["attributes"]["blob"]) <= 2000
        assert "attributes.blob" in stored["truncated"]
    finally:
        stop_server(server)


def _structured(value: Any) -> AnyValue:
    """A Python value as an OTLP ``AnyValue`` (dicts as key-value lists), as some
    instrumentations send messages on the operation-details event."""
    if isinstance(value, dict):
        pairs = [KeyValue(key=k, value=_structured(v)) for k, v in value.items()]
        return AnyValue(kvlist_value=KeyValueList(values=pairs))
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_structured(v) for v in value]))
    return AnyValue(string_value=value)


def test_field_limit_holds_when_escaping_grows_a_text_sixfold(tmp_path: Path) -> None:
    """Structured tool-call arguments become JSON text, where each control character takes
    six bytes: the largest growth from span to event, and still cut at the limit."""
    server = start_server(tmp_path, {"LLMTAP_MAX_FIELD_BYTES": "20000"})
    try:
        project = Project(server.new_key(), server)
        request = encode_spans(_spans({"_name": "llm", **LEGACY}))
        span = request.resource_spans[0].scope_spans[0].spans[0]
        call = {"type": "tool_call", "id": "call_1", "name": "f", "arguments": {"x": "\x01" * 3500}}
        details = span.events.add(name="gen_ai.client.inference.operation.details")
        messages = details.attributes.add(key="gen_ai.output.messages")
        messages.value.CopyFrom(_structured([{"role": "assistant", "parts": [call]}]))
        body = request.SerializeToString()
        assert 4 * len(body) + 1024 < 20000 < 6 * len(body)  # a bound of 4x would not walk
        assert _answer(_post(project, body)).partial_success.rejected_spans == 0
        (event,) = project.events()
        stored = project.event(event["id"])
        (tool_call,) = stored["response"]["choices"][0]["message"]["tool_calls"]
        assert len(tool_call["function"]["arguments"].encode()) <= 20000
        assert "response.choices.0.message.tool_calls.0.function.arguments" in stored["truncated"]
    finally:
        stop_server(server)


def test_text_that_is_not_unicode_refuses_its_span_alone(project: Project) -> None:
    """A lone surrogate escaped in a JSON attribute parses into text no store can hold."""
    broken = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "a"}]}])
    broken = broken.replace('"a"', '"\\ud800"')
    spans = _spans(
        {"_name": "root"},
        {"_name": "good", **LEGACY},
        {"_name": "broken", **LEGACY, "gen_ai.input.messages": broken},
    )
    answer = _answer(_post(project, _body(spans)))
    assert answer.partial_success.rejected_spans == 1
    assert "surrogate" in answer.partial_success.error_message
    assert [e["attributes"]["otel.span_name"] for e in project.events()] == ["good"]


def test_evaluations_become_feedback_on_the_call(project: Project) -> None:
    """``gen_ai.evaluation.result`` events: on the call's span, or on an evaluator's span
    under it (the call is then the root here), rate that call; a score outside 0..1 rates by
    its label; what cannot be rated is counted, not stored; a batch sent twice rates once."""
    judged = {
        "_name": "judged",
        **LEGACY,
        "_evaluations": [
            {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.8},
            {"gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.value": 4.0},
        ],
    }
    evaluator = {
        "_name": "evaluator",
        "_evaluations": [
            {"gen_ai.evaluation.name": "groundedness", "gen_ai.evaluation.score.label": "FAIL"},
            {"gen_ai.evaluation.name": "style", "gen_ai.evaluation.score.label": "meh"},
        ],
    }
    body = _body(_spans({"_name": "call", **LEGACY}, judged, evaluator))
    for _ in range(2):
        answer = _answer(_post(project, body))
        assert answer.partial_success.rejected_spans == 0
        assert "2 evaluations had no rating" in answer.partial_success.error_message
    events = {e["attributes"]["otel.span_name"]: e for e in project.events()}
    assert sorted(events) == ["call", "judged"]  # the evaluator's span is no call
    stats = project.server.get("/api/v1/stats", project.key, group_by="attributes.otel.span_name")
    ratings = {
        g["key"]["attributes.otel.span_name"]: (g["ratings"], g["avg_rating"])
        for g in stats.json()["groups"]
    }
    assert ratings["judged"] == (1, 0.8)  # its own; "tone" 4.0 with no label: not rated
    assert ratings["call"] == (1, 0.0)  # the evaluator's "FAIL"; "meh": not rated


def test_an_evaluation_of_a_span_that_is_no_call_is_not_stored(project: Project) -> None:
    """An evaluator's span under an agent's span (no call) judges no call: counted as not
    placed, not stored as feedback on an event that never comes."""
    evaluator = {
        "_name": "evaluator",
        "_evaluations": [
            {"gen_ai.evaluation.name": "overall", "gen_ai.evaluation.score.value": 0.1}
        ],
    }
    name = f"judged-{uuid.uuid4().hex[:8]}"
    own = Project(project.server.new_key(name), project.server)
    answer = _answer(_post(own, _body(_spans({"_name": "agent"}, evaluator))))
    assert "1 evaluations judge a trace, a session or a span that is no model call" in (
        answer.partial_success.error_message
    )
    store = open_store(str(project.server.db))
    try:
        assert store.list_feedback(store.ensure_project(name)) == []
    finally:
        store.close()


def test_openinference_annotations_become_feedback_on_the_call(project: Project) -> None:
    """OpenInference's annotations and evaluations, as its own helpers write them on a span:
    those of a model call's span rate that call (a score from 0 to 1, else a pass or fail
    label); those of a trace, a session or a span that is no call are counted, not stored;
    none of them is an event attribute; a batch sent twice rates once."""
    from openinference.instrumentation import (
        Annotation,
        get_annotation_attributes,
        get_evaluation_attributes,
    )

    judged = {
        "_name": "judged",
        **LEGACY,
        **get_annotation_attributes(
            annotations=[
                Annotation(name="hallucination", label="factual", annotator_kind="LLM"),
                Annotation(name="tone", score=7, explanation="on a scale of 10"),
            ]
        ),
        **get_evaluation_attributes(
            evaluations=[Annotation(name="correctness", score=0.25, metadata={"rubric": 2})]
        ),
        **get_evaluation_attributes(
            evaluations=[Annotation(name="correctness", score=0.9)], scope="trace"
        ),
    }
    root = {
        "_name": "agent",
        **get_annotation_attributes(annotations=[Annotation(name="helpful", label="helpful")]),
        **get_annotation_attributes(
            annotations=[Annotation(name="resolved", label="pass")], scope="session"
        ),
    }
    body = _body(_spans(root, judged))
    for _ in range(2):
        answer = _answer(_post(project, body))
        assert answer.partial_success.rejected_spans == 0
        message = answer.partial_success.error_message
        assert "1 evaluations had no rating" in message  # "tone": 7, and no label
        assert "3 evaluations judge a trace, a session or a span that is no model call" in message
    (event,) = project.events()
    stored = project.event(event["id"])
    assert not [k for k in stored["attributes"] if "annotation" in k or "evaluation" in k]
    (totals,) = project.server.get("/api/v1/stats", project.key).json()["groups"]
    assert (totals["ratings"], totals["avg_rating"]) == (2, 0.625)  # "factual" 1, and 0.25


_annotation_keys = st.builds(
    "{}{}.{}.{}.{}".format,
    st.sampled_from(["", "trace.", "session.", "span."]),
    st.sampled_from(["annotations", "evaluations"]),
    st.one_of(st.integers(0, 3).map(str), st.sampled_from(["-1", "x", "99999999", "", "0.0"])),
    st.sampled_from(["annotation", "evaluation", "result"]),
    st.sampled_from(["name", "score", "label", "explanation", "metadata", "identifier", "é"]),
)
_annotation_values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["pass", "FAIL", "factual", "hallucinated", " Correct "]),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=3),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.dictionaries(_annotation_keys, _annotation_values, max_size=12), st.booleans())
def test_hostile_annotations_break_nothing(
    project: Project, annotations: dict[str, Any], on_a_call: bool
) -> None:
    """Annotation attributes of any shape and value, on a call's span or another: the span is
    taken, what rates is a rating from 0 to 1, and every read after it answers."""
    spec = {"_name": "annotated", **(LEGACY if on_a_call else {}), **annotations}
    answer = _answer(_post(project, _body(_spans({"_name": "root"}, spec))))
    assert answer.partial_success.rejected_spans == 0
    for totals in project.server.get("/api/v1/stats", project.key).json()["groups"]:
        assert totals["avg_rating"] is None or 0 <= totals["avg_rating"] <= 1
    for event in project.events():
        assert project.event(event["id"])["id"] == event["id"]


def test_odd_message_indices_are_attributes_not_a_rejected_span(project: Project) -> None:
    """Indices no integer parse takes (a superscript, five thousand digits) leave the
    message alone: the span is stored with its other messages."""
    odd = {
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "hello",
        "llm.input_messages.².message.role": "user",
        f"llm.input_messages.{'1' * 5000}.message.role": "user",
        "llm.input_messages.0.message.tool_calls.².tool_call.function.name": "f",
        "llm.tools.².tool.json_schema": "{}",
        f"gen_ai.prompt.{'2' * 5000}.role": "user",
    }
    spec = {"_name": "odd", "openinference.span.kind": "LLM", "llm.model_name": "m", **odd}
    answer = _answer(_post(project, _body(_spans(spec))))
    assert answer.partial_success.rejected_spans == 0, answer.partial_success.error_message
    (listed,) = project.events()
    assert project.event(listed["id"])["request"]["messages"] == [
        {"role": "user", "content": "hello"}
    ]


def test_current_genai_usage_keeps_cache_and_reasoning_tokens_apart(project: Project) -> None:
    """``gen_ai.usage.*``: the cache's reads and writes and the reasoning tokens are parts of
    the input and output totals, kept apart and each priced at its own rate."""
    spans = _spans(
        {
            "_name": "chat claude",
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-3-7-sonnet-20250219",
            "gen_ai.usage.input_tokens": 5_000,
            "gen_ai.usage.output_tokens": 900,
            "gen_ai.usage.cache_read.input_tokens": 1_000,
            "gen_ai.usage.cache_creation.input_tokens": 2_500,
            "gen_ai.usage.reasoning.output_tokens": 600,
        }
    )
    assert _answer(_post(project, _body(spans))).partial_success.rejected_spans == 0
    (listed,) = project.events()
    event = project.event(listed["id"])
    assert event["usage"] == {
        "input_tokens": 5_000,
        "output_tokens": 900,
        "total_tokens": 5_900,
        "cached_tokens": 1_000,
        "cache_creation_tokens": 2_500,
        "reasoning_tokens": 600,
        "estimated": False,
    }
    price = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=5_000,
            output_tokens=900,
            cache_read_tokens=1_000,
            cache_write_tokens=2_500,
            output_reasoning_tokens=600,
        ),
        "claude-3-7-sonnet-20250219",
        provider_id="anthropic",
    )
    assert event["cost_usd"] == pytest.approx(float(price.total_price), rel=1e-9)
    assert not any(k.startswith("gen_ai.") for k in event["attributes"])  # all read


def test_token_counts_that_are_no_counts_are_left_out(project: Project) -> None:
    """A double attribute of infinity or NaN where a count of tokens goes (a hostile or
    broken sender): the span is stored without that count, and the request answers."""
    odd = {"_name": "odd", **LEGACY, "gen_ai.usage.prompt_tokens": float("inf"),
           "gen_ai.usage.completion_tokens": float("nan")}  # fmt: skip
    answer = _answer(_post(project, _body(_spans({"_name": "root"}, odd))))
    assert answer.partial_success.rejected_spans == 0
    (listed,) = project.events()
    usage = project.event(listed["id"]).get("usage") or {}
    assert usage.get("input_tokens") is None and usage.get("output_tokens") is None
