"""Issue 13: OTLP spans ingested per second by one ``llmtap serve`` process on SQLite, beside
the native ingest of the same calls in the same run.

The calls are ``ingest``'s events (about 2.5 KB: a system and a user message, an answer of
900 characters, usage, a template name, a chat id, two attributes). Each is also written as
the span an OpenTelemetry GenAI instrumentation sends for it (current conventions: messages
as JSON strings in ``gen_ai.input.messages``/``gen_ai.output.messages``, usage, request
parameters, ``gen_ai.conversation.id``), in OTLP protobuf requests of 512 spans, built with
the official ``opentelemetry-proto`` classes before the clock starts. Native rounds post
batches of 100 (the SDK's batch size) as JSON. Served rounds of the two alternate on one
server, so both see the machine in the same state; the figure is the median of each pair's
ratio.
"""

from __future__ import annotations

import json
import statistics
from datetime import datetime
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from ._harness import Figure, figure, llmtap_server
from .ingest import CONNECTIONS, _caught_up, bodies, make_events, served_rate

SPANS_PER_REQUEST = 512
TARGET = 0.8  # OTLP spans/s against native events/s


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def _parts(message: dict[str, Any]) -> dict[str, Any]:
    return {"role": message["role"], "parts": [{"type": "text", "content": message["content"]}]}


def span_of(event: dict[str, Any], number: int) -> Span:
    """The span a GenAI instrumentation sends for the call ``event`` records."""
    request, usage = event["request"], event["usage"]
    answer = event["response"]["choices"][0]
    start = int(datetime.fromisoformat(event["started_at"]).timestamp() * 1e9)
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": request["model"],
        "gen_ai.request.temperature": request["temperature"],
        "gen_ai.response.model": event["response"]["model"],
        "gen_ai.response.id": event["response"]["id"],
        "gen_ai.response.finish_reasons": [answer["finish_reason"]],
        "gen_ai.usage.input_tokens": usage["input_tokens"],
        "gen_ai.usage.output_tokens": usage["output_tokens"],
        "gen_ai.conversation.id": event["chat_id"],
        "gen_ai.input.messages": json.dumps([_parts(m) for m in request["messages"]]),
        "gen_ai.output.messages": json.dumps(
            [{**_parts(answer["message"]), "finish_reason": answer["finish_reason"]}]
        ),
        "llmtap.prompt_template_name": event["prompt_template_name"],
        **{f"app.{k}": v for k, v in event["attributes"].items()},
    }
    return Span(
        trace_id=number.to_bytes(16, "big"),
        span_id=(number + 1).to_bytes(8, "big"),
        name=f"chat {request['model']}",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=start + int(event["latency_ms"] * 1e6),
        attributes=[KeyValue(key=k, value=_value(v)) for k, v in attributes.items()],
    )


def otlp_bodies(events: list[dict[str, Any]], first: int) -> list[bytes]:
    """``events`` as OTLP protobuf requests of ``SPANS_PER_REQUEST`` spans each."""
    resource = Resource(attributes=[KeyValue(key="service.name", value=_value("bench"))])
    scope = InstrumentationScope(name="opentelemetry.instrumentation.openai_v2", version="2.4b0")
    out = []
    for i in range(0, len(events), SPANS_PER_REQUEST):
        chunk = events[i : i + SPANS_PER_REQUEST]
        spans = [span_of(e, first + 2 * (i + j)) for j, e in enumerate(chunk)]
        request = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(resource=resource, scope_spans=[ScopeSpans(scope=scope, spans=spans)])
            ]
        )
        out.append(request.SerializeToString())
    return out


def _all_taken(answer: bytes) -> bool:
    return ExportTraceServiceResponse.FromString(answer).partial_success.rejected_spans == 0


def run(quick: bool = False) -> dict[str, Any]:
    n = SPANS_PER_REQUEST * (25 if quick else 100)  # a multiple of both batch sizes
    rounds = 2 if quick else 5
    native: list[float] = []
    otlp: list[float] = []
    # The server's CPU per call, derivation included (until a stats request has caught up):
    # what the rates come to on a machine to itself, and steadier than they are on a busy one.
    native_cpu: list[float] = []
    otlp_cpu: list[float] = []
    with llmtap_server() as server:
        warm = make_events(2000, seed=-2000)
        served_rate(server.url, server.key, bodies(warm), 2)
        for i in range(rounds):
            events = make_events(n, seed=n * 2 * i)
            before = server.cpu_seconds()
            native.append(served_rate(server.url, server.key, bodies(events), CONNECTIONS))
            _caught_up(server)
            native_cpu.append((server.cpu_seconds() - before) / n * 1e6)
            spans = otlp_bodies(make_events(n, seed=n * (2 * i + 1)), first=2 * n * (i + 1))
            before = server.cpu_seconds()
            otlp.append(
                served_rate(
                    server.url,
                    server.key,
                    spans,
                    CONNECTIONS,
                    path="/v1/traces",
                    content_type="application/x-protobuf",
                    per_payload=SPANS_PER_REQUEST,
                    accepted=_all_taken,
                )
            )
            _caught_up(server)
            otlp_cpu.append((server.cpu_seconds() - before) / n * 1e6)
        size = len(otlp_bodies(make_events(SPANS_PER_REQUEST), 1)[0]) / SPANS_PER_REQUEST
    return {
        "calls": n,
        "span_bytes": round(size),
        "spans_per_request": SPANS_PER_REQUEST,
        "native_events_per_s": native,
        "otlp_spans_per_s": otlp,
        # Each OTLP round ran right after its native round: the median of the pairs' ratios
        # is what survives a machine whose load changes between rounds.
        "ratio": statistics.median(o / n for o, n in zip(otlp, native, strict=True)),
        "ratio_of_bests": max(otlp) / max(native),
        "native_server_cpu_us_per_call": native_cpu,
        "otlp_server_cpu_us_per_call": otlp_cpu,
        "cpu_ratio": statistics.median(
            native_us / otlp_us for native_us, otlp_us in zip(native_cpu, otlp_cpu, strict=True)
        ),
    }


def report(result: dict[str, Any]) -> str:
    native, otlp = result["native_events_per_s"], result["otlp_spans_per_s"]
    return "\n".join(
        [
            f"otlp: {result['calls']} model-call spans of ~{result['span_bytes']} B in protobuf"
            f" requests of {result['spans_per_request']}, one llmtap serve process on SQLite,"
            f" {CONNECTIONS} connections; rounds alternate with native ingest of the same calls",
            f"  OTLP:   best {max(otlp):,.0f} spans/s  (rounds: "
            + ", ".join(f"{v:,.0f}" for v in otlp)
            + ")",
            f"  native: best {max(native):,.0f} events/s (rounds: "
            + ", ".join(f"{v:,.0f}" for v in native)
            + ")",
            f"  OTLP / native, median of the rounds' pairs: {result['ratio']:.2f}"
            f" (target: >= {TARGET}); of the bests: {result['ratio_of_bests']:.2f}",
            "  server CPU per call, derivation included: OTLP "
            + ", ".join(f"{v:.0f}" for v in result["otlp_server_cpu_us_per_call"])
            + " us; native "
            + ", ".join(f"{v:.0f}" for v in result["native_server_cpu_us_per_call"])
            + f" us; native / OTLP, median of the pairs: {result['cpu_ratio']:.2f}",
        ]
    )


def summary(r: dict[str, Any]) -> list[Figure]:
    return [figure("OTLP ingest / native ingest (same calls)", r["ratio"], ">=", TARGET)]
