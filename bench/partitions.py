"""Issue 12: retention on PostgreSQL by dropping a month partition, beside the bounded deletes
it replaces, on the same events (about 2.5 KB each, all in one month past retention, stats
kept). Paired: each round fills two databases alike, then purges one each way.

``ingest_rate`` (events/s of ``insert_events``, derived included) uses only the public store
API, so the same function can time an older tree (``PYTHONPATH``) beside this one.

PostgreSQL is ``LLMTAP_BENCH_POSTGRES_URL`` (a superuser's URL) when set, else a throwaway
cluster like the test suite's. Run: ``python -m bench.partitions [--quick]``, or in
``make bench``.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from llmtap.server.ingest import prepare
from llmtap.store import EventFilter, KeyInfo, open_store
from llmtap.wire import Event

from ._harness import Figure, NoPostgres, figure, postgres_admin
from .ingest import make_events
from .postgres import _database

_BATCH = 500


def _rows(n: int, seed: int, when: datetime | None) -> tuple[list[Any], KeyInfo]:
    key = KeyInfo(1, 1, "p", "dev", frozenset({"ingest"}), False)
    events = make_events(n, seed=seed)
    if when is not None:
        for i, e in enumerate(events):
            e["started_at"] = (when + timedelta(milliseconds=i)).isoformat()
    return [prepare(Event.model_validate(e), key, 0, None) for e in events], key


def ingest_rate(url: str, n: int, seed: int = 0) -> float:
    """Events/s of ``insert_events`` in batches of 500, until every event is derived."""
    rows, _ = _rows(n, seed, None)
    store = open_store(url)
    try:
        pid = store.ensure_project("p")
        start = time.perf_counter()
        for at in range(0, n, _BATCH):
            store.insert_events(rows[at : at + _BATCH])
        store.stats(pid, EventFilter(), [])  # catches up: every event derived
        return n / (time.perf_counter() - start)
    finally:
        store.close()


def _filled(admin: str, n: int, seed: int, when: datetime) -> tuple[Any, int]:
    store = open_store(_database(admin))
    pid = store.ensure_project("p")
    rows, _ = _rows(n, seed, when)
    for at in range(0, n, _BATCH):
        store.insert_events(rows[at : at + _BATCH])
    store.stats(pid, EventFilter(), [])
    return store, pid


def purge_round(admin: str, n: int, seed: int) -> dict[str, float]:
    """Seconds to purge ``n`` events of a month past retention: by dropping its partition,
    and by the bounded deletes, on two databases filled alike (and to make the partition
    of the month, the events having come after it was over)."""
    now = datetime.now(timezone.utc)
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month = (first - timedelta(days=70)).replace(day=2)
    cutoff = int((first - timedelta(days=1)).timestamp() * 1_000_000)
    dropping, pid = _filled(admin, n, seed, month)
    deleting, pid2 = _filled(admin, n, seed + n, month)
    try:
        # The month's partition made (its events came late, into the DEFAULT partition):
        # what a month created ahead has from the start.
        start = time.perf_counter()
        dropping.drop_expired_partitions({pid: None}, True)
        split_s = time.perf_counter() - start
        start = time.perf_counter()
        dropped = dropping.drop_expired_partitions({pid: cutoff}, True)
        drop_s = time.perf_counter() - start
        start = time.perf_counter()
        deleted = deleting.purge_before(pid2, cutoff, True)
        delete_s = time.perf_counter() - start
        assert dropped == {pid: n} and deleted == n, (dropped, deleted)
    finally:
        dropping.close()
        deleting.close()
    return {"split_s": split_s, "drop_s": drop_s, "delete_s": delete_s}


def run(quick: bool = False) -> dict[str, Any]:
    n = 5_000 if quick else 20_000
    rounds = 2 if quick else 3
    with contextlib.ExitStack() as stack:
        try:
            admin = stack.enter_context(postgres_admin())
        except NoPostgres as e:  # not installed, or cannot start here: say so, go on
            return {"skipped": str(e)}
        results = [purge_round(admin, n, seed=10 * i * n) for i in range(rounds)]
    return {
        "events": n,
        "rounds": results,
        "delete_over_drop": [r["delete_s"] / r["drop_s"] for r in results],
        "median_delete_over_drop": statistics.median(r["delete_s"] / r["drop_s"] for r in results),
    }


def report(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"partitions: skipped: {r['skipped']}"
    lines = [f"partitions: purge of {r['events']} events of one month, stats kept"]
    for i, x in enumerate(r["rounds"]):
        lines.append(
            f"  round {i + 1}: drop {x['drop_s']:.2f} s, bounded deletes {x['delete_s']:.2f} s"
            f" ({x['delete_s'] / x['drop_s']:.1f}x); splitting the month out of the DEFAULT"
            f" partition first: {x['split_s']:.2f} s"
        )
    return "\n".join(lines)


def summary(r: dict[str, Any]) -> list[Figure]:
    if "skipped" in r:
        return []
    return [
        figure(
            "PostgreSQL retention of a month: bounded deletes / partition drop",
            r["median_delete_over_drop"],
            ">=",
            3.0,
        )
    ]


if __name__ == "__main__":
    result = run(quick="--quick" in sys.argv)
    print(report(result))
    print(json.dumps(result, indent=2))
