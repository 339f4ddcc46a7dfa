"""Issue 12: ingest on PostgreSQL through 1 and 2 ``llmtap serve`` processes on one database,
beside the physical limit (the same event rows written straight into PostgreSQL by one process
with ``COPY``: no HTTP, no validation, no derivation) and beside SQLite's single process, on
the same events (about 2.5 KB, batches of 100, 8 connections).

PostgreSQL is ``LLMTAP_BENCH_POSTGRES_URL`` (a superuser's URL) when set, else a throwaway
cluster like the test suite's (``tests/_postgres.py``). Run: ``python -m bench.postgres``.
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

import psycopg

from llmtap.server.ingest import prepare
from llmtap.store import KeyInfo, open_store
from llmtap.wire import Event

from ._harness import _wait, free_port, llmtap_server
from .ingest import BATCH, CONNECTIONS, bodies, make_events, served_rate

_CLI = [sys.executable, "-m", "llmtap.cli"]


def _database(admin_url: str) -> str:
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


def served_pg_rate(url: str, events: list[dict[str, Any]], processes: int) -> float:
    """Events/s through ``processes`` serve processes on one database, the connections
    shared among them."""
    key = subprocess.run(
        [*_CLI, "keys", "create", "--project", "bench", "--db", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    servers = [_serve(url) for _ in range(processes)]
    payloads = bodies(events)
    try:
        served_rate(servers[0][1], key, bodies(make_events(1000, seed=-1000)), 2)  # warm up
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
        return share * processes * BATCH / (time.perf_counter() - start)
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

        cluster = Cluster()
        admin = cluster.url
    try:
        events = make_events(n)
        size = sum(len(json.dumps(e)) for e in events[:100]) / 100
        raw = raw_copy_rate(_database(admin), make_events(n, seed=n))
        one = served_pg_rate(_database(admin), events, 1)
        two = served_pg_rate(_database(admin), make_events(n, seed=2 * n), 2)
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
        "sqlite_served_events_per_s": sqlite,
        "served_over_raw": max(one, two) / raw,
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
