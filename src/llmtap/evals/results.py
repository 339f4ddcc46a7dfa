"""A run against its baseline: per case old against new, per run pass rate, mean scores,
cost, latency p50/p95; regressions (passed before, fail now) first.

The baseline is the original production outputs (``baseline_passed``: scored by the runner
with the run's evaluators that cost nothing, and, for a judge or embeddings, as production
feedback rated them), or another run of the same set. Pure: the API, the pages
and the CLI all call ``compare``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["compare", "missed_thresholds", "percentile", "summarize"]


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by nearest rank; None of nothing."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def summarize(
    results: list[Mapping[str, Any]], total: int, passed_key: str = "passed"
) -> dict[str, Any]:
    """Pass rate (of the ``total`` cases: a case not run counts as not passed), mean score per
    evaluator, errors, cost and latency of ``results``."""
    scores: dict[str, list[float]] = {}
    for result in results:
        for name, score in (result.get("scores") or {}).items():
            if isinstance(score, Mapping) and score.get("score") is not None:
                scores.setdefault(name, []).append(float(score["score"]))
    latencies = [float(r["latency_ms"]) for r in results if r.get("latency_ms") is not None]
    costs = [float(r["cost_usd"]) for r in results if r.get("cost_usd") is not None]
    passed = sum(1 for r in results if r.get(passed_key))
    return {
        "total": total,
        "done": len(results),
        "passed": passed,
        "errors": sum(1 for r in results if r.get("error")),
        "pass_rate": passed / total if total else None,
        "mean_scores": {name: statistics.fmean(v) for name, v in sorted(scores.items())},
        "cost_usd": sum(costs) if costs else None,
        "latency_ms": {"p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95)},
    }


def _original(case: Mapping[str, Any], result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The production call as a result: the baseline when no other run is given."""
    return {
        "output": case.get("original_output"),
        "passed": None if result is None else result.get("baseline_passed"),
        "latency_ms": case.get("original_latency_ms"),
        "cost_usd": case.get("original_cost_usd"),
        "scores": {},
    }


def compare(
    testset: Mapping[str, Any],
    run: Mapping[str, Any],
    baseline: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``run``'s cases side by side with ``baseline`` (another run; None: the original
    outputs): ``{"summary", "baseline_summary", "cases"}``, the cases ordered regressions
    first, then failures, then the rest; each ``{"case", "new", "old", "change"}`` where
    change is ``regression``, ``fixed``, ``failing``, ``passing``, ``error`` or ``not run``."""
    new = {r["case_id"]: r for r in run.get("results") or []}
    old = {r["case_id"]: r for r in (baseline or {}).get("results") or []}
    cases = testset.get("cases") or []
    rows = []
    for case in cases:
        result = new.get(case["id"])
        before = old.get(case["id"]) if baseline is not None else _original(case, result)
        passed_before = bool(before and before.get("passed"))
        if result is None:
            change = "not run"
        elif result.get("error"):
            change = "regression" if passed_before else "error"
        elif result.get("passed"):
            change = "passing" if passed_before else "fixed"
        else:
            change = "regression" if passed_before else "failing"
        rows.append({"case": case, "new": result, "old": before, "change": change})
    order = ["regression", "error", "failing", "not run", "fixed", "passing"]
    rows.sort(key=lambda row: order.index(row["change"]))
    if baseline is not None:
        baseline_summary = summarize(list(old.values()), len(cases))
    else:
        originals = [row["old"] for row in rows if row["new"] is not None]
        baseline_summary = summarize(originals, len(cases))
        baseline_summary["pass_rate"] = (
            sum(1 for r in originals if r.get("passed")) / len(cases) if cases else None
        )
    summary = summarize(list(new.values()), len(cases))
    counts = {change: sum(1 for r in rows if r["change"] == change) for change in order}
    summary.update(regressions=counts["regression"], fixed=counts["fixed"])
    return {
        "summary": summary,
        "baseline": {"run": baseline.get("id"), **baseline_summary}
        if baseline is not None
        else {"run": None, **baseline_summary},
        "changes": counts,
        "cases": rows,
    }


def missed_thresholds(
    summary: Mapping[str, Any], status: str, min_pass: float | None, max_regressions: int | None
) -> list[str]:
    """Why a run fails a release gate (``llmtap test``, the pytest plugin): stopped at its
    cost cap, a pass rate under ``min_pass``, more regressions than ``max_regressions``."""
    missed = []
    if status == "stopped":
        missed.append("the run stopped at its cost cap (--max-cost)")
    rate = summary.get("pass_rate") or 0.0
    if min_pass is not None and rate < min_pass:
        missed.append(f"pass rate {rate:.1%} is under --min-pass {min_pass:.1%}")
    regressions = summary.get("regressions", 0)
    if max_regressions is not None and regressions > max_regressions:
        missed.append(f"{regressions} regression(s), more than --max-regressions {max_regressions}")
    return missed
