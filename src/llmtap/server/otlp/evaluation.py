"""Evaluations become feedback on the model call they judge. Two conventions send them:

- OpenTelemetry's GenAI conventions, as spans' events (``gen_ai.evaluation.result``): they
  judge the call whose span carries the event, or, on a span of its own (an evaluator's), the
  call of its parent span;
- OpenInference, as a span's attributes (its spec calls them annotations or evaluations, the
  same fields either way): ``annotations.<i>.annotation.<field>`` and
  ``evaluations.<i>.evaluation.<field>`` judge the span that carries them. Their ``trace.``
  and ``session.`` forms judge a whole trace or session, which llmtap's feedback (a rating of
  one call) cannot hold: they are counted as not placed, as are annotations of a span that is
  no model call.

llmtap's feedback is a rating from 0 to 1: a score already in that range is the rating; else a
label that says pass or fail (``pass``, ``correct``, ``relevant``... or their opposites) is 1 or
0; an evaluation with neither cannot be rated and is counted as ignored. Each OTLP event has its
own id for a feedback key, so a feedback sent before or after its call's span finds it; and
each evaluation has an id derived from its place (trace, span, convention, position), so a
batch sent twice stores it once.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from .common import ANNOTATION_PREFIXES, event_id
from .decode import Span

__all__ = ["EVALUATION", "Judged", "Rating", "rating_of_record", "ratings_of"]

EVALUATION = "gen_ai.evaluation.result"
_PASS = {
    *("pass", "passed", "good", "correct", "true", "yes", "positive", "relevant", "helpful"),
    *("factual", "faithful", "grounded"),
}
_FAIL = {
    *("fail", "failed", "bad", "incorrect", "false", "no", "negative", "irrelevant"),
    *("hallucinated", "unfaithful", "ungrounded", "unrelated"),
}
_ANNOTATION = re.compile(
    r"(?P<scope>trace\.|session\.)?(?:annotations\.(?P<a>\d{1,6})\.annotation"
    r"|evaluations\.(?P<e>\d{1,6})\.evaluation)\.(?P<field>\w+)"
)
_NAMESPACE = uuid.UUID("0b7c1e4a-5d6f-4a8b-9c2d-3e4f5a6b7c8d")


@dataclass(frozen=True)
class Rating:
    feedback_key: str  # the judged call's event id
    rating: float
    feedback_id: str


@dataclass
class Judged:
    """What a span's evaluations give: ratings, and how many could not be rated (no score
    from 0 to 1, no pass or fail label) or placed (no call of this trace is what they judge)."""

    ratings: list[Rating] = field(default_factory=list)
    unrated: int = 0
    unplaced: int = 0

    def add(self, other: Judged) -> None:
        self.ratings += other.ratings
        self.unrated += other.unrated
        self.unplaced += other.unplaced

    def unplace(self, not_calls: set[str]) -> None:
        """Count as not placed the ratings of spans known to be no call (an evaluator's
        span whose parent is an agent's, in the same request): stored, they would rate an
        event that never comes. A parent sent in a later request is not known here."""
        kept = [r for r in self.ratings if r.feedback_key not in not_calls]
        self.unplaced += len(self.ratings) - len(kept)
        self.ratings = kept


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


def ratings_of(span: Span, project_id: int, is_call: bool) -> Judged:
    """What ``span``'s evaluation events and annotation attributes give (``is_call``: the
    span is a model call's itself)."""
    judged = Judged()
    found = [e.attributes for e in span.events if e.name == EVALUATION]
    if found:
        if is_call:
            target = event_id(project_id, span.trace_id, span.span_id)
        elif span.parent_span_id:
            target = event_id(project_id, span.trace_id, span.parent_span_id)
        else:
            target = None  # an evaluation of nothing this trace says
        scored = [
            (a.get("gen_ai.evaluation.score.value"), a.get("gen_ai.evaluation.score.label"))
            for a in found
        ]
        _rate(judged, span, project_id, target, "gen_ai", scored)
    annotations, other_scopes = _annotations(span.attributes)
    judged.unplaced += other_scopes
    if annotations:
        target = event_id(project_id, span.trace_id, span.span_id) if is_call else None
        _rate(judged, span, project_id, target, "openinference", annotations)
    return judged


def rating_of_record(
    project_id: int, trace_id: str, span_id: str, attributes: dict[str, Any], record_id: str
) -> Rating | None:
    """A ``gen_ai.evaluation.result`` log record's rating of the call whose span it belongs
    to (the conventions parent the event to the operation it evaluates); None when it gives
    no rating from 0 to 1. Its id comes from the record's content: sent twice, stored once."""
    rating = _rating(
        attributes.get("gen_ai.evaluation.score.value"),
        attributes.get("gen_ai.evaluation.score.label"),
    )
    if rating is None:
        return None
    place = f"{project_id}:{trace_id}:{span_id}:log:{record_id}"
    target = event_id(project_id, trace_id, span_id)
    return Rating(target, rating, str(uuid.uuid5(_NAMESPACE, place)))


def _rate(
    judged: Judged,
    span: Span,
    project_id: int,
    target: str | None,
    convention: str,
    scored: list[tuple[Any, Any]],
) -> None:
    """Add the ratings of ``scored`` (score, label pairs, in the span's order) of
    ``convention`` to ``judged``, on the call ``target`` (None: placed nowhere)."""
    if target is None:
        judged.unplaced += len(scored)
        return
    for index, (score, label) in enumerate(scored):
        rating = _rating(score, label)
        if rating is None:
            judged.unrated += 1
            continue
        # The gen_ai form's ids are those stored before OpenInference's were read: unchanged.
        kind = "" if convention == "gen_ai" else f"{convention}:"
        place = f"{project_id}:{span.trace_id}:{span.span_id}:{kind}{index}"
        judged.ratings.append(Rating(target, rating, str(uuid.uuid5(_NAMESPACE, place))))


def _annotations(attributes: dict[str, Any]) -> tuple[list[tuple[Any, Any]], int]:
    """OpenInference's annotations of the span itself among ``attributes``, as (score,
    label) pairs in index order; and how many annotate its trace or session instead."""
    keys = [key for key in attributes if key.startswith(ANNOTATION_PREFIXES)]
    if not keys:  # most spans: a scan of the names, no more
        return [], 0
    fields: dict[tuple[str, str, int], dict[str, Any]] = {}
    for key in keys:
        found = _ANNOTATION.fullmatch(key)
        if found is None:
            continue
        scope = found["scope"] or ""
        form, index = ("a", found["a"]) if found["a"] is not None else ("e", found["e"])
        fields.setdefault((scope, form, int(index)), {})[found["field"]] = attributes[key]
    # The spec asks a name of each, and one of score, label or explanation at least.
    named = {k: v for k, v in fields.items() if v.get("name")}
    own = sorted(k for k in named if not k[0])
    return [(named[k].get("score"), named[k].get("label")) for k in own], len(named) - len(own)
