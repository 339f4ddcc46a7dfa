"""Test cases from production: from an event and its feedback, or from a JSON-lines record.

A case keeps what the call was (template, parameters with chat history, the rendered input,
model and call settings), what came back (``original_output``) and what is expected:

- ``better``: the feedback's better response;
- ``output``: the original output, rated at or above the threshold;
- ``differ``: rated below it with no better response: only "not the original" is expected;
- ``none``: no feedback; evaluators that compare with an expected output skip the case.

The dashboard's feedback download (``/feedback?format=jsonl``) imports as it is; so does a
case as the API answers it (``GET /api/v1/testsets/{id}``). Pure functions: the server and
the CLI both use them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..wire import GOOD_RATING, MAX_TEXT_CHARS

__all__ = [
    "DEFAULT_THRESHOLD",
    "MAX_CASES",
    "MAX_MS",
    "MAX_USD",
    "REPLAYED",
    "CaseIn",
    "case_from_event",
    "cases_from_jsonl",
    "expectation",
    "jsonl_lines",
    "replay_refused",
]

# A rating at or above this keeps the original output as what is expected.
DEFAULT_THRESHOLD = GOOD_RATING
# Cases one request may add (a bigger set is imported in several).
MAX_CASES = 10_000
# A case's or a run's cost, and a call's latency, at most: sums of them stay numbers.
MAX_USD = 1e6
MAX_MS = 1e9
# Request arguments that are the prompt or the transport, not settings of the call.
_NOT_SETTINGS = {"messages", "prompt", "input", "model", "stream", "stream_options", "extra_body"}
ExpectedKind = Literal["better", "output", "differ", "none"]


def expectation(
    better: str | None, rating: float | None, output: str | None, threshold: float
) -> tuple[ExpectedKind, str | None]:
    """What a case expects, from its feedback (see the module's doc)."""
    if better:
        return "better", better
    if rating is not None and rating >= threshold and output is not None:
        return "output", output
    if rating is not None:
        return "differ", None
    return "none", None


class CaseIn(BaseModel):
    """One case as a JSON-lines record: the feedback download's fields (``input``,
    ``output``, ``rating``, ``better_response``), an event's (``template_chat``,
    ``template_text``), or a case's own (``template``, ``expected``, ``expected_kind``)."""

    model_config = ConfigDict(extra="ignore")

    event_id: str | None = Field(None, max_length=1000)
    prompt_template_name: str | None = Field(None, max_length=1000)
    template_revision: str | None = Field(None, max_length=200)
    template: list[dict[str, Any]] | str | None = None
    template_chat: list[dict[str, Any]] | None = None
    template_text: str | None = Field(None, max_length=MAX_TEXT_CHARS)
    template_params: dict[str, Any] | None = None
    input: list[Any] | dict[str, Any] | str | None = None  # as the request held it
    model: str | None = Field(None, max_length=1000)
    settings: dict[str, Any] | None = None
    output: str | None = Field(None, max_length=MAX_TEXT_CHARS)
    original_output: str | None = Field(None, max_length=MAX_TEXT_CHARS)
    rating: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    original_latency_ms: float | None = Field(None, ge=0, le=MAX_MS, allow_inf_nan=False)
    original_cost_usd: float | None = Field(None, ge=0, le=MAX_USD, allow_inf_nan=False)
    better_response: str | None = Field(None, max_length=MAX_TEXT_CHARS)
    expected: str | None = Field(None, max_length=MAX_TEXT_CHARS)
    expected_kind: ExpectedKind | None = None
    tags: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("tags")
    @classmethod
    def _short_tags(cls, tags: list[str]) -> list[str]:
        if any(len(tag) > 100 for tag in tags):
            raise ValueError("a tag is at most 100 characters")
        return tags

    def case(self, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
        """The case, as the store keeps it."""
        template = self.template
        if template is None:
            template = self.template_chat if self.template_chat is not None else self.template_text
        original = self.original_output if self.original_output is not None else self.output
        if self.expected_kind is not None:
            kind, expected = self.expected_kind, self.expected
        else:
            kind, expected = expectation(self.better_response, self.rating, original, threshold)
            if self.expected is not None:
                kind, expected = "better", self.expected
        return {
            "event_id": self.event_id,
            "prompt_template_name": self.prompt_template_name,
            "template_revision": self.template_revision,
            "template": template,
            "template_params": self.template_params or {},
            "input": self.input,
            "model": self.model,
            "settings": self.settings or {},
            "rating": self.rating,
            "original_latency_ms": self.original_latency_ms,
            "original_cost_usd": self.original_cost_usd,
            "original_output": original,
            "expected": expected,
            "expected_kind": kind,
            "tags": self.tags,
        }


def jsonl_lines(text: str) -> list[str]:
    """The lines of JSON-lines text, numbered as the file's: they end at "\n" alone (U+2028
    and the like are text inside a JSON string: the feedback download keeps them raw), a
    Windows editor's "\r" and byte order mark are no characters of them."""
    lines = [line.rstrip("\r") for line in text.removeprefix("\ufeff").split("\n")]
    return lines[:-1] if lines and not lines[-1] else lines


def cases_from_jsonl(
    lines: Iterable[str], threshold: float = DEFAULT_THRESHOLD
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The cases of JSON-lines text, and the problems of the lines that are not cases (each
    ``{"line": N, "error": ...}``, lines counted from 1); blank lines are skipped."""
    cases: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("a line is a JSON object")
            cases.append(CaseIn.model_validate(record).case(threshold))
        except ValidationError as exc:
            where = [".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in exc.errors()]
            problems.append({"line": number, "error": "; ".join(where)[:500]})
        except (ValueError, RecursionError) as exc:
            problems.append({"line": number, "error": str(exc)[:500]})
    return cases, problems


def _settings(request: Mapping[str, Any]) -> dict[str, Any]:
    """A request's settings: its arguments, with those sent in ``extra_body`` (as a test run
    or a replay sends them: a replay's replay, or a set made from a run's calls, had lost
    its tools and temperature). An argument given both ways is the argument's."""
    settings = {k: v for k, v in request.items() if k not in _NOT_SETTINGS}
    extra = request.get("extra_body")
    if isinstance(extra, Mapping):
        for name, value in extra.items():
            if name not in _NOT_SETTINGS:
                settings.setdefault(name, value)
    return settings


# The calls a replay reruns as they were made: a Responses API call (its input, its
# instructions) had been sent to the completions endpoint as a prompt.
REPLAYED = ("chat", "completion")


def replay_refused(event: Mapping[str, Any]) -> str:
    """Why ``event`` cannot be replayed (its ``api`` is not in ``REPLAYED``)."""
    return f"replay reruns chat and completion calls; this event is a {event.get('api')} call"


def case_from_event(
    event: Mapping[str, Any],
    rating: float | None = None,
    better: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """The case of a stored event (as the API answers it), expecting what its feedback says
    (``rating``, ``better``; else the newest rating and the newest better response of its
    ``feedback``, oldest first: feedback may send either alone)."""
    if rating is None and better is None:
        for given in reversed(event.get("feedback") or []):
            rating = given.get("rating") if rating is None else rating
            better = given.get("better_response") if better is None else better
    request = event.get("request") or {}
    template = event.get("template_chat")
    kind, expected = expectation(better, rating, event.get("output_text"), threshold)
    return {
        "event_id": event.get("id"),
        "prompt_template_name": event.get("prompt_template_name"),
        "template_revision": event.get("template_revision"),
        "template": template if template is not None else event.get("template_text"),
        "template_params": event.get("template_params") or {},
        "input": request.get("messages", request.get("prompt", request.get("input"))),
        "model": event.get("model"),
        "settings": _settings(request),
        "rating": rating,
        "original_latency_ms": event.get("latency_ms"),
        "original_cost_usd": event.get("cost_usd"),
        "original_output": event.get("output_text"),
        "expected": expected,
        "expected_kind": kind,
        "tags": [],
    }
