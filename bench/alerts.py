"""Issue 16: one evaluation cycle of 200 alert rules (half of them grouped) and 20 budgets
over the query benchmark's store (``bench/query.py``: a million events over 30 days, 50,000
with ``--quick``), wall time and CPU time per cycle.

The cached store is copied first (the evaluator writes states, history and its lease), then
the rules are stored through the store's contract and the evaluator's own ``run_once`` is
timed, in this process, with its clock at the end of the store's 30 days: every rule reads
the aggregates over its window (1 minute to 30 days), a rule that compares reads two.

Then the ingest rate (the query benchmark's generator: events built, priced and stored in
batches of 20,000, derivation included) into a fresh store, alone and beside an evaluator of
the same rules on the same store every ``EVAL_EVERY`` seconds (6 times the default pace), as
one ``llmtap serve`` process runs them.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from llmtap.server.alerts.evaluate import Evaluator
from llmtap.server.alerts.notify import Notifier
from llmtap.server.alerts.rules import MEASURES, validated
from llmtap.store import open_store

from ._harness import Figure, figure
from .query import DAYS, START, cached_store, generate

RULES = 200
BUDGETS = 20
CYCLES = 5
EVAL_EVERY = 10.0
_WINDOWS = ["5m", "1h", "6h", "1d", "7d", "30d"]
_GROUPS = ["model", "prompt_template_name", "environment", "attributes.team"]
_COMPARE = [None, None, "previous_window", "week_before"]


def rules() -> list[tuple[str, dict[str, Any]]]:
    """200 rules (every other one grouped), every measure and window, and 20 budgets."""
    measures = list(MEASURES)
    out = []
    for i in range(RULES):
        rule = {
            "name": f"rule-{i}",
            "measure": measures[i % len(measures)],
            "window": _WINDOWS[i % len(_WINDOWS)],
            "threshold": 1.0,
            "compare": _COMPARE[i % len(_COMPARE)],
            "min_events": 10,
        }
        if i % 2:
            rule["group_by"] = _GROUPS[(i // 2) % len(_GROUPS)]
        if i % 5 == 0:
            rule["filters"] = {"environment": "prod"}
        out.append(("rule", validated("rule", rule).model_dump(mode="json")))
    for i in range(BUDGETS):
        budget = {"name": f"budget-{i}", "limit_usd": 100.0, "period": "month"}
        if i % 2:
            budget["group_by"] = "attributes.team"
        out.append(("budget", validated("budget", budget).model_dump(mode="json")))
    return out


def _ingest_rate(db: Path, n: int, with_rules: bool) -> float:
    """Events per second stored into a fresh store at ``db``, with rules evaluated beside."""
    store, evaluator = None, None
    if with_rules:
        store = open_store(str(db))
        project_id = store.ensure_project("bench")
        for kind, body in rules():
            store.put_alert_item(project_id, kind, body["name"], body)
        end = START.timestamp() + DAYS * 86_400
        evaluator = Evaluator(store, EVAL_EVERY, Notifier(store), clock=lambda: end)
        evaluator.start()
    try:
        # One store for both, as in ``llmtap serve``: the evaluator's reads derive what
        # ingest left waiting from memory, not from the file.
        return n / generate(db, n, store)
    finally:
        if evaluator is not None and store is not None:
            evaluator.close()
            store.close()


def run(quick: bool = False) -> dict[str, Any]:
    n = 50_000 if quick else 1_000_000
    ingest_n = 40_000 if quick else 200_000
    cached, _ = cached_store(n)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "alerts.db"
        source, copy = sqlite3.connect(cached), sqlite3.connect(db)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        store = open_store(str(db))
        try:
            project_id = store.ensure_project("bench")
            for kind, body in rules():
                store.put_alert_item(project_id, kind, body["name"], body)
            end = START.timestamp() + DAYS * 86_400
            evaluator = Evaluator(store, interval=60, notifier=Notifier(store), clock=lambda: end)
            walls, cpus = [], []
            for _ in range(CYCLES):
                wall, cpu = time.perf_counter(), time.process_time()
                evaluated = evaluator.run_once()
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            states = len(store.alert_states(project_id))
            firing = sum(s["state"] == "firing" for s in store.alert_states(project_id))
            evaluator.close()
        finally:
            store.close()
        # A first run fills the generator's price cache (same seed, same events): then the
        # two measured runs do the same work, whichever goes first.
        _ingest_rate(Path(tmp) / "warm.db", ingest_n, with_rules=False)
        alone = _ingest_rate(Path(tmp) / "alone.db", ingest_n, with_rules=False)
        beside = _ingest_rate(Path(tmp) / "beside.db", ingest_n, with_rules=True)
    return {
        "ingest_events": ingest_n,
        "ingest_alone_per_s": round(alone),
        "ingest_with_rules_per_s": round(beside),
        "events": n,
        "rules": RULES,
        "budgets": BUDGETS,
        "evaluated": evaluated,
        "states": states,
        "firing": firing,
        "first_cycle_s": round(walls[0], 3),
        "cycle_median_s": round(statistics.median(walls[1:]), 3),
        "cycle_cpu_median_s": round(statistics.median(cpus[1:]), 3),
    }


def report(r: dict[str, Any]) -> str:
    return (
        f"Alerts on {r['events']:,} events: one cycle of {r['rules']} rules (half grouped) and"
        f" {r['budgets']} budgets, {r['states']} states ({r['firing']} firing): median wall"
        f" {r['cycle_median_s']} s, CPU {r['cycle_cpu_median_s']} s (first cycle"
        f" {r['first_cycle_s']} s). Ingest of {r['ingest_events']:,} events:"
        f" {r['ingest_alone_per_s']:,}/s alone, {r['ingest_with_rules_per_s']:,}/s with the"
        f" rules evaluated every {EVAL_EVERY} s. Noisy: 2 cores shared with other runs."
    )


def summary(r: dict[str, Any]) -> list[Figure]:
    n = f"{r['events']:,} events"
    return [
        figure(
            f"alert cycle, 200 rules + 20 budgets, wall ({n})", r["cycle_median_s"], "<", 5.0, " s"
        ),
        figure(f"alert cycle CPU ({n})", r["cycle_cpu_median_s"], "<", 5.0, " s"),
        figure(
            f"ingest with rules evaluated every {EVAL_EVERY} s / alone",
            r["ingest_with_rules_per_s"] / r["ingest_alone_per_s"],
            ">=",
            0.8,
        ),
    ]
