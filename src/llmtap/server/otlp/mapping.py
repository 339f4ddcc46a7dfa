"""A span into an llmtap event (a wire-v1 dict, validated later by ingest's validator).

Conventions are applied in order of precedence: OpenInference, then the current GenAI names,
then the older GenAI/OpenLLMetry ones, then Vercel's AI SDK (``ai.*``, beside the GenAI names
on its spans); each sets only what an earlier one left unset, and
takes the attributes it reads, so what is left goes to the event's ``attributes`` (with the
resource's: ``service.name``, ``deployment.environment``...). A span none of them describes
as a model call (a tool execution, a retrieval, an agent step, an HTTP request) gives no
event: the caller counts it as ignored.
"""

from __future__ import annotations

from typing import Any

from . import genai, openinference, vercel
from .common import Attrs, base_event, finish
from .decode import Span

__all__ = ["event_of"]


def event_of(span: Span, project_id: int) -> dict[str, Any] | None:
    """The event of ``span``, or None when it is not a model call."""
    attrs = Attrs(span.attributes)
    api = openinference.api_of(attrs) or vercel.api_of(attrs) or genai.api_of(attrs)
    if api is None:
        return None
    event = base_event(span, project_id, attrs)
    event["api"] = api
    # Feedback finds the call by its event id (see ``evaluation``).
    event["feedback_key"] = event["id"]
    if openinference.KIND in attrs.rest:
        openinference.fill(event, span, attrs)
    genai.fill_current(event, span, attrs)
    genai.fill_legacy(event, span, attrs)
    if "ai.operationId" in attrs.rest:
        vercel.fill(event, span, attrs)
    request = event.setdefault("request", {})
    if event.get("model") is None and isinstance(request.get("model"), str):
        event["model"] = request["model"]  # a failed call has no response model
    return finish(event, span, attrs)
