"""An application instrumented with OpenTelemetry, as a user runs one: the real openai SDK,
a real instrumentation package, the real OTLP exporter, pointed at llmtap. Run by
tests/test_otlp.py in a process of its own (an instrumentation patches openai for the whole
process, and the test process records the same calls through llmtap.Client).

    python tests/otlp_app.py CONVENTION protobuf|json PROVIDER_URL LLMTAP_URL KEY

CONVENTION: ``openinference``; ``genai`` (OpenTelemetry's OpenAI instrumentation, the messages
on the span); ``genai-events`` (the same, the messages in its details event, which goes out
through the logs exporter); ``anthropic`` (OpenInference's Anthropic instrumentation on the
anthropic SDK).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from tests.otlp_calls import run_anthropic_calls, run_calls


class JsonExporter(SpanExporter):
    """OTLP/JSON over HTTP: the official JSON encoder (opentelemetry-exporter-otlp-json-common),
    posted as the OTLP exporter posts protobuf."""

    def __init__(self, endpoint: str, headers: dict[str, str]) -> None:
        self.endpoint, self.headers = endpoint, headers

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        import httpx
        from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans

        body = encode_spans(spans).to_json().encode()
        headers = {**self.headers, "content-type": "application/json"}
        response = httpx.post(self.endpoint, content=body, headers=headers)
        print("OTLP", response.status_code, response.text, flush=True)
        return SpanExportResult.SUCCESS if response.is_success else SpanExportResult.FAILURE


def main(argv: list[str]) -> None:
    convention, encoding, provider_url, llmtap_url, key = argv
    capture = "EVENT_ONLY" if convention == "genai-events" else "SPAN_ONLY"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = capture
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    resource = Resource.create({"service.name": "otlp-app", "deployment.environment": "test"})
    tracer_provider = TracerProvider(resource=resource)
    endpoint, headers = f"{llmtap_url}/v1/traces", {"authorization": f"Bearer {key}"}
    exporter: SpanExporter
    if encoding == "protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint, headers=headers)
    else:
        exporter = JsonExporter(endpoint, headers)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    if convention == "anthropic":
        import anthropic
        from openinference.instrumentation.anthropic import AnthropicInstrumentor

        AnthropicInstrumentor().instrument(tracer_provider=tracer_provider)
        base_url = provider_url.removesuffix("/v1")  # the SDK adds it
        client = anthropic.Anthropic(api_key="sk-fake", base_url=base_url, max_retries=0)
        run_anthropic_calls(client)
        tracer_provider.shutdown()
        return
    if convention == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
    else:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    # The events go out on the logs pipeline, each as it is emitted: before its call's span.
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{llmtap_url}/v1/logs", headers=headers))
    )
    OpenAIInstrumentor().instrument(
        tracer_provider=tracer_provider, logger_provider=logger_provider
    )

    import openai

    run_calls(openai.OpenAI(api_key="sk-fake", base_url=provider_url, max_retries=0))
    logger_provider.shutdown()
    tracer_provider.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
