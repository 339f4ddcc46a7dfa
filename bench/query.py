"""Issue 5: stats, the events list and export on a store of a million events.

The store is generated once (through the store's own write path, ``insert_events``, in big
transactions: aggregates, attributes and text index included) and cached under
``bench/.cache/``. Then, against a real ``llmtap serve`` on it, side by side: stats over the
whole range by model and day (from the aggregates) beside the same counts by a plain
``GROUP BY`` on the events table; the first page of the events list with two filters; and an
export of everything to Parquet (time and peak memory of the exporting process and of the
server).
"""

from __future__ import annotations

import functools
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx2

from llmtap.server.auth import create_key
from llmtap.server.prices import cost
from llmtap.store import Store, event_row, open_store
from llmtap.wire import Event, template_revision

from ._harness import Figure, _wait, figure, free_port, run_cli

CACHE = Path(__file__).parent / ".cache"
START = datetime(2026, 10, 1, tzinfo=timezone.utc)
DAYS = 30
MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "claude-3-5-sonnet-20241022", "o3-mini", "acme-ft"]
TEMPLATES = {
    "support-answer": ["Answer the customer: {question}", "Answer briefly and kindly: {question}"],
    "summarize": ["Summarize: {text}", "Summarize in 3 bullets: {text}", "TL;DR: {text}"],
    "classify": ["Label this ticket: {ticket}"],
    "translate": ["Translate to {lang}: {text}", "Translate into {lang}, keep tone: {text}"],
    "sql-gen": ["Write SQL for: {question}"],
}
ENVS = ["prod", "prod", "prod", "staging", "dev"]
TEAMS = ["red", "blue", "green", "gold", "teal"]
WORDS = [
    *("order", "refund", "parcel", "invoice", "delay"),
    *("login", "password", "shipping", "coupon", "address"),
]


@functools.lru_cache(maxsize=100_000)
def _cost(model: str, month: int, input_tokens: int, output_tokens: int) -> float | None:
    when = START + timedelta(days=31 * month)
    return cost(
        model, None, {"input_tokens": input_tokens, "output_tokens": output_tokens}, when, []
    )


def generate(path: Path, n: int, store: Store | None = None) -> float:
    """Fill a store at ``path`` (or ``store``, left open) with ``n`` events; seconds it
    took."""
    rng = random.Random(1)
    mine = store is None
    store = open_store(str(path)) if store is None else store
    project_id = store.ensure_project("bench")
    started = time.perf_counter()
    batch: list[tuple[Any, ...]] = []
    span = DAYS * 86400
    for i in range(n):
        name = rng.choice(list(TEMPLATES))
        template = rng.choice(TEMPLATES[name])
        model = rng.choice(MODELS)
        status = "error" if rng.random() < 0.03 else "ok"
        t = START + timedelta(seconds=span * i / n + rng.random())
        input_tokens = rng.randrange(50, 2000, 50)
        output_tokens = rng.randrange(10, 600, 10)
        question = " ".join(rng.choices(WORDS, k=6))
        event = Event.model_validate(
            {
                "id": uuid.UUID(int=rng.getrandbits(128)).hex,
                "api": "chat",
                "provider": "openai",
                "model": model,
                "status": status,
                "started_at": t,
                "latency_ms": rng.lognormvariate(6.5, 0.6),
                "ttft_ms": rng.lognormvariate(5.3, 0.5),
                "usage": {
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "total_tokens": input_tokens + output_tokens,
                },
                "prompt_template_name": name,
                "template_text": template,
                "template_params": {"question": question},
                "request": {"model": model, "messages": [{"role": "user", "content": question}]},
                "output_text": None if status == "error" else f"Sure: {question}",
                "error": {"type": "RateLimitError", "message": "slow down"}
                if status == "error"
                else None,
                "chat_id": f"chat-{rng.randrange(50_000)}",
                "feedback_key": f"fk-{i}",
                "attributes": {
                    "team": rng.choice(TEAMS),
                    "tier": rng.choice(["free", "pro"]),
                    "region": rng.choice(["eu", "us", "apac"]),
                },
            }
        )
        price = _cost(model, t.month - START.month, input_tokens, output_tokens)
        batch.append(
            event_row(event, project_id, rng.choice(ENVS), template_revision(template), price, 0)
        )
        if len(batch) == 20_000:
            store.insert_events(batch)
            batch.clear()
    store.insert_events(batch)
    if mine:
        store.close()
    return time.perf_counter() - started


def _timed(fn: Any, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def _rss_peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def cached_store(n: int, cache: Path = CACHE) -> tuple[Path, float | None]:
    """The store of ``n`` events under ``cache``, generated when missing; with the seconds
    generating took (None when it was cached).

    It is generated beside its final name and copied into place with SQLite's backup API: a
    WAL file belongs to its database file's name, so renaming the file alone would leave
    committed pages behind (the cached store would be corrupt)."""
    cache.mkdir(parents=True, exist_ok=True)
    db = cache / f"events-{n}.db"
    if db.exists():
        return db, None
    partial = db.with_suffix(".partial")
    _remove_with_sidecars(partial)
    _remove_with_sidecars(db)
    generated_s = generate(partial, n)
    copying = db.with_suffix(".copying")
    copying.unlink(missing_ok=True)
    # The generated prompts are the owner's alone, as a store's are: SQLite would create the
    # file with the umask's permissions, so it is created first.
    os.close(os.open(copying, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    source = sqlite3.connect(partial)
    copy = sqlite3.connect(copying)
    try:
        source.backup(copy)
        # Self-contained: no WAL to travel with it (the store turns WAL on when it opens).
        copy.execute("PRAGMA journal_mode = DELETE")
    finally:
        copy.close()
        source.close()
    _remove_with_sidecars(partial)
    copying.rename(db)
    return db, generated_s


def _remove_with_sidecars(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-writer", "-journal"):
        Path(str(db) + suffix).unlink(missing_ok=True)


def run(quick: bool = False) -> dict[str, Any]:
    n = 50_000 if quick else 1_000_000
    db, generated_s = cached_store(n)
    store = open_store(str(db))
    key = create_key(store, "bench", "prod", ("ingest", "read"))
    store.close()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "llmtap.cli", "serve", "--db", str(db), "--port", str(port)],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url + "/healthz", timeout=120)
        http = httpx2.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=120)

        def stats() -> None:
            r = http.get("/api/v1/stats", params={"group_by": "model,day"})
            assert r.status_code == 200 and r.json()["source"] == "aggregates"

        def first_page() -> None:
            r = http.get("/api/v1/events", params={"model": "gpt-4o", "environment": "staging"})
            assert r.status_code == 200 and len(r.json()["events"]) == 50

        def first_page_attr() -> None:
            r = http.get("/api/v1/events", params={"attributes.team": "gold", "status": "error"})
            assert r.status_code == 200 and len(r.json()["events"]) == 50

        raw = sqlite3.connect(db)

        def group_by() -> None:
            raw.execute(
                "SELECT model, started_us / 86400000000, count(*), sum(status = 'error'),"
                " sum(input_tokens), sum(output_tokens), sum(cost_usd), avg(latency_ms)"
                " FROM events WHERE project_id = 1 GROUP BY 1, 2"
            ).fetchall()

        stats()  # warm the page cache for both sides alike
        group_by()
        stats_ms, raw_ms = [], []
        for _ in range(3 if quick else 5):  # interleaved, so noise hits both
            stats_ms += _timed(stats, 10)
            raw_ms += _timed(group_by, 1)
        page_ms = _timed(first_page, 30)
        page_attr_ms = _timed(first_page_attr, 30)
        out = CACHE / "export.parquet"
        export = ["export", "--format", "parquet", "-o", str(out), "--no-progress"]
        export_s, export_mib = run_cli([*export, "--url", url, "--api-key", key])
        server_rss = _rss_peak_kb(server.pid)
        raw.close()
    finally:
        server.terminate()
        server.wait()
    return {
        "events": n,
        "generated_s": round(generated_s, 1) if generated_s else "cached",
        "db_mb": round(db.stat().st_size / 1e6),
        "stats_p50_ms": round(statistics.median(stats_ms), 1),
        "stats_p95_ms": round(_p95(stats_ms), 1),
        "raw_group_by_median_ms": round(statistics.median(raw_ms), 1),
        "ratio": round(statistics.median(raw_ms) / statistics.median(stats_ms), 1),
        "page_two_filters_p50_ms": round(statistics.median(page_ms), 1),
        "page_two_filters_p95_ms": round(_p95(page_ms), 1),
        "page_attr_filters_p95_ms": round(_p95(page_attr_ms), 1),
        "export_parquet_s": round(export_s, 1),
        "export_parquet_mb": round(out.stat().st_size / 1e6),
        "export_peak_rss_mb": round(export_mib),
        "server_peak_rss_mb": round(server_rss / 1024),
    }


def report(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"Queries on {r['events']:,} events over {DAYS} days (store {r['db_mb']} MB; "
            f"generated: {r['generated_s']} s). Noisy: 2 cores shared with other test runs.",
            f"  stats by model and day, whole range: p50 {r['stats_p50_ms']} ms, "
            f"p95 {r['stats_p95_ms']} ms (target < 100); plain GROUP BY on events (counts and "
            f"sums only, no percentiles): {r['raw_group_by_median_ms']} ms; ratio {r['ratio']}x",
            f"  events list, first page, model+environment: p50 {r['page_two_filters_p50_ms']} "
            f"ms, p95 {r['page_two_filters_p95_ms']} ms (target < 50); attribute+status: p95 "
            f"{r['page_attr_filters_p95_ms']} ms",
            f"  export to Parquet: {r['export_parquet_s']} s, {r['export_parquet_mb']} MB file, "
            f"peak RSS exporter {r['export_peak_rss_mb']} MB, server {r['server_peak_rss_mb']} MB",
        ]
    )


def summary(r: dict[str, Any]) -> list[Figure]:
    n = f"{r['events']:,} events"
    return [
        figure(f"stats by model and day, p95 ({n})", r["stats_p95_ms"], "<", 100, " ms"),
        figure(
            f"events page, two filters, p95 ({n})", r["page_two_filters_p95_ms"], "<", 50, " ms"
        ),
        figure(
            f"events page, attribute + status, p95 ({n})",
            r["page_attr_filters_p95_ms"],
            "<",
            50,
            " ms",
        ),
    ]
