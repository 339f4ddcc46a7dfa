"""Each evaluator scores from 0 to 1 with a reason; the model-backed ones (embeddings, judge)
call the loopback fake provider through a real ``llmtap.AsyncClient`` and are recorded."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import llmtap
from llmtap.evals.cases import cases_from_jsonl, expectation
from llmtap.evals.evaluators import (
    REGEX_SECONDS,
    SCHEMA_SECONDS,
    Context,
    Score,
    normalize,
    parse_evaluator,
)
from llmtap.fake_provider import FakeProvider

from .conftest import Project, tap_config


def _case(
    expected: str | None = "42", kind: str = "better", original: str = "old"
) -> dict[str, Any]:
    return {
        "id": 1,
        "input": "q",
        "expected": expected,
        "expected_kind": kind,
        "original_output": original,
    }


def score(
    spec: str, output: str, case: dict[str, Any] | None = None, ctx: Context | None = None
) -> Score:
    evaluator = parse_evaluator(spec)
    return asyncio.run(evaluator(ctx or Context(), case or _case(), output))


def reject(output: str, case: dict[str, Any]) -> dict[str, Any]:
    """A user's evaluator (``python:tests.test_evaluators:reject``)."""
    return {"score": 0.0 if "bad" in output else 1.0, "reason": f"checked case {case['id']}"}


@pytest.mark.parametrize(
    ("spec", "output", "expected", "wanted"),
    [
        ("exact", "42", "42", 1.0),
        ("exact", "42 ", "42", 0.0),
        ("normalized", "  «Paris.»", "paris", 0.0),
        ("normalized", ' "PARIS." ', "paris", 1.0),
        ("normalised", "\uff30\uff41\uff52\uff49\uff53!", "paris", 1.0),  # NFKC: full-width
        ("contains", "The answer is 42, surely", "42", 1.0),
        ("contains", "forty-two", "42", 0.0),
        ("regex:^\\d+$", "123", None, 1.0),
        ("regex:^\\d+$", "12a", None, 0.0),
        ("json", '{"a": [1, 2]}', None, 1.0),
        ("json", "{'a': 1}", None, 0.0),
        ('json_schema:{"type": "object", "required": ["a"]}', '{"a": 1}', None, 1.0),
        ('json_schema:{"type": "object", "required": ["a"]}', '{"b": 1}', None, 0.0),
        ("numeric", "about 3.14159 I think", "3.1416", 1.0),
        ("numeric:0.1", "105", "100", 1.0),
        ("numeric", "150", "100", 0.5),
        ("numeric", "no number", "100", 0.0),
        ("numeric", "1e999", "1e999", 1.0),  # past a float: the same spelling
        ("numeric", "1e999", "2e999", 0.0),
        ("json", "[" * 100_000 + "]" * 100_000, None, 0.0),  # deeper than json reads
        (
            'json_schema:{"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}},'
            ' "$ref": "#/$defs/n"}',
            "[[[]], []]",
            None,
            1.0,
        ),  # a local, recursive reference
        ("python:tests.test_evaluators:reject", "fine", None, 1.0),
        ("python:tests.test_evaluators:reject", "bad", None, 0.0),
    ],
)
def test_each_evaluator_scores(spec: str, output: str, expected: str | None, wanted: float) -> None:
    got = score(spec, output, _case(expected))
    assert got.score == pytest.approx(wanted, abs=1e-3), got
    assert got.passed is (wanted >= parse_evaluator(spec).threshold)
    assert got.reason


def test_a_pattern_that_backtracks_stops_at_its_limit_and_leaves_the_loop_free() -> None:
    """A stored pattern may backtrack for hours on some output: the search stops after
    ``REGEX_SECONDS`` with that case's error, and the event loop (the run's other cases)
    goes on meanwhile."""
    evaluator = parse_evaluator("regex:^(a|a)*$")
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def main() -> tuple[Score, float]:
        ticker = asyncio.create_task(ticking())
        started = time.perf_counter()
        got = await evaluator(Context(), _case(), "a" * 40 + "!")
        elapsed = time.perf_counter() - started
        ticker.cancel()
        return got, elapsed

    got, elapsed = asyncio.run(main())
    assert got.score is None and got.passed is False
    assert got.error and "searched for more than 1 s" in got.error, got
    assert 0.9 * REGEX_SECONDS <= elapsed < REGEX_SECONDS + 2  # its clock is not ours
    assert ticks >= 50, ticks  # the loop ran on: ~100 ticks of 10 ms in the second
    # The same pattern on an output it matches at once is an ordinary pass.
    assert score("regex:^(a|a)*$", "aaaa").passed is True


def test_a_schema_that_doubles_at_each_level_stops_at_its_limit() -> None:
    """Alternatives that point twice at the next level double the check's work per level: a
    stored schema of a few hundred bytes would check one output for years. The check stops
    after ``SCHEMA_SECONDS`` (that case's error), off the event loop."""
    levels = 40
    defs = {
        f"l{i}": {"anyOf": [{"$ref": f"#/$defs/l{i + 1}"}, {"$ref": f"#/$defs/l{i + 1}"}]}
        for i in range(levels)
    }
    defs[f"l{levels}"] = {"type": "string"}
    spec = "json_schema:" + json.dumps({"$defs": defs, "$ref": "#/$defs/l0"})
    started = time.perf_counter()
    got = score(spec, "1")
    elapsed = time.perf_counter() - started
    assert got.score is None and got.error and "more than 1 s" in got.error, got
    assert elapsed < SCHEMA_SECONDS + 2
    assert score(spec, '"a string"').passed is True  # the first branch: at once


def test_a_reference_to_nothing_in_the_schema_is_that_case_s_error() -> None:
    got = score('json_schema:{"$ref": "#/$defs/missing"}', "1")
    assert got.score is None and got.error and "$defs/missing" in got.error, got


def test_what_a_case_expects_decides_what_passes() -> None:
    # Rated badly with no better answer: anything but the original passes.
    assert score("normalized", "new", _case(None, "differ", "old")).passed is True
    assert score("normalized", "Old.", _case(None, "differ", "old")).passed is False
    # Nothing expected: a comparing evaluator does not apply; a checking one does.
    skipped = score("normalized", "x", _case(None, "none"))
    assert skipped.score is None and skipped.passed is None
    assert score("json", "[]", _case(None, "none")).passed is True
    assert expectation("better", 0.1, "out", 0.7) == ("better", "better")
    assert expectation(None, 0.7, "out", 0.7) == ("output", "out")
    assert expectation(None, 0.69, "out", 0.7) == ("differ", None)
    assert expectation(None, None, "out", 0.7) == ("none", None)
    assert normalize("  Hello,   World!! ") == "hello, world"


def test_the_calls_an_evaluator_would_make_are_what_it_sends() -> None:
    """What a run's estimate counts: a judge's whole prompt to the judge's model, both texts
    to the embeddings model; nothing for an evaluator that scores alone, or that would skip
    the case (nothing to compare with)."""
    ctx = Context(judge_model="the-judge", embeddings_model="the-embedder")
    case = _case("the expected answer")
    ((model, sent, answer),) = parse_evaluator("judge:Is it kind?").calls(ctx, case, "my answer")
    assert model == "the-judge" and answer > 0
    assert all(part in sent for part in ("Is it kind?", "the expected answer", "my answer"))
    ((model, sent, answer),) = parse_evaluator("embeddings").calls(ctx, case, "my answer")
    assert (model, sent, answer) == ("the-embedder", "my answerthe expected answer", 0)
    assert parse_evaluator("embeddings:e-3").calls(ctx, case, "x")[0][0] == "e-3"
    assert parse_evaluator("embeddings").calls(ctx, _case(None, "none"), "x") == []
    assert parse_evaluator("contains").calls(ctx, case, "x") == []
    assert [parse_evaluator(s).paid for s in ("judge", "embeddings", "contains")] == [
        True,
        True,
        False,
    ]


def test_bad_specs_are_named(tmp_path: Path) -> None:
    for spec, words in [
        ("fuzzy", "unknown evaluator"),
        ("regex", "needs an argument"),
        ("regex:(", "regex:("),
        ("json_schema:{nope", "json_schema"),
        ('json_schema:{"type": 12}', "json_schema"),
        ("numeric:-1", "tolerance"),
        ('json_schema:{"$ref": "http://127.0.0.1:9/x.json"}', "stay inside it"),
        ('json_schema:{"items": {"$ref": "file:///etc/passwd"}}', "stay inside it"),
        ('json_schema:{"$id": "http://example.com/s", "$ref": "other.json"}', "stay inside it"),
        ("python:nowhere_at_all:f", "nowhere_at_all"),
        ("python:f", "python:MODULE:FUNCTION"),
    ]:
        with pytest.raises(ValueError, match=re.escape(words)):
            parse_evaluator(spec)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "array"}))
    assert score(f"json_schema:{schema}", "[1]").passed is True


def test_a_user_function_that_raises_is_that_case_s_error() -> None:
    got = score("python:json:loads", "not json")  # json.loads("not json", case) raises
    assert got.score is None and got.passed is False and got.error


def test_jsonl_lines_that_are_not_cases_are_named() -> None:
    lines = [
        json.dumps({"output": "⚽", "rating": 0.9, "template_params": {"sport": "soccer"}}),
        "",
        "not json",
        json.dumps({"rating": 7}),
        json.dumps([1, 2]),
        json.dumps({"tags": ["x" * 101]}),
    ]
    cases, problems = cases_from_jsonl(lines)
    assert [c["expected_kind"] for c in cases] == ["output"]
    assert [p["line"] for p in problems] == [3, 4, 5, 6]
    assert "rating" in problems[1]["error"] and "100 characters" in problems[3]["error"]


def test_embeddings_and_judge_call_the_provider_and_are_recorded(
    provider: FakeProvider, project: Project
) -> None:
    tag = uuid.uuid4().hex[:8]
    provider.script({f"Rubric: polite {tag}": '{"score": 0.8, "reason": "polite enough"}'})

    async def scores() -> tuple[Score, Score, Score, Score]:
        client = llmtap.AsyncClient(
            api_key="sk-fake", base_url=provider.base_url, llmtap=tap_config(project)
        )
        costs: list[str] = []
        ctx = Context(client=client, tags={"check": tag}, on_usage=lambda m, u: costs.append(m))
        try:
            same = await parse_evaluator("embeddings")(ctx, _case("hello there"), "hello there")
            other = await parse_evaluator("embeddings")(ctx, _case("hello there"), "a cat")
            judged = await parse_evaluator(f"judge:polite {tag}")(ctx, _case(), "Thank you!")
            nonsense = await parse_evaluator("judge:terse")(ctx, _case(), "ok")
            await client.aflush()
        finally:
            await client.aclose()
        assert costs == ["text-embedding-3-small"] * 2 + ["gpt-4o-mini"] * 2
        return same, other, judged, nonsense

    same, other, judged, nonsense = asyncio.run(scores())
    assert same.score == pytest.approx(1.0) and same.passed
    assert other.score is not None and other.score < 1.0
    assert judged.score == 0.8 and judged.passed and judged.reason == "polite enough"
    assert judged.detail and f"Rubric: polite {tag}" in judged.detail["prompt"]
    assert (
        nonsense.score is None and nonsense.passed is False and "not a verdict" in nonsense.reason
    )
    recorded = project.events(**{"attributes.check": tag})
    names = sorted(e["prompt_template_name"] for e in recorded)
    assert names == ["llmtap-eval-embeddings"] * 2 + ["llmtap-eval-judge"] * 2
