"""Evaluations sent as spans' events (``gen_ai.evaluation.result``, OpenTelemetry's GenAI
conventions) become feedback on the model call they judge: the call whose span carries the
event, or, on a span of its own (an evaluator's), the call of its parent span.

llmtap's feedback is a rating from 0 to 1: a score already in that range is the rating; else a
label that says pass or fail (``pass``, ``correct``, ``relevant``... or their opposites) is 1 or
0; an evaluation with neither cannot be rated and is counted as ignored. Each OTLP event has its
own id for a feedback key, so a feedback sent before or after its call's span finds it; and
each evaluation has an id derived from its place (trace, span, position), so a batch sent
twice stores it once.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from .common import event_id
from .decode import Span

__all__ = ["EVALUATION", "Rating", "ratings_of"]

EVALUATION = "gen_ai.evaluation.result"
_PASS = {"pass", "passed", "good", "correct", "true", "yes", "positive", "relevant", "helpful"}
_FAIL = {"fail", "failed", "bad", "incorrect", "false", "no", "negative", "irrelevant"}
_NAMESPACE = uuid.UUID("0b7c1e4a-5d6f-4a8b-9c2d-3e4f5a6b7c8d")


@dataclass(frozen=True)
class Rating:
    feedback_key: str  # the judged call's event id
    rating: float
    feedback_id: str


def _rating(score: object, label: object) -> float | None:
    if (
        isinstance(score, int | float)
        and not isinstance(score, bool)
        and math.isfinite(score)
        and 0 <= score <= 1
    ):
        return float(score)
    if isinstance(label, str):
        word = label.strip().lower()
        if word in _PASS:
            return 1.0
        if word in _FAIL:
            return 0.0
    return None


def ratings_of(span: Span, project_id: int, is_call: bool) -> tuple[list[Rating], int]:
    """The ratings ``span``'s evaluation events give (``is_call``: the span is a model call's
    itself), and how many evaluations could not be rated or placed."""
    found = [e for e in span.events if e.name == EVALUATION]
    if not found:
        return [], 0
    if is_call:
        target = event_id(project_id, span.trace_id, span.span_id)
    elif span.parent_span_id:
        target = event_id(project_id, span.trace_id, span.parent_span_id)
    else:
        return [], len(found)  # an evaluation of nothing this trace says
    ratings, unrated = [], 0
    for index, event in enumerate(found):
        attributes = event.attributes
        rating = _rating(
            attributes.get("gen_ai.evaluation.score.value"),
            attributes.get("gen_ai.evaluation.score.label"),
        )
        if rating is None:
            unrated += 1
            continue
        place = f"{project_id}:{span.trace_id}:{span.span_id}:{index}"
        ratings.append(Rating(target, rating, str(uuid.uuid5(_NAMESPACE, place))))
    return ratings, unrated
