"""OpenTelemetry in: OTLP/HTTP trace export (``endpoint``) and log export (``logs``: a call's
messages sent as events, evaluations), decoded with the official proto messages (``decode``),
each model-call span mapped to an event by its conventions (``mapping``: ``openinference``,
``genai``)."""

from __future__ import annotations

from .endpoint import ingest_traces, receive_traces
from .logs import ingest_logs, receive_logs

__all__ = ["ingest_logs", "ingest_traces", "receive_logs", "receive_traces"]
