"""Issue 12: derivation alone on PostgreSQL (aggregates, attributes index, text index,
templates), in events/s, for a first load (every aggregate row and dimension combination new)
and a steady stream (the same minutes again: every row exists, its histograms are merged).

The events are written straight into ``events`` and ``derive_queue`` with ``COPY`` (what
ingest leaves behind), then a store opened afresh derives them (``catch_up``) in process; its
bodies are parsed again (a server keeps the facts of the events it stored itself). Each run
gets its own database on one cluster (``postgres_admin``).

Before and after side by side: ``--against DIR`` runs the same measurement with the
``llmtap`` package of ``DIR`` (a previous commit's ``src``: ``git archive REV src | tar -x
-C /tmp/before``, then ``--against /tmp/before/src``), alternating with this tree's, each in
its own process. ``--profile`` prints cProfile's top functions of one derivation instead
(``PG_DERIVE_SORT``: their order). No target in ``make bench``'s summary: the figures are
read against each other. Run: ``python -m bench.pg_derive [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import random
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from llmtap.store import event_row, open_store
from llmtap.wire import Event, template_revision

from ._harness import NoPostgres, postgres_admin
from .postgres import _database
from .query import ENVS, MODELS, TEAMS, TEMPLATES, WORDS

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)
WINDOW_MINUTES = 360
# The order of ``event_row``'s values (the store's ``EVENT_COLUMNS``, private to it).
COLUMNS = (
    *("id", "project_id", "environment", "api", "provider", "model", "status", "started_us"),
    *("latency_ms", "ttft_ms", "input_tokens", "output_tokens", "total_tokens", "cost_usd"),
    *("prompt_template_name", "template_revision", "chat_id", "chain_id", "parent_event_id"),
    *("feedback_key", "received_us", "sdk", "body"),
)
_MORE_WORDS = [*WORDS, "the", "was", "late", "again", "and", "customer", "asks", "for", "a"]


def make_rows(project_id: int, n: int, seed: int) -> list[tuple[Any, ...]]:
    """``n`` event rows over ``WINDOW_MINUTES`` from ``START``: 6 models, 11 template
    revisions, 3 environments, ok or error, 3 attributes, ~1.5 KB of text each."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        name = rng.choice(list(TEMPLATES))
        template = rng.choice(TEMPLATES[name])
        model = rng.choice(MODELS)
        status = "error" if rng.random() < 0.03 else "ok"
        question = " ".join(rng.choices(_MORE_WORDS, k=40))
        answer = " ".join(rng.choices(_MORE_WORDS, k=200))
        event = Event.model_validate(
            {
                "id": uuid.UUID(int=rng.getrandbits(128)).hex,
                "api": "chat",
                "provider": "openai",
                "model": model,
                "status": status,
                "started_at": START + timedelta(seconds=WINDOW_MINUTES * 60 * i / n),
                "latency_ms": rng.lognormvariate(6.5, 0.6),
                "ttft_ms": rng.lognormvariate(5.3, 0.5),
                "usage": {"input_tokens": 400, "output_tokens": 120, "total_tokens": 520},
                "prompt_template_name": name,
                "template_text": template,
                "template_params": {"question": question},
                "request": {"model": model, "messages": [{"role": "user", "content": question}]},
                "output_text": None if status == "error" else answer,
                "error": {"type": "RateLimitError", "message": "slow down"}
                if status == "error"
                else None,
                "feedback_key": f"fk-{seed}-{i}",
                "attributes": {
                    "team": rng.choice(TEAMS),
                    "tier": rng.choice(["free", "pro"]),
                    "region": rng.choice(["eu", "us", "apac"]),
                },
            }
        )
        env = rng.choice(ENVS)
        rows.append(event_row(event, project_id, env, template_revision(template), 0.001, 0))
    return rows


def _queue(url: str, rows: list[tuple[Any, ...]]) -> None:
    """The rows into ``events`` and ``derive_queue``, as ingest leaves them."""
    import psycopg

    with psycopg.connect(url) as conn:
        (last,) = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()  # type: ignore[misc]
        with conn.cursor().copy(f"COPY events ({', '.join(COLUMNS)}) FROM STDIN") as copy:  # type: ignore[arg-type]
            for row in rows:
                copy.write_row(row)
        conn.execute(
            "INSERT INTO derive_queue (project_id, seq) SELECT project_id, seq FROM events"
            " WHERE seq > %s",
            (last,),
        )


def _derive(url: str, profile: bool) -> float:
    """Seconds a fresh store takes to derive what is queued."""
    store = open_store(url)
    try:
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        store.catch_up()
        if profiler:
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats(
                os.environ.get("PG_DERIVE_SORT", "cumulative")
            ).print_stats(35)
        return time.perf_counter() - started
    finally:
        store.close()


def worker(url: str, n: int, profile: str) -> dict[str, float]:
    """In this process (whichever ``llmtap`` it imports): a first load of ``n`` events, then
    ``n`` more in the same minutes; events/s of each derivation."""
    store = open_store(url)
    project_id = store.ensure_project("derive")
    store.close()
    _queue(url, make_rows(project_id, n, seed=1))
    first = _derive(url, profile == "first")
    _queue(url, make_rows(project_id, n, seed=2))
    steady = _derive(url, profile == "steady")
    return {"first_events_per_s": n / first, "steady_events_per_s": n / steady}


def _run_worker(admin: str, src: Path, n: int, profile: str = "") -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}"}
    argv = [sys.executable, "-m", "bench.pg_derive", "--worker", _database(admin), str(n)]
    if profile:
        argv += ["--profile", profile]
    out = subprocess.run(argv, env=env, cwd=ROOT, check=True, capture_output=not profile)
    if profile:
        return {}
    return json.loads(out.stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def run(quick: bool = False, against: Path | None = None, rounds: int = 2) -> dict[str, Any]:
    n = 5_000 if quick else 20_000
    trees = {"this": ROOT / "src"} | ({"before": against} if against else {})
    with contextlib.ExitStack() as stack:
        try:
            admin = stack.enter_context(postgres_admin())
        except NoPostgres as e:
            return {"skipped": str(e)}
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        loads = [_load()]
        for _ in range(1 if quick else rounds):
            for name, src in trees.items():  # alternating, so both meet the same load
                runs[name].append(_run_worker(admin, src, n))
                loads.append(_load())
    return {"events": n, "runs": runs, "load_average": loads}


def report(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"pg_derive: skipped ({r['skipped']})"
    lines = [f"pg_derive: {r['events']:,} events derived in process, events/s per run"]
    for name, runs in r["runs"].items():
        first = ", ".join(f"{x['first_events_per_s']:,.0f}" for x in runs)
        steady = ", ".join(f"{x['steady_events_per_s']:,.0f}" for x in runs)
        lines.append(f"  {name}: first load {first}; steady stream {steady}")
    lines.append(f"  load average (1, 5, 15 min) along the run: {' | '.join(r['load_average'])}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--against", type=Path, help="another tree's src, run alternately")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", choices=["first", "steady"], help="cProfile one of them")
    parser.add_argument("--worker", nargs=2, metavar=("URL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.profile or "")))
        return
    if args.profile:
        with postgres_admin() as admin:
            _run_worker(admin, ROOT / "src", 5_000 if args.quick else 20_000, args.profile)
        return
    print(report(run(args.quick, args.against, args.rounds)))


if __name__ == "__main__":
    main()
