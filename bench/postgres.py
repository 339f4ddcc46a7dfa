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

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from llmtap.server.ingest import prepare
from llmtap.store import KeyInfo, open_store
from llmtap.wire import Event

from ._harness import Figure, NoPostgres, _wait, figure, free_port, llmtap_server, postgres_admin
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


def statement_us(url: str, rounds: int = 10, per_round: int = 500) -> dict[str, float]:
    """Microseconds of one read statement, median of ``rounds``: through the store (a
    connection lent by its pool, the query, its row: ``get_meta``), beside the same query on
    one raw psycopg connection held open (the floor), alternating round by round."""
    import statistics

    import psycopg

    store = open_store(url)
    try:
        store.set_meta("bench", "1")
        with psycopg.connect(url, autocommit=True) as raw:
            ways = {
                "statement_us": lambda: store.get_meta("bench"),
                "statement_raw_us": lambda: raw.execute(
                    "SELECT value FROM meta WHERE key = %s", ("bench",)
                ).fetchone(),
            }
            out: dict[str, list[float]] = {name: [] for name in ways}
            for _ in range(rounds):
                for name, way in ways.items():
                    start = time.perf_counter()
                    for _ in range(per_round):
                        way()
                    out[name].append((time.perf_counter() - start) / per_round * 1e6)
        return {name: statistics.median(values) for name, values in out.items()}
    finally:
        store.close()


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
    with contextlib.ExitStack() as stack:
        try:
            admin = stack.enter_context(postgres_admin())
        except NoPostgres as e:  # not installed, or cannot start here: say so, go on
            return {"skipped": str(e)}
        events = make_events(n)
        size = sum(len(json.dumps(e)) for e in events[:100]) / 100
        statements = statement_us(_database(admin), rounds=4 if quick else 10)
        raw = raw_copy_rate(_database(admin), make_events(n, seed=n))
        one, one_derived = served_pg_rate(_database(admin), events, 1)
        two, two_derived = served_pg_rate(_database(admin), make_events(n, seed=2 * n), 2)
        with llmtap_server() as server:
            served_rate(server.url, server.key, bodies(make_events(1000, seed=-1000)), 2)
            sqlite = served_rate(
                server.url, server.key, bodies(make_events(n, seed=3 * n)), CONNECTIONS
            )
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
        **statements,
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
            f"  one read statement through the store's pool: {r['statement_us']:.0f} us"
            f" (on one raw connection: {r['statement_raw_us']:.0f} us)",
        ]
    )


def summary(r: dict[str, Any]) -> list[Figure]:
    if "skipped" in r:
        return []
    return [figure("ingest on PostgreSQL, served / raw COPY", r["served_over_raw"], ">=", 0.5)]


# -- queries on a big store: PostgreSQL beside SQLite ------------------------------------------

# The bench cluster's memory: the test suite's cluster is tuned for many tiny databases; a
# store of millions of events wants PostgreSQL's usual sizing for a machine with this RAM.
_BIG_STORE_CONF = {
    "shared_buffers": "2GB",
    "work_mem": "32MB",
    "maintenance_work_mem": "512MB",
    "effective_cache_size": "8GB",
    "max_wal_size": "16GB",
}


def load_postgres(url: str, n: int) -> dict[str, float]:
    """``n`` events into the PostgreSQL store at ``url``, through the store's own write path
    (``insert_events``: ``COPY`` into a temporary table, moved into ``events``, then derived:
    aggregates, attributes, text index), in batches of 20,000: the events of
    ``bench.query.generate``, the same generator as the SQLite store's. Seconds each part took."""
    from .query import generate

    store = open_store(url)
    try:
        loaded = generate(Path("unused"), n, store=store)
        started = time.perf_counter()
        store.catch_up()
        derived = time.perf_counter() - started
    finally:
        store.close()
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # what autovacuum does after a bulk load, done now
    return {"load_s": loaded, "derive_s": derived, "analyze_s": time.perf_counter() - started}


def query_figures(
    servers: dict[str, tuple[str, str]], rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Milliseconds of the stats request (by model and day, the whole range) and of the first
    events page with two filters (model, environment), on each server, interleaved: each round
    asks every server once, so the machine's noise hits them alike."""
    import httpx2

    clients = {
        name: httpx2.Client(base_url=u, headers={"authorization": f"Bearer {k}"}, timeout=120)
        for name, (u, k) in servers.items()
    }

    def stats(http: Any) -> None:
        r = http.get("/api/v1/stats", params={"group_by": "model,day"})
        assert r.status_code == 200 and r.json()["source"] == "aggregates", r.text[:200]

    def page(http: Any) -> None:
        r = http.get("/api/v1/events", params={"model": "gpt-4o", "environment": "staging"})
        assert r.status_code == 200 and len(r.json()["events"]) == 50, r.text[:200]

    out: dict[str, dict[str, list[float]]] = {n: {"stats": [], "page": []} for n in servers}
    try:
        for http in clients.values():  # warm caches alike
            stats(http)
            page(http)
        for _ in range(rounds):
            for name, http in clients.items():
                for what, ask in (("stats", stats), ("page", page)):
                    t = time.perf_counter()
                    ask(http)
                    out[name][what].append((time.perf_counter() - t) * 1000)
    finally:
        for http in clients.values():
            http.close()
    return out


def _pct(values: list[float], q: float) -> float:
    return round(sorted(values)[max(0, round(q * len(values)) - 1)], 1)


def run_queries(pg_events: int, sqlite_events: int, rounds: int = 40) -> dict[str, Any]:
    """Stats and the first filtered events page, over HTTP, on PostgreSQL holding
    ``pg_events`` beside SQLite holding ``sqlite_events`` (issue 12's figures)."""
    import psycopg

    from llmtap.server.auth import create_key

    from .query import cached_store

    loaded = os.environ.get("LLMTAP_BENCH_PG_QUERY_DB")  # a database loaded before: reused
    admin = os.environ.get("LLMTAP_BENCH_POSTGRES_URL") or loaded
    cluster = None
    if not admin:
        from tests._postgres import Cluster

        cluster = Cluster()
        with (cluster.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = '{v}'\n" for k, v in _BIG_STORE_CONF.items())
        cluster.stop()
        cluster.start()
        admin = cluster.url
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if loaded:
            url, loading = loaded, {"load_s": 0.0, "derive_s": 0.0, "analyze_s": 0.0}
            with psycopg.connect(url) as conn:
                pg_events = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])  # type: ignore[index]
        else:
            url = _database(admin)
            loading = load_postgres(url, pg_events)
        db, sqlite_generated = cached_store(sqlite_events)
        servers = {}
        for name, where in (("postgresql", url), ("sqlite", str(db))):
            store = open_store(where)
            key = create_key(store, "bench", "prod", ("ingest", "read"))
            store.close()
            proc, base = _serve(where)
            procs.append(proc)
            servers[name] = (base, key)
        times = query_figures(servers, rounds)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        if cluster is not None:
            cluster.remove()
    result: dict[str, Any] = {
        "pg_events": pg_events,
        "sqlite_events": sqlite_events,
        "rounds": rounds,
        "pg_load_s": round(loading["load_s"]) if not loaded else "loaded before",
        "pg_derive_after_s": round(loading["derive_s"]),
        "pg_analyze_s": round(loading["analyze_s"]),
        "sqlite_generated_s": round(sqlite_generated) if sqlite_generated else "cached",
    }
    for name, figures in times.items():
        for what, ms in figures.items():
            result[f"{name}_{what}_p50_ms"] = _pct(ms, 0.5)
            result[f"{name}_{what}_p95_ms"] = _pct(ms, 0.95)
    return result


def run_replica_queries(url: str, rounds: int = 40) -> dict[str, Any]:
    """The same queries on the loaded PostgreSQL database ``url`` (its server's superuser
    URL), through a server reading the primary beside one reading a fresh streaming replica
    (``--read-db``; ``tests._postgres.Replica``, ``pg_basebackup -R``), interleaved."""
    from urllib.parse import urlsplit

    from tests._postgres import Replica

    from llmtap.server.auth import create_key

    started = time.perf_counter()
    replica = Replica(url.rsplit("/", 1)[0] + "/postgres")
    made_s = time.perf_counter() - started
    procs: list[subprocess.Popen[bytes]] = []
    try:
        read_url = replica.has(urlsplit(url).path.lstrip("/"))
        servers = {}
        for name, more in (("primary", []), ("read_db", ["--read-db", read_url])):
            store = open_store(url)
            key = create_key(store, "bench", "prod", ("ingest", "read"))
            store.close()
            port = free_port()
            procs.append(
                subprocess.Popen(
                    [*_CLI, "serve", "--db", url, *more, "--port", str(port)],
                    stderr=subprocess.DEVNULL,
                )
            )
            _wait(f"http://127.0.0.1:{port}/healthz", timeout=120)
            servers[name] = (f"http://127.0.0.1:{port}", key)
        times = query_figures(servers, rounds)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        replica.remove()
    result: dict[str, Any] = {"replica_made_s": round(made_s), "rounds": rounds}
    for name, figures in times.items():
        for what, ms in figures.items():
            result[f"{name}_{what}_p50_ms"] = _pct(ms, 0.5)
            result[f"{name}_{what}_p95_ms"] = _pct(ms, 0.95)
    return result


def report_queries(r: dict[str, Any]) -> str:
    lines = [
        f"queries: PostgreSQL {r['pg_events']:,} events (loaded through insert_events:"
        f" {r['pg_load_s']} s), SQLite {r['sqlite_events']:,}; {r['rounds']} interleaved rounds"
    ]
    for what, label, target in (("stats", "stats by model, day", 200), ("page", "page", 100)):
        lines.append(
            f"  {label}: PostgreSQL p50 {r[f'postgresql_{what}_p50_ms']} ms, p95"
            f" {r[f'postgresql_{what}_p95_ms']} ms (target < {target}); SQLite p50"
            f" {r[f'sqlite_{what}_p50_ms']} ms, p95 {r[f'sqlite_{what}_p95_ms']} ms"
        )
    return "\n".join(lines)


def _arg(name: str, default: int) -> int:
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


if __name__ == "__main__":
    if "--replica" in sys.argv:  # on a database loaded before (LLMTAP_BENCH_PG_QUERY_DB)
        result = run_replica_queries(os.environ["LLMTAP_BENCH_PG_QUERY_DB"], _arg("--rounds", 40))
    elif "--queries" in sys.argv:
        result = run_queries(
            _arg("--pg-events", 5_000_000),
            _arg("--sqlite-events", 1_000_000),
            _arg("--rounds", 40),
        )
        print(report_queries(result))
    else:
        result = run(quick="--quick" in sys.argv)
        print(report(result))
    print(json.dumps(result, indent=2))
