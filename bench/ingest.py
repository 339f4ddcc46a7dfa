"""Issue 4: ingest throughput of one ``llmtap serve`` process on SQLite, beside the physical
limit (the same rows inserted straight into SQLite in one process).

Events of about 2 KB, in batches of 100, pre-serialised (so the client costs little), posted
by a few concurrent connections. The raw figures use the same schema, the server's pragmas
and one transaction per batch of 100, with every row computed beforehand so that only SQLite
is timed: every row the server stores for an event (events, attribute index, text index,
aggregates, templates), and the events table alone.
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

from llmtap.store import _derive, _hist, event_row
from llmtap.store._common import EVENT_COLUMNS
from llmtap.store._facts import facts_of_event
from llmtap.store._migrations import migrate_sqlite
from llmtap.store._sqlite import _INSERT_EVENT, WRITER_CACHE_KIB
from llmtap.wire import Event, make_event, template_of, template_revision

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


def _open_raw(path: Path) -> sqlite3.Connection:
    """A connection with the server's schema and its writer's pragmas."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
    # The server checkpoints on a thread of its own; one process inserting alone checkpoints
    # in line, every ~40 MB of WAL (fewer, larger checkpoints than SQLite's default 4 MB).
    conn.execute("PRAGMA wal_autocheckpoint=10000")
    _derive.install(conn)
    migrate_sqlite(conn)
    conn.execute("INSERT INTO projects (id, name, created_at) VALUES (1, 'p', 'now')")
    return conn


def _raw_batches(events: list[dict[str, Any]], conn: sqlite3.Connection) -> list[list[Any]]:
    """Per batch of 100, every row the server stores for it, computed beforehand (so nothing
    but SQLite is timed): the events rows; their attribute-index rows; their text-index rows;
    the aggregate rows they add to, summed per row as the server does per transaction; the
    template rows. The dimension and attribute-value ids are made here, in ``conn``."""
    col = {name: i for i, name in enumerate(EVENT_COLUMNS)}
    dims_ids: dict[tuple[Any, ...], int] = {}
    attr_ids: dict[tuple[str, str], int] = {}
    out = []
    seq = 0
    for start in range(0, len(events), BATCH):
        rows, attrs, texts, templates = [], [], [], {}
        acc = _derive._Acc()
        for data in events[start : start + BATCH]:
            event = Event.model_validate(data)
            revision = template_revision(template_of(event))
            row = event_row(event, 1, "dev", revision, None, 0)
            facts = facts_of_event(event)
            seq += 1
            rows.append(row)
            attrs += [(1, k, v, seq) for k, v in facts.pairs]
            texts.append((seq, facts.text))
            dims = tuple("" if row[col[d]] is None else row[col[d]] for d in _derive.DIMS)
            if dims not in dims_ids:
                conn.execute(
                    "INSERT INTO agg_dims (project_id, environment, model, prompt_template_name,"
                    " template_revision, status) VALUES (1, ?, ?, ?, ?, ?)",
                    dims,
                )
                dims_ids[dims] = len(dims_ids) + 1
            for pair in facts.pairs:
                if pair not in attr_ids:
                    conn.execute(
                        "INSERT INTO attr_values (project_id, key, value) VALUES (1, ?, ?)", pair
                    )
                    attr_ids[pair] = len(attr_ids) + 1
            acc.add(
                _derive._agg_keys(
                    1, row[col["started_us"]], dims_ids[dims], [attr_ids[p] for p in facts.pairs]
                ),
                n=1,
                input_tokens=row[col["input_tokens"]] or 0,
                output_tokens=row[col["output_tokens"]] or 0,
                lat=_hist.histogram([row[col["latency_ms"]]]),
                ttft=_hist.histogram([row[col["ttft_ms"]]]),
            )
            started = row[col["started_us"]]
            templates[row[col["prompt_template_name"]], revision] = (started, started)
        aggs = [
            (*key, *v[:6], _hist.encode(v[6]), _hist.encode(v[7]), v[8], v[9])
            for key, v in acc.rows.items()
        ]
        tmpl = [(1, n, r, "chat", "[]", a, b) for (n, r), (a, b) in templates.items()]
        out.append([rows, attrs, texts, aggs, tmpl])
    return out


_UPSERT_TEMPLATE = (
    "INSERT INTO templates (project_id, name, revision, kind, template, first_us, last_us)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
    " first_us = min(first_us, excluded.first_us), last_us = max(last_us, excluded.last_us)"
)


def raw_rate(events: list[dict[str, Any]], events_only: bool = False) -> float:
    """Events/s storing the same rows straight into SQLite, one transaction per batch of 100,
    with the server's schema and pragmas. ``events_only``: the events table alone (with its
    indexes), none of the derived rows the stats, filters and text search need."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = _open_raw(Path(tmp) / "raw.db")
        batches = _raw_batches(events, conn)
        start = time.perf_counter()
        for rows, attrs, texts, aggs, templates in batches:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT_EVENT, rows)
            if not events_only:
                conn.executemany(
                    "INSERT INTO event_attrs (project_id, key, value, seq) VALUES (?, ?, ?, ?)",
                    attrs,
                )
                conn.executemany("INSERT INTO events_text (rowid, text) VALUES (?, ?)", texts)
                conn.executemany(_derive._UPSERT_AGG, aggs)
                conn.executemany(_UPSERT_TEMPLATE, templates)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
    return len(events) / elapsed


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
    raw_events = [raw_rate(events, events_only=True) for _ in range(1 if quick else 3)]
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
        "raw_sqlite_events_only_per_s": raw_events,
        "served_events_per_s": served,
        "ratio": max(served) / max(raw),
        "ratio_events_only": max(served) / max(raw_events),
    }


def report(result: dict[str, Any]) -> str:
    raw, served = result["raw_sqlite_events_per_s"], result["served_events_per_s"]
    raw_events = result["raw_sqlite_events_only_per_s"]
    return "\n".join(
        [
            f"ingest: {result['events']} events of ~{result['event_bytes']} B, "
            f"batches of {result['batch']}, one llmtap serve process on SQLite",
            f"  served:     best {max(served):,.0f} events/s  (rounds: "
            + ", ".join(f"{v:,.0f}" for v in served)
            + ")",
            f"  raw SQLite, every row the server stores: best {max(raw):,.0f} events/s  (rounds: "
            + ", ".join(f"{v:,.0f}" for v in raw)
            + ")",
            f"  raw SQLite, events table only:          best {max(raw_events):,.0f} events/s"
            " (rounds: " + ", ".join(f"{v:,.0f}" for v in raw_events) + ")",
            f"  served / raw: {result['ratio']:.2f} (every row), "
            f"{result['ratio_events_only']:.2f} (events table only)"
            "  (targets: >= 20,000 events/s, >= 0.5)",
            "  (2-core machine shared with other work: figures are noisy)",
        ]
    )
