"""A pytest plugin: gate a release on a llmtap test set in your own test suite.

Registered as the ``pytest11`` entry point ``llmtap``, so installing llmtap makes it
available. It gives the fixture ``llmtap_testset``; a test calls it with a set's name and a
template revision (and a model, evaluators, thresholds), and fails with a per-case report when
the run misses a threshold::

    def test_the_new_prompt_does_not_regress(llmtap_testset):
        llmtap_testset("emoji", template_file="prompts/emoji.json", model="gpt-4o-mini",
                       min_pass=0.9, max_regressions=0)

The llmtap server and key come from ``--llmtap-url`` and ``--llmtap-api-key`` (else
``LLMTAP_URL`` and ``LLMTAP_API_KEY``); the model provider from the caller's own
``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``, as for ``llmtap test``. Without a server or key the
test fails (a skipped gate would let a release through). Importing this module is cheap: the
runner and the SDK are imported when the fixture is first called.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

__all__ = ["case_report"]

_SHOWN = 20  # cases detailed in a failure's report; the rest are counted


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmtap", "llmtap prompt tests")
    group.addoption("--llmtap-url", help="The llmtap server (default: LLMTAP_URL).")
    group.addoption("--llmtap-api-key", help="Its API key (default: LLMTAP_API_KEY).")


def _short(text: Any, width: int = 80) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def case_report(view: dict[str, Any], limit: int = _SHOWN) -> str:
    """The cases of a run's view that did not pass (regressions first), a few lines each:
    what was expected, what came back, each evaluator's score and reason."""
    lines = []
    bad = [row for row in view["cases"] if row["change"] in ("regression", "error", "failing")]
    for row in bad[:limit]:
        case, new = row["case"], row["new"] or {}
        template = case.get("prompt_template_name")
        lines.append(
            f"case {case['id']}" + (f" ({template})" if template else "") + f": {row['change']}"
        )
        lines.append(f"  parameters: {_short(case.get('template_params'))}")
        if case.get("expected") is not None:
            lines.append(f"  expected ({case.get('expected_kind')}): {_short(case['expected'])}")
        lines.append(f"  original: {_short(case.get('original_output'))}")
        lines.append(f"  new: {_short(new.get('output'))}")
        for name, score in (new.get("scores") or {}).items():
            value = "-" if score.get("score") is None else f"{score['score']:.2f}"
            lines.append(f"  {_short(name, 40)}: {value} {_short(score.get('reason') or '')}")
        if new.get("error"):
            lines.append(f"  error: {_short(new['error'], 200)}")
    if len(bad) > limit:
        lines.append(f"... and {len(bad) - limit} more case(s) that did not pass")
    return "\n".join(lines)


def _summary(testset: dict[str, Any], run_id: str, view: dict[str, Any]) -> str:
    new, old = view["summary"], view["baseline"]

    def rate(s: dict[str, Any]) -> str:
        return "-" if s.get("pass_rate") is None else f"{s['pass_rate']:.1%}"

    return (
        f"llmtap test set {testset['name']!r}, run {run_id}: pass rate {rate(new)} "
        f"(baseline {rate(old)}), {new['passed']}/{new['total']} passed, "
        f"{new.get('regressions', 0)} regression(s), {new['errors']} error(s)"
    )


@pytest.fixture
def llmtap_testset(request: pytest.FixtureRequest) -> Callable[..., dict[str, Any]]:
    """Run a test set and fail the test when it misses a threshold; see the module's help.

    Call it as ``llmtap_testset(name, *, template=None, template_file=None, revision=None,
    model=None, evaluators=None, min_pass=None, max_regressions=0, concurrency=8,
    max_cost=None, judge_model=None, timeout=60.0)``: ``template`` a list of chat messages
    or a text template, ``template_file`` a file as ``llmtap test --template`` takes it,
    ``revision`` a stored revision (or a prefix of its id). It returns the run's view
    (``run_id``, ``status``, ``summary``, ``baseline``, ``cases``)."""
    config = request.config
    url = config.getoption("llmtap_url") or os.environ.get("LLMTAP_URL")
    api_key = config.getoption("llmtap_api_key") or os.environ.get("LLMTAP_API_KEY")

    def run(
        name: str,
        *,
        template: list[dict[str, Any]] | str | None = None,
        template_file: str | Path | None = None,
        revision: str | None = None,
        model: str | None = None,
        evaluators: list[str] | None = None,
        min_pass: float | None = None,
        max_regressions: int | None = 0,
        concurrency: int = 8,
        max_cost: float | None = None,
        judge_model: str | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        import click

        from .api import ApiError
        from .cli.testsets import revision_template
        from .cli.testsets import template_file as read_template
        from .evals.api import TestsApi
        from .evals.evaluators import parse_evaluator
        from .evals.results import missed_thresholds
        from .evals.runner import Runner, RunOptions, uncapped

        if not url or not api_key:
            pytest.fail(
                "llmtap: no server to run the test set on: give --llmtap-url and "
                "--llmtap-api-key (or LLMTAP_URL and LLMTAP_API_KEY)",
                pytrace=False,
            )
        if sum(x is not None for x in (template, template_file, revision)) > 1:
            pytest.fail("llmtap: give one of template, template_file, revision", pytrace=False)
        for spec in evaluators or []:
            try:
                parse_evaluator(spec)
            except ValueError as exc:
                pytest.fail(f"llmtap: evaluator {spec!r}: {exc}", pytrace=False)
        answered: str | None = None
        try:
            with TestsApi(url, api_key) as api:
                try:
                    if template_file is not None:
                        template = read_template(Path(template_file))
                    elif revision is not None:
                        template = revision_template(api, revision)
                except click.ClickException as exc:
                    pytest.fail(f"llmtap: {exc.format_message()}", pytrace=False)
                options = RunOptions(
                    model=model,
                    template=template,
                    template_label=str(template_file) if template_file else revision,
                    evaluators=evaluators,
                    concurrency=concurrency,
                    max_cost_usd=max_cost,
                    judge_model=judge_model,
                    timeout=timeout,
                )
                runner = Runner(api, {}, {"api_key": api_key, "url": url})
                testset = api.testset(api.testset_id(name))
                refused = None
                try:
                    runner.evaluators(testset, options)
                except ValueError as exc:
                    refused = f"the set's evaluators: {exc}"
                calls = runner.plan(testset, options)
                refused = refused or uncapped(options, calls)
                if refused:
                    pytest.fail(f"llmtap: {refused}", pytrace=False)
                run_id = runner.start(testset, options, calls)
                outcome = runner.run(testset, options, calls, run_id)
        except ApiError as exc:  # no such set, a key without the scope: said, not a traceback
            answered = f"llmtap: the server answered {exc}"
        if answered:  # failed outside the handler: no "during handling" chain in the report
            pytest.fail(answered, pytrace=False)
        summary = _summary(testset, run_id, outcome)
        missed = missed_thresholds(outcome["summary"], outcome["status"], min_pass, max_regressions)
        if missed:
            pytest.fail(f"{summary}\n{'; '.join(missed)}\n\n{case_report(outcome)}", pytrace=False)
        print(summary)  # shown with -s, and in the report of a test that fails later
        return outcome

    return run
