"""Issue 4: ingest throughput of one ``llmtap serve`` process on SQLite, beside the physical
limit (the same rows inserted straight into SQLite in one process).

Events of about 2 KB, in batches of 100, pre-serialised (so the client costs little), posted
by ``CONNECTIONS`` concurrent connections; then the same with ``--workers 2``. Each served
round is followed, once the server has derived it, by the raw rounds of the same events, so
that both see the machine in the same state. The raw figures use the same schema and the server's
pragmas, with every row computed beforehand (by the server's own code) so that only SQLite is
timed: every row the server stores, that is the events rows in one transaction per batch of
100 and the derived rows (aggregates, attribute index, text index, templates) in one per
chunk of ``DERIVE_EVENTS``, as the server's deriving thread writes them; and the events table
alone.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llmtap.server.ingest import prepare
from llmtap.store import KeyInfo
from llmtap.store.sqlite import (
    DERIVE_EVENTS,
    WRITER_CACHE_KIB,
    Derived,
    derived_rows,
    insert_event_rows,
    make_schema,
    write_derived,
)
from llmtap.wire import Event, make_event, new_feedback_key, new_id

from ._harness import Figure, Server, figure, llmtap_server

BATCH = 100
CONNECTIONS = 8
_TEXT = "the quick brown fox jumps over the lazy dog and then some more words follow"
_WORDS = _TEXT.split(" ")


def make_events(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` events of about 2 KB each, unique ids, a handful of templates and models."""
    out = []
    now = datetime.now(timezone.utc).isoformat()
    for i in range(n):
        k = seed + i
        text = " ".join(_WORDS[(k + j) % len(_WORDS)] for j in range(120))
        out.append(
            make_event(
                id=str(new_id()),  # what the SDK sends
                api="chat",
                provider="openai",
                model=f"gpt-4o-mini-{k % 3}",
                request={
                    "model": f"gpt-4o-mini-{k % 3}",
                    "messages": [
                        {"role": "system", "content": "You answer briefly."},
                        {"role": "user", "content": text[:400] + f" #{k % 50}"},
                    ],
                    "temperature": 0.2,
                },
                response={
                    "id": f"chatcmpl-{k}",
                    "object": "chat.completion",
                    "model": f"gpt-4o-mini-{k % 3}",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text[:900]},
                        }
                    ],
                    "usage": {"prompt_tokens": 90, "completion_tokens": 200, "total_tokens": 290},
                },
                output_text=text[:900],
                status="ok",
                started_at=now,
                latency_ms=123.4,
                usage={"input_tokens": 90, "output_tokens": 200, "total_tokens": 290},
                prompt_template_name=f"template-{k % 7}",
                chat_id=f"chat-{k % 100}",
                feedback_key=new_feedback_key(),  # as the SDK makes it
                attributes={"user": f"u{k % 10}", "tier": "free"},
            )
        )
    return out


def bodies(events: list[dict[str, Any]]) -> list[bytes]:
    return [
        json.dumps({"events": events[i : i + BATCH]}).encode() for i in range(0, len(events), BATCH)
    ]


def _open_raw(path: Path) -> sqlite3.Connection:
    """A connection with the server's schema and its writer's pragmas."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
    # The server checkpoints on a thread of its own; one process inserting alone checkpoints
    # in line, every ~40 MB of WAL (fewer, larger checkpoints than SQLite's default 4 MB).
    conn.execute("PRAGMA wal_autocheckpoint=10000")
    make_schema(conn)
    conn.execute("INSERT INTO projects (id, name, created_at) VALUES (1, 'p', 'now')")
    return conn


def _raw_rows(
    events: list[dict[str, Any]], conn: sqlite3.Connection
) -> tuple[list[list[tuple[Any, ...]]], list[Derived]]:
    """Every row the server stores for ``events``, computed beforehand so that nothing but
    SQLite is timed: the events rows per batch of 100, and the derived rows per chunk of
    ``DERIVE_EVENTS`` events, as the server's deriving thread writes them (the dimension and
    attribute-value ids they refer to are made here, in ``conn``)."""
    key = KeyInfo(1, 1, "p", "dev")
    rows = [prepare(Event.model_validate(data), key, 0, None) for data in events]
    batches = [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]
    chunks = []
    for start in range(0, len(rows), DERIVE_EVENTS):
        chunk = rows[start : start + DERIVE_EVENTS]
        fresh = [(start + i + 1, row, row.facts) for i, row in enumerate(chunk)]
        conn.execute("BEGIN")
        chunks.append(derived_rows(conn, fresh))
        conn.execute("COMMIT")
    return batches, chunks


def raw_rate(events: list[dict[str, Any]], events_only: bool = False) -> float:
    """Events/s storing the same rows straight into SQLite, one transaction per batch of 100
    and one per chunk of derived rows, with the server's schema and pragmas. ``events_only``:
    the events table alone (with its indexes), none of the derived rows the stats, filters
    and text search need."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = _open_raw(Path(tmp) / "raw.db")
        batches, chunks = _raw_rows(events, conn)
        per_chunk = DERIVE_EVENTS // BATCH
        start = time.perf_counter()
        for i, rows in enumerate(batches):
            conn.execute("BEGIN IMMEDIATE")
            insert_event_rows(conn, rows)
            conn.execute("COMMIT")
            if not events_only and ((i + 1) % per_chunk == 0 or i + 1 == len(batches)):
                conn.execute("BEGIN IMMEDIATE")
                write_derived(conn, chunks[i // per_chunk])
                conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
    return len(events) / elapsed


def _connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)


def _all_stored(answer: bytes) -> bool:
    return bool(json.loads(answer)["stored"] == BATCH)


def served_rate(
    url: str,
    key: str,
    payloads: list[bytes],
    connections: int,
    *,
    path: str = "/api/v1/events",
    content_type: str = "application/json",
    per_payload: int = BATCH,
    accepted: Callable[[bytes], bool] = _all_stored,
) -> float:
    """Events/s through ``POST path`` (each payload ``per_payload`` events, each answer
    ``accepted``) with ``connections`` concurrent clients, each on one kept-alive connection.
    The client is the standard library's ``http.client``: on this 2-core machine the client
    shares the CPU with the server, and ``httpx2`` cost the server a quarter of its measured
    rate (6,200 against 8,400 events/s side by side)."""
    headers = {"authorization": f"Bearer {key}", "content-type": content_type}
    todo = list(payloads)
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        conn = _connect(url)
        try:
            while True:
                with lock:
                    if not todo:
                        return
                    body = todo.pop()
                conn.request("POST", path, body=body, headers=headers)
                answer = conn.getresponse()
                text = answer.read()
                if answer.status != 200 or not accepted(text):
                    failures.append(text[:200].decode(errors="replace"))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{len(failures)} batches failed: {failures[0]}")
    return len(payloads) * per_payload / elapsed


def _served_rounds(
    server: Server, rounds: list[list[dict[str, Any]]], between: Callable[[], None]
) -> list[float]:
    """The served rate of each round of events; ``between`` runs after each, once the server
    has derived what it took (a stats read waits for that), so it has the machine to itself."""
    served_rate(server.url, server.key, bodies(make_events(2000, seed=-2000)), 2)  # warm up
    rates = []
    for events in rounds:
        rates.append(served_rate(server.url, server.key, bodies(events), CONNECTIONS))
        _caught_up(server)
        between()
    return rates


def _caught_up(server: Server) -> None:
    conn = _connect(server.url)
    conn.request("GET", "/api/v1/stats", headers={"authorization": f"Bearer {server.key}"})
    answer = conn.getresponse()
    answer.read()
    conn.close()
    if answer.status != 200:
        raise RuntimeError(f"stats answered {answer.status}")


def run(quick: bool = False) -> dict[str, Any]:
    n = 10_000 if quick else 40_000
    rounds = [make_events(n, seed=n * i) for i in range(1 if quick else 3)]
    size = sum(len(json.dumps(e)) for e in rounds[0][:100]) / 100
    raw: list[float] = []
    raw_events: list[float] = []

    def raw_round() -> None:  # beside each served round, so both see the same machine
        events = rounds[len(raw)]
        raw.append(raw_rate(events))
        raw_events.append(raw_rate(events, events_only=True))

    with llmtap_server() as server:
        served = _served_rounds(server, rounds, raw_round)
        peak_rss = server.peak_rss_mib()
    with llmtap_server(env={"LLMTAP_WORKERS": "2"}) as server:
        again = [make_events(n, seed=n * (i + len(rounds))) for i in range(len(rounds))]
        served_two = _served_rounds(server, again, lambda: None)
    return {
        "events": n,
        "event_bytes": round(size),
        "batch": BATCH,
        "connections": CONNECTIONS,
        "raw_sqlite_events_per_s": raw,
        "raw_sqlite_events_only_per_s": raw_events,
        "served_events_per_s": served,
        "served_two_workers_events_per_s": served_two,
        "ratio": max(served) / max(raw),
        "ratio_events_only": max(served) / max(raw_events),
        "server_peak_rss_mib": peak_rss,
    }


def report(result: dict[str, Any]) -> str:
    raw, served = result["raw_sqlite_events_per_s"], result["served_events_per_s"]
    raw_events = result["raw_sqlite_events_only_per_s"]
    two = result["served_two_workers_events_per_s"]
    return "\n".join(
        [
            f"ingest: {result['events']} events of ~{result['event_bytes']} B, "
            f"batches of {result['batch']}, one llmtap serve process on SQLite",
            f"  served:     best {max(served):,.0f} events/s  (rounds: "
            + ", ".join(f"{v:,.0f}" for v in served)
            + f"; {result['connections']} connections)",
            f"  served by `llmtap serve --workers 2`: best {max(two):,.0f} events/s  (rounds: "
            + ", ".join(f"{v:,.0f}" for v in two)
            + ")",
            f"  raw SQLite, every row the server stores: best {max(raw):,.0f} events/s  (rounds: "
            + ", ".join(f"{v:,.0f}" for v in raw)
            + ")",
            f"  raw SQLite, events table only:          best {max(raw_events):,.0f} events/s"
            " (rounds: " + ", ".join(f"{v:,.0f}" for v in raw_events) + ")",
            f"  served / raw: {result['ratio']:.2f} (every row), "
            f"{result['ratio_events_only']:.2f} (events table only)"
            "  (targets: >= 20,000 events/s, >= 0.5)",
            f"  server peak RSS: {result['server_peak_rss_mib']:.0f} MiB",
            "  (2-core machine shared with other work: figures are noisy)",
        ]
    )


def summary(r: dict[str, Any]) -> list[Figure]:
    return [
        figure("ingest, served (events/s)", max(r["served_events_per_s"]), ">=", 20_000),
        figure("ingest, served / raw SQLite (every row)", r["ratio"], ">=", 0.5),
    ]
