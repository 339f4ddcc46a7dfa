"""OpenTelemetry in: OTLP/HTTP trace export (``endpoint``), decoded with the official proto
messages (``decode``), each model-call span mapped to an event by its conventions
(``mapping``: ``openinference``, ``genai``)."""

from __future__ import annotations

from .endpoint import ingest_traces, receive_traces

__all__ = ["ingest_traces", "receive_traces"]
