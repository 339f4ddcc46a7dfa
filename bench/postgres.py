"""Issue 12: ingest on PostgreSQL through 1 and 2 ``llmtap serve`` processes on one database,
beside the physical limit (the same event rows written straight into PostgreSQL by one process
with ``COPY``: no HTTP, no validation, no derivation) and beside SQLite's single process, on
the same events (about 2.5 KB, batches of 100, 8 connections).

Served events are acknowledged before they are derived (stats, indexes: see
``llmtap.store._pg_derive``), as on SQLite; "derived" is the rate until a stats request (which
catches up) counts them all.

PostgreSQL is ``LLMTAP_BENCH_POSTGRES_URL`` (a superuser's URL) when set, else a throwaway
cluster like the test suite's (``tests/_postgres.py``); none (not installed, cannot start):
the benchmark says it is skipped. Run: ``python -m bench.postgres``, or in ``make bench``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

from llmtap.server.ingest import prepare
from llmtap.store import KeyInfo, open_store
from llmtap.wire import Event

from ._harness import Figure, _wait, figure, free_port, llmtap_server
from .ingest import BATCH, CONNECTIONS, _connect, bodies, make_events, served_rate

_CLI = [sys.executable, "-m", "llmtap.cli"]
_SCOPES = ["--scope", "ingest", "--scope", "read"]


def _database(admin_url: str) -> str:
    import psycopg  # the server extra's: only when PostgreSQL is there to measure

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    return admin_url.rsplit("/", 1)[0] + "/" + name


def raw_copy_rate(url: str, events: list[dict[str, Any]]) -> float:
    """Events/s of ``COPY`` of the prepared event rows into the events table, one process."""
    store = open_store(url)
    project = store.ensure_project("raw")
    store.close()
    key = KeyInfo(1, project, "raw", "dev", frozenset({"ingest"}), False)
    rows = [prepare(Event.model_validate(e), key, 0, None) for e in events]
    import psycopg

    with psycopg.connect(url) as conn:
        # The events table's columns but seq, in its order: what an event's row holds.
        columns = ", ".join(
            name
            for (name,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'"
                " AND column_name <> 'seq' ORDER BY ordinal_position"
            )
        )
        start = time.perf_counter()
        for at in range(0, len(rows), BATCH):
            with conn.cursor().copy(f"COPY events ({columns}) FROM STDIN") as copy:
                for row in rows[at : at + BATCH]:
                    copy.write_row(row)
            conn.commit()
        return len(rows) / (time.perf_counter() - start)


def _serve(url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [*_CLI, "serve", "--db", url, "--port", str(port)], stderr=subprocess.DEVNULL
    )
    _wait(f"http://127.0.0.1:{port}/healthz")
    return proc, f"http://127.0.0.1:{port}"


def _counted(url: str, key: str) -> int:
    """How many events the stats count (the request catches up first)."""
    conn = _connect(url)
    try:
        conn.request("GET", "/api/v1/stats", headers={"authorization": f"Bearer {key}"})
        answer = conn.getresponse()
        body = json.loads(answer.read())
        assert answer.status == 200, body
        return sum(int(g["count"]) for g in body["groups"])
    finally:
        conn.close()


def served_pg_rate(url: str, events: list[dict[str, Any]], processes: int) -> tuple[float, float]:
    """Events/s through ``processes`` serve processes on one database, the connections
    shared among them: acknowledged, and derived (counted by the stats)."""
    key = subprocess.run(
        [*_CLI, "keys", "create", "--project", "bench", "--db", url, *_SCOPES],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    servers = [_serve(url) for _ in range(processes)]
    payloads = bodies(events)
    try:
        served_rate(servers[0][1], key, bodies(make_events(1000, seed=-1000)), 2)  # warm up
        before = _counted(servers[0][1], key)
        share = len(payloads) // processes
        start = time.perf_counter()
        threads = [
            threading.Thread(
                target=served_rate,
                args=(url_, key, payloads[i * share : (i + 1) * share], CONNECTIONS // processes),
            )
            for i, (_, url_) in enumerate(servers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        served = share * processes * BATCH / (time.perf_counter() - start)
        counted = _counted(servers[-1][1], key) - before
        assert counted == share * processes * BATCH, counted
        return served, counted / (time.perf_counter() - start)
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait()


def run(quick: bool = False) -> dict[str, Any]:
    n = 5_000 if quick else 20_000
    admin = os.environ.get("LLMTAP_BENCH_POSTGRES_URL")
    cluster = None
    if not admin:
        from tests._postgres import Cluster

        try:
            cluster = Cluster()
        except Exception as e:  # not installed, or cannot start here: say so, go on
            return {"skipped": f"no PostgreSQL ({str(e).strip().splitlines()[0]})"}
        admin = cluster.url
    try:
        events = make_events(n)
        size = sum(len(json.dumps(e)) for e in events[:100]) / 100
        raw = raw_copy_rate(_database(admin), make_events(n, seed=n))
        one, one_derived = served_pg_rate(_database(admin), events, 1)
        two, two_derived = served_pg_rate(_database(admin), make_events(n, seed=2 * n), 2)
        with llmtap_server() as server:
            served_rate(server.url, server.key, bodies(make_events(1000, seed=-1000)), 2)
            sqlite = served_rate(
                server.url, server.key, bodies(make_events(n, seed=3 * n)), CONNECTIONS
            )
    finally:
        if cluster is not None:
            cluster.remove()
    return {
        "events": n,
        "event_bytes": round(size),
        "batch": BATCH,
        "connections": CONNECTIONS,
        "raw_copy_events_per_s": raw,
        "served_one_process_events_per_s": one,
        "served_two_processes_events_per_s": two,
        "derived_one_process_events_per_s": one_derived,
        "derived_two_processes_events_per_s": two_derived,
        "sqlite_served_events_per_s": sqlite,
        "served_over_raw": max(one, two) / raw,
    }


def report(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"postgres: skipped: {r['skipped']}"
    return "\n".join(
        [
            f"postgres: {r['events']} events of ~{r['event_bytes']} B, batches of {r['batch']},"
            f" {r['connections']} connections",
            f"  raw COPY, one process:         {r['raw_copy_events_per_s']:,.0f} events/s",
            f"  served, 1 process:             {r['served_one_process_events_per_s']:,.0f}"
            f" events/s (derived: {r['derived_one_process_events_per_s']:,.0f})",
            f"  served, 2 processes:           {r['served_two_processes_events_per_s']:,.0f}"
            f" events/s (derived: {r['derived_two_processes_events_per_s']:,.0f})",
            f"  served on SQLite, 1 process:   {r['sqlite_served_events_per_s']:,.0f} events/s",
            f"  served / raw: {r['served_over_raw']:.2f}  (target: >= 0.5)",
        ]
    )


def summary(r: dict[str, Any]) -> list[Figure]:
    if "skipped" in r:
        return []
    return [figure("ingest on PostgreSQL, served / raw COPY", r["served_over_raw"], ">=", 0.5)]


if __name__ == "__main__":
    result = run(quick="--quick" in sys.argv)
    print(report(result))
    print(json.dumps(result, indent=2))
