"""``llmtap testsets`` (make, import, list, delete test sets) and ``llmtap test`` (run one
against a template revision or model, for CI): through the server's API.

``llmtap test`` calls the model with the caller's own provider settings (``OPENAI_API_KEY``,
``OPENAI_BASE_URL``) and records each call with the llmtap key, which needs the ``ingest``,
``read`` and ``admin`` scopes. It exits 1 when a threshold is missed or the cost cap stopped
the run, 2 on a usage error.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import click

from ..evals.api import TestsApi
from ..evals.cases import DEFAULT_THRESHOLD, MAX_CASES, cases_from_jsonl, jsonl_lines
from ..evals.results import missed_thresholds
from ..evals.runner import Runner, RunOptions, sampling_settings, uncapped
from ._options import api_key_option, url_option
from ._output import private_output, read_text, table, writable
from ._query import api_errors_reported, checked_key

__all__ = ["revision_template", "template_file", "test", "testsets"]


def _api(url: str, api_key: str | None) -> TestsApi:
    return TestsApi(url, checked_key(url, api_key))


@click.group()
def testsets() -> None:
    """Test sets: cases made from production calls and their feedback."""


_evaluator_option = click.option(
    "--evaluator",
    "evaluators",
    multiple=True,
    metavar="SPEC",
    help="An evaluator (exact, normalized, contains, regex:P, json, json_schema:S, numeric, "
    "embeddings, judge[:RUBRIC], python:MOD:FN); repeatable. Default: normalized.",
)


@testsets.command("create")
@url_option
@api_key_option
@click.argument("name")
@click.option("--from-feedback", is_flag=True, required=True, help="A case per rated call.")
@click.option("--template", help="Only the calls of this prompt template.")
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=DEFAULT_THRESHOLD,
    show_default=True,
    help="A rating at or above it expects the original output again.",
)
@_evaluator_option
@api_errors_reported
def create(
    url: str,
    api_key: str | None,
    name: str,
    from_feedback: bool,
    template: str | None,
    threshold: float,
    evaluators: tuple[str, ...],
) -> None:
    """Make test set NAME from the project's feedback."""
    with _api(url, api_key) as api:
        made = api.create_testset(
            name,
            source="feedback",
            template=template,
            threshold=threshold,
            evaluators=list(evaluators) or None,
        )
    _say_added(made)


def _say_added(answer: dict[str, Any]) -> None:
    dupes = answer.get("duplicates") or []
    click.echo(
        f"added {answer['added']} case(s)"
        + (f", {len(dupes)} duplicate(s) refused" if dupes else "")
    )


@testsets.command("import")
@url_option
@api_key_option
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_evaluator_option
@api_errors_reported
def import_(
    url: str, api_key: str | None, name: str, file: Path, evaluators: tuple[str, ...]
) -> None:
    """Add the cases of FILE (JSON lines: the dashboard's feedback download, say) to test set
    NAME, made if missing."""
    from ..api import ApiError

    # Before the set is made: a file that cannot be read, or a line that is no case, makes
    # nothing (each bad line named, as the server would).
    lines = jsonl_lines(read_text(file))
    _, problems = cases_from_jsonl(lines)
    if problems:
        shown = "; ".join(f"line {p['line']}: {p['error']}" for p in problems[:5])
        raise click.ClickException(f"{len(problems)} line(s) are not test cases: {shown}")
    with _api(url, api_key) as api:
        made = None
        try:
            testset_id = api.testset_id(name)
        except ApiError as exc:
            if exc.status != 404:
                raise
            made = api.create_testset(name, source="cases", evaluators=list(evaluators) or None)
            testset_id = made["testset"]["id"]
        added: dict[str, Any] = {"added": 0, "duplicates": []}
        cases = [line for line in lines if line.strip()]
        try:
            for at in range(0, len(cases), MAX_CASES):  # the most one request takes
                part = "".join(line + "\n" for line in cases[at : at + MAX_CASES])
                answer = api.import_jsonl(testset_id, part)
                added["added"] += answer["added"]
                added["duplicates"] += answer.get("duplicates") or []
        except Exception:
            if made is not None and not added["added"]:
                api.delete_testset(testset_id)  # made for this import, which added nothing
            raise
        _say_added(added)


@testsets.command("list")
@url_option
@api_key_option
@api_errors_reported
def list_(url: str, api_key: str | None) -> None:
    """The project's test sets."""
    with _api(url, api_key) as api:
        found = api.testsets()
    rows = [
        [
            str(s["id"]),
            s["name"],
            str(s["version"]),
            str(s["case_count"]),
            ",".join(s["evaluators"]),
        ]
        for s in found
    ]
    click.echo(table(rows, ["id", "name", "version", "cases", "evaluators"]))


@testsets.command("delete")
@url_option
@api_key_option
@click.argument("name")
@api_errors_reported
def delete(url: str, api_key: str | None, name: str) -> None:
    """Delete test set NAME with its cases and runs."""
    with _api(url, api_key) as api:
        api.delete_testset(api.testset_id(name))
    click.echo(f"deleted {name}")


def template_file(path: Path) -> list[dict[str, Any]] | str:
    """A JSON list of chat messages, or else the file's text as a text template."""
    text = read_text(path)
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return text
    if isinstance(parsed, list) and all(isinstance(m, dict) for m in parsed):
        return parsed
    raise click.BadParameter("a JSON template is a list of chat messages", param_hint="--template")


def revision_template(api: TestsApi, revision: str) -> list[dict[str, Any]] | str:
    """The template of the revision ``revision`` (its id, or the start of it), found by the
    server (it had listed 10,000 names and looked through them: an older one was not found)."""
    prefix = revision.strip().lower()
    if not prefix or any(c not in "0123456789abcdef" for c in prefix):
        raise click.BadParameter(f"not a revision: {revision!r}", param_hint="--revision")
    found = [r for t in api.templates(revision=prefix) for r in t["revisions"]]
    if not found:
        raise click.BadParameter(f"no template revision {revision!r}", param_hint="--revision")
    if len({r["revision"] for r in found}) > 1:
        raise click.BadParameter(
            f"{revision!r} starts several revisions: give more of it", param_hint="--revision"
        )
    return found[0]["template"]  # type: ignore[no-any-return]


@click.command()
@url_option
@api_key_option
@click.argument("set_name", metavar="SET")
@click.option(
    "--template",
    "template_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A new template: a JSON list of chat messages with {param} placeholders, or plain text.",
)
@click.option("--revision", help="An existing template revision (its id, or a prefix).")
@click.option("--model", help="The model to call (default: each case's own).")
@_evaluator_option
@click.option("--min-pass", type=click.FloatRange(0, 1), help="Exit 1 below this pass rate.")
@click.option("--max-regressions", type=click.IntRange(0), help="Exit 1 above this many.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option("--max-cost", type=click.FloatRange(0), help="USD; the run stops before passing it.")
@click.option("--judge-model", help="The judge evaluator's model (default: --model).")
@click.option(
    "--timeout",
    type=click.FloatRange(0.1),
    default=60.0,
    show_default=True,
    help="Seconds per call.",
)
@click.option(
    "--setting",
    "settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="A call setting over each case's own (temperature=0, max_tokens=200; VALUE as JSON,"
    " else text); repeatable.",
)
@click.option("--resume", "resume", metavar="RUN", help="Resume an interrupted run.")
@click.option(
    "--baseline", metavar="RUN", help="Compare with this run (default: the original outputs)."
)
@api_errors_reported
def test(
    url: str,
    api_key: str | None,
    set_name: str,
    template_path: Path | None,
    revision: str | None,
    model: str | None,
    evaluators: tuple[str, ...],
    min_pass: float | None,
    max_regressions: int | None,
    junit: Path | None,
    concurrency: int,
    max_cost: float | None,
    judge_model: str | None,
    timeout: float,
    settings: tuple[str, ...],
    resume: str | None,
    baseline: str | None,
) -> None:
    """Run test SET through a template (--template FILE or --revision REV) and a model."""
    from ..evals.evaluators import parse_evaluator

    if template_path and revision:
        raise click.UsageError("give --template or --revision, not both")
    for spec in evaluators:
        try:
            parse_evaluator(spec)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--evaluator") from None
    if junit:
        writable(junit)  # before the run: a path that cannot be written fails for free
    with _api(url, api_key) as api:
        template = template_file(template_path) if template_path else None
        if revision:
            template = revision_template(api, revision)
        options = RunOptions(
            model=model,
            template=template,
            template_label=str(template_path) if template_path else revision,
            evaluators=list(evaluators) or None,
            concurrency=concurrency,
            max_cost_usd=max_cost,
            settings=_settings(settings),
            judge_model=judge_model,
            timeout=timeout,
        )
        runner = Runner(api, {}, {"api_key": api_key, "url": url})
        testset = api.testset(api.testset_id(set_name))
        if resume:
            stored = api.run(resume)
            if stored["testset_id"] != testset["id"]:
                raise click.UsageError(f"run {resume} is not a run of the set {set_name!r}")
            options = _resumed(options, stored["config"])
        try:
            runner.evaluators(testset, options)
        except ValueError as exc:
            raise click.UsageError(f"the set's evaluators: {exc}") from None
        calls = runner.plan(testset, options)
        priced = [c.estimate for c in calls if c.estimate is not None]
        unpriced = sum(1 for c in calls if c.estimate is None and c.error is None)
        estimate = f"${sum(priced):.6f}" if priced else "unknown"
        click.echo(
            f"{testset['name']}: {len(calls)} case(s), estimated cost {estimate}"
            + (f" ({unpriced} case(s) of a model without a price)" if unpriced else ""),
            err=True,
        )
        if uncapped(options, calls):  # the cap given, or the resumed run's
            raise click.ClickException("--max-cost needs a price for every model called")
        _provider_is_set()
        run_id = resume or runner.start(testset, options, calls)
        click.echo(f"run {run_id}", err=True)
        with click.progressbar(length=len(calls), label="testing", file=sys.stderr) as bar:
            outcome = runner.run(
                testset,
                options,
                calls,
                run_id,
                progress=lambda *_: bar.update(1),
                resume=resume is not None,
            )
        view = api.run_view(run_id, baseline) if baseline else outcome
    _report(testset, view, outcome["status"])
    if junit:
        # Written whole once the run is over (a run that misses its gate too): a run that
        # fails leaves what the file held before.
        with private_output(junit) as part:
            part.write_bytes(junit_xml(testset, view))
    missed = missed_thresholds(view["summary"], outcome["status"], min_pass, max_regressions)
    if missed:
        raise click.ClickException("; ".join(missed))


def _resumed(given: RunOptions, config: dict[str, Any]) -> RunOptions:
    """The options of a resumed run: the model, template, settings and evaluators it started
    with (a usage error when the command line gives others: the run would mix two), its cost
    cap unless given anew (a run stopped at its cap resumes under a higher one)."""
    kept = {
        "--model": (given.model, config.get("model")),
        "--template or --revision": (given.template, config.get("template")),
        "--setting": (given.settings or None, config.get("settings") or None),
        "--evaluator": (given.evaluators, config.get("evaluators")),
    }
    for flag, (mine, its) in kept.items():
        if mine is not None and mine != its:
            raise click.UsageError(
                f"a resumed run keeps its own {flag}: give it as it was, or none"
            )
    cap = given.max_cost_usd
    return replace(
        given,
        model=config.get("model"),
        template=config.get("template"),
        template_label=config.get("template_label"),
        # Given again as they were: the caller's own; else from the server's record.
        settings=given.settings or sampling_settings(config.get("settings")),
        stored_evaluators=None if given.evaluators else config.get("evaluators"),
        max_cost_usd=config.get("max_cost_usd") if cap is None else cap,
    )


def _settings(given: tuple[str, ...]) -> dict[str, Any]:
    """``--setting NAME=VALUE`` options as the request's fields: a VALUE that is JSON as its
    value (``0.2``, ``true``, ``["END"]``), any other as text."""
    out: dict[str, Any] = {}
    for item in given:
        name, eq, raw = item.partition("=")
        if not eq or not name.strip():
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--setting")
        try:
            out[name.strip()] = json.loads(raw)
        except (ValueError, RecursionError):
            out[name.strip()] = raw
    return out


def _provider_is_set() -> None:
    """A usage error, before a run starts, when the caller's provider settings are missing."""
    import openai

    try:
        openai.AsyncOpenAI()
    except openai.OpenAIError as exc:
        raise click.UsageError(f"the model provider: {exc} (OPENAI_API_KEY)") from None


def _score_text(result: dict[str, Any] | None) -> str:
    if not result:
        return ""
    return " ".join(
        f"{name.split(':')[0]}={s['score']:.2f}"
        if s.get("score") is not None
        else f"{name.split(':')[0]}=-"
        for name, s in (result.get("scores") or {}).items()
    )


def _short(text: Any, width: int = 30) -> str:
    return " ".join(str(text or "").split())[:width]


def _expected(case: dict[str, Any]) -> str:
    if case.get("expected_kind") == "differ":
        return "(must differ)"
    return _short(case.get("expected"))


def _report(testset: dict[str, Any], view: dict[str, Any], status: str) -> None:
    rows = []
    for row in view["cases"]:
        new = row["new"] or {}
        usd, latency = new.get("cost_usd"), new.get("latency_ms")
        rows.append(
            [
                str(row["case"]["id"]),
                row["change"],
                _short(json.dumps(row["case"].get("template_params") or {}, ensure_ascii=False)),
                _expected(row["case"]),
                _short(row["old"] and row["old"].get("output")),
                _short(new.get("output") or new.get("error")),
                _score_text(row["new"]),
                "-" if latency is None else f"{latency:.0f}",
                "-" if usd is None else f"{usd:.6f}",
            ]
        )
    headers = ["case", "change", "parameters", "expected", "old output", "new output", "scores"]
    click.echo(table(rows, [*headers, "ms", "USD"]))
    new, old = view["summary"], view["baseline"]

    def rate(s: dict[str, Any]) -> str:
        return "-" if s.get("pass_rate") is None else f"{s['pass_rate']:.1%}"

    def ms(s: dict[str, Any], q: str) -> str:
        value = (s.get("latency_ms") or {}).get(q)
        return "-" if value is None else f"{value:.0f} ms"

    cost = "-" if new.get("cost_usd") is None else f"${new['cost_usd']:.6f}"
    baseline = f"run {old['run']}" if old.get("run") else "original outputs"
    click.echo(
        f"\n{status}: pass rate {rate(new)} (baseline, {baseline}: {rate(old)}), "
        f"{new['passed']}/{new['total']} passed, {new.get('regressions', 0)} regression(s), "
        f"{new.get('fixed', 0)} fixed, {new['errors']} error(s); cost {cost}; "
        f"latency p50 {ms(new, 'p50')} p95 {ms(new, 'p95')} "
        f"(baseline p50 {ms(old, 'p50')} p95 {ms(old, 'p95')})"
    )
    means = ", ".join(f"{k} {v:.2f}" for k, v in new["mean_scores"].items())
    if means:
        click.echo(f"mean scores: {means}")


# Characters XML 1.0 cannot hold (control characters, lone surrogates): a model's output may
# have them, and a CI system must still read the file.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def junit_xml(testset: dict[str, Any], view: dict[str, Any]) -> bytes:
    """The run as JUnit XML: a test case per case, failed when it fails, an error when it
    could not run, skipped when the run stopped before it."""
    summary = view["summary"]
    suite = ElementTree.Element(
        "testsuite",
        name=_xml(f"llmtap.{testset['name']}"),
        tests=str(summary["total"]),
        failures=str(sum(1 for r in view["cases"] if r["change"] in ("regression", "failing"))),
        errors=str(sum(1 for r in view["cases"] if r["change"] == "error")),
        skipped=str(sum(1 for r in view["cases"] if r["change"] == "not run")),
    )
    for row in view["cases"]:
        case, new = row["case"], row["new"] or {}
        template = case.get("prompt_template_name")
        name = _xml(f"case {case['id']}" + (f" ({template})" if template else ""))
        element = ElementTree.SubElement(
            suite,
            "testcase",
            classname=_xml(f"llmtap.{testset['name']}"),
            name=name,
            time=f"{(new.get('latency_ms') or 0) / 1000:.3f}",
        )
        detail = _xml(
            f"expected ({case.get('expected_kind')}): {case.get('expected')}\n"
            f"original: {case.get('original_output')}\nnew: {new.get('output')}\n"
            f"scores: {json.dumps(new.get('scores'), ensure_ascii=False)}"
        )
        if row["change"] == "not run":
            ElementTree.SubElement(element, "skipped", message="not run (cost cap)")
        elif new.get("error") and new.get("output") is None:
            ElementTree.SubElement(element, "error", message=_xml(new["error"][:500])).text = detail
        elif row["change"] in ("regression", "failing", "error"):
            message = "regression: passed before" if row["change"] == "regression" else "failed"
            ElementTree.SubElement(element, "failure", message=message).text = detail
        if row["change"] != "not run":
            ElementTree.SubElement(element, "system-out").text = detail
    root = ElementTree.Element("testsuites")
    root.append(suite)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
