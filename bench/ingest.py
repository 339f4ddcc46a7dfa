"""Issue 4: ingest throughput of one ``llmtap serve`` process on SQLite, beside the physical
limit (the same rows inserted straight into SQLite in one process).

Events of about 2 KB, in batches of 100, pre-serialised (so the client costs little), posted
by a few concurrent connections. The raw figure uses the same schema (every index the query
API needs) and one transaction per batch of 100, with the server's pragmas.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx2

from llmtap.store import event_row
from llmtap.store._migrations import migrate_sqlite
from llmtap.store._sqlite import _INSERT_EVENT
from llmtap.wire import Event, make_event

from ._harness import llmtap_server

BATCH = 100
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
                id=str(uuid.uuid4()),
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
                feedback_key=uuid.uuid4().hex,
                attributes={"user": f"u{k % 10}", "tier": "free"},
            )
        )
    return out


def bodies(events: list[dict[str, Any]]) -> list[bytes]:
    return [
        json.dumps({"events": events[i : i + BATCH]}).encode() for i in range(0, len(events), BATCH)
    ]


def raw_rate(events: list[dict[str, Any]]) -> float:
    """Events/s inserting the rows straight into SQLite (same schema, pragmas, batches)."""
    rows = [event_row(Event.model_validate(e), 1, "dev", "rev", None, 0) for e in events]
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        migrate_sqlite(conn)
        conn.execute("INSERT INTO projects (id, name, created_at) VALUES (1, 'p', 'now')")
        start = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT_EVENT, rows[i : i + BATCH])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
    return len(rows) / elapsed


def served_rate(url: str, key: str, payloads: list[bytes], connections: int) -> float:
    """Events/s through ``POST /api/v1/events`` with ``connections`` concurrent clients."""
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    todo = list(payloads)
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        with httpx2.Client(timeout=60) as http:
            while True:
                with lock:
                    if not todo:
                        return
                    body = todo.pop()
                r = http.post(url + "/api/v1/events", content=body, headers=headers)
                if r.status_code != 200 or r.json()["stored"] != BATCH:
                    failures.append(r.text[:200])

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{len(failures)} batches failed: {failures[0]}")
    return len(payloads) * BATCH / elapsed


def run(quick: bool = False) -> dict[str, Any]:
    n = 10_000 if quick else 40_000
    events = make_events(n)
    size = sum(len(json.dumps(e)) for e in events[:100]) / 100
    payloads = bodies(events)
    raw = [raw_rate(events) for _ in range(1 if quick else 3)]
    served = []
    with llmtap_server() as server:
        served_rate(server.url, server.key, bodies(make_events(2000, seed=n)), 2)  # warm up
        for round_ in range(1 if quick else 3):
            fresh = payloads if round_ == 0 else bodies(make_events(n, seed=n * round_))
            served.append(served_rate(server.url, server.key, fresh, 4))
    return {
        "events": n,
        "event_bytes": round(size),
        "batch": BATCH,
        "raw_sqlite_events_per_s": raw,
        "served_events_per_s": served,
        "ratio": max(served) / max(raw),
    }


def report(result: dict[str, Any]) -> str:
    raw, served = result["raw_sqlite_events_per_s"], result["served_events_per_s"]
    return "\n".join(
        [
            f"ingest: {result['events']} events of ~{result['event_bytes']} B, "
            f"batches of {result['batch']}, one llmtap serve process on SQLite",
            f"  served:     best {max(served):,.0f} events/s  (rounds: "
            + ", ".join(f"{v:,.0f}" for v in served)
            + ")",
            f"  raw SQLite: best {max(raw):,.0f} events/s  (rounds: "
            + ", ".join(f"{v:,.0f}" for v in raw)
            + ")",
            f"  served / raw: {result['ratio']:.2f}  (targets: >= 20,000 events/s, >= 0.5)",
            "  (2-core machine shared with other work: figures are noisy)",
        ]
    )
