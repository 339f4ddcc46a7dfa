"""Derivation trails the events (see ``llmtap.store._derive``): the stats, attribute and text
indexes catch up, count every event once whatever crashes when, and never hold up ingest.

The tests taking ``store_backend`` hold for every backend; the others look inside the SQLite
file (its watermark, its statements)."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmtap.server.ingest import prepare
from llmtap.store import EventFilter, KeyInfo, SQLiteStore, Store, _derive
from llmtap.wire import Event, make_event

from ._stores import StoreBackend


def rows(
    n: int, key: KeyInfo, feedback_key: str | None = None, request_from: int | None = None
) -> list[tuple[Any, ...]]:
    """``n`` event rows, alternating users; ``request_from``: each also with a ``request``
    attribute of its own (as a span id or a request id is), numbered from it."""
    out = []
    for i in range(n):
        event = Event.model_validate(
            make_event(
                id=str(uuid.uuid4()),
                api="chat",
                provider="openai",
                model="gpt-4o-mini",
                request={"messages": [{"role": "user", "content": f"zebra question {i % 3}"}]},
                output_text="an answer",
                status="ok",
                started_at="2026-05-01T12:00:00+00:00",
                latency_ms=100.0 + i,
                usage={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
                feedback_key=feedback_key or uuid.uuid4().hex,
                attributes={
                    "user": f"u{i % 2}",
                    **({} if request_from is None else {"request": f"r{request_from + i}"}),
                },
            )
        )
        out.append(prepare(event, key, 0, None))
    return out


# The deriving thread of these stores waits an hour: derivation happens only when a read or
# ``close`` asks for it.
IDLE = 3600.0


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A SQLite store on ``d.db``, its events waiting to be derived until a read asks."""
    opened = SQLiteStore(tmp_path / "d.db", derive_delay=IDLE)
    yield opened
    opened.close()


@pytest.fixture
def idle(store_backend: StoreBackend) -> Store:
    """A fresh store of each backend whose events wait to be derived until a read asks."""
    return store_backend.new(derive_delay=IDLE)


def key_of(store: Store) -> KeyInfo:
    return KeyInfo(1, store.ensure_project("p"), "p", "dev")


def count(store: Store, **group: Any) -> int:
    return int(store.stats(1, EventFilter(**group), [])["groups"][0]["count"])


def watermark(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    try:
        (last,) = conn.execute("SELECT ifnull(max(seq), 0) FROM events").fetchone()
        return _derive.derived_through(conn), last
    finally:
        conn.close()


def test_events_are_acknowledged_before_derivation_and_reads_catch_up(
    sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    key = key_of(sqlite_store)
    assert sqlite_store.insert_events(rows(30, key)) == 30
    done, last = watermark(tmp_path / "d.db")
    assert (done, last) == (0, 30)  # committed, not derived yet
    assert count(sqlite_store) == 30
    page, _ = sqlite_store.list_events(1, EventFilter(attributes={"user": "u1"}, limit=100))
    assert len(page) == 15
    page, _ = sqlite_store.list_events(1, EventFilter(q="zebra", limit=100))
    assert len(page) == 30
    assert watermark(tmp_path / "d.db") == (30, 30)
    assert count(sqlite_store) == 30  # catching up again counts nothing twice


def test_the_background_thread_derives_without_a_read(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "d.db", derive_delay=0.05)
    store.insert_events(rows(10, key_of(store)))
    for _ in range(200):
        if watermark(tmp_path / "d.db") == (10, 10):
            break
        time.sleep(0.02)
    assert watermark(tmp_path / "d.db") == (10, 10)
    store.close()


def test_a_duplicate_is_derived_once(idle: Store) -> None:
    key = key_of(idle)
    batch = rows(5, key)
    assert idle.insert_events(batch) == 5
    assert idle.insert_events(batch[2:] + rows(2, key)) == 2
    assert count(idle) == 7


def test_known_dimensions_and_attribute_values_cost_no_query(sqlite_store: SQLiteStore) -> None:
    key = key_of(sqlite_store)
    for _ in range(2):  # the first makes them, the second finds them committed
        sqlite_store.insert_events(rows(10, key))
        sqlite_store.catch_up()
    lookups: list[str] = []
    sqlite_store._writer.set_trace_callback(
        lambda sql: (
            lookups.append(sql) if "FROM agg_dims" in sql or "FROM attr_values" in sql else None
        )
    )
    try:
        sqlite_store.insert_events(rows(10, key))  # the same model, template and attribute values
        sqlite_store.catch_up()
    finally:
        sqlite_store._writer.set_trace_callback(None)
    assert lookups == []
    assert count(sqlite_store) == 30
    assert count(sqlite_store, attributes={"user": "u1"}) == 15


def test_an_attribute_unique_per_event_past_its_limit_keeps_the_stats_exact(
    idle: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``stats_attribute_values``, the events of one minute whose only difference is
    such a value add to the aggregates together; stats by the other attribute stay exact, and
    by the overflowed one are computed from the events."""
    monkeypatch.setenv("LLMTAP_STATS_ATTRIBUTE_VALUES", "5")
    key = key_of(idle)
    for chunk in range(3):
        idle.insert_events(rows(20, key, request_from=20 * chunk))
        idle.catch_up()
    assert count(idle) == 60
    by_user = idle.stats(1, EventFilter(), ["attributes.user"])
    assert by_user["source"] == "aggregates"
    assert {g["key"]["attributes.user"]: g["count"] for g in by_user["groups"]} == {
        "u0": 30,
        "u1": 30,
    }
    lat = sorted(100.0 + i for i in range(20))  # each chunk's latencies, three times
    assert by_user["groups"][0]["latency_ms"]["p50"] == pytest.approx(lat[10], rel=0.05)
    one = idle.stats(1, EventFilter(attributes={"request": "r42"}), [])
    assert one["source"] == "events"
    assert one["groups"][0]["count"] == 1


def test_values_of_an_overflowed_attribute_cost_no_query(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMTAP_STATS_ATTRIBUTE_VALUES", "5")
    key = key_of(sqlite_store)
    sqlite_store.insert_events(rows(20, key, request_from=0))  # past the limit: the key overflows
    sqlite_store.catch_up()
    lookups: list[str] = []
    sqlite_store._writer.set_trace_callback(
        lambda sql: lookups.append(sql) if "'request'" in sql and "event_attrs" not in sql else None
    )
    try:
        sqlite_store.insert_events(rows(20, key, request_from=20))
        sqlite_store.catch_up()
    finally:
        sqlite_store._writer.set_trace_callback(None)
    assert lookups == []
    assert count(sqlite_store) == 40


def test_a_rating_for_an_event_not_derived_yet_counts_once(idle: Store) -> None:
    key = key_of(idle)
    idle.insert_events(rows(1, key, feedback_key="fk-early"))
    assert idle.insert_feedback(1, "fk-early", 0.5, None, "f1")  # event stored, not derived
    group = idle.stats(1, EventFilter(), [])["groups"][0]
    assert (group["ratings"], group["avg_rating"]) == (1, 0.5)
    assert idle.insert_feedback(1, "fk-early", 1.0, None, "f2")  # now derived
    group = idle.stats(1, EventFilter(), [])["groups"][0]
    assert (group["ratings"], group["avg_rating"]) == (2, 0.75)


def test_two_writers_on_one_database_count_each_event_once(store_backend: StoreBackend) -> None:
    """What several server processes on one database do: each derives what the other stored."""
    db = store_backend.fresh_db()
    a = store_backend.open(db, derive_delay=IDLE)
    b = store_backend.open(db, derive_delay=IDLE)
    key = key_of(a)
    for _ in range(3):
        a.insert_events(rows(4, key))
        b.insert_events(rows(3, key))
    assert count(a) == 21
    assert count(b) == 21
    b.insert_events(rows(2, key))
    assert count(a) == 23
    store_backend.close(a)
    store_backend.close(b)
    again = store_backend.open(db)
    assert count(again) == 23
    if store_backend.name == "sqlite":  # the file says every event is derived
        assert watermark(Path(db)) == (23, 23)


def test_an_event_that_cannot_be_derived_is_left_out_and_the_others_kept(
    sqlite_store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A row whose stored body is not an event (a file edited by hand, say) is logged and
    left out; it holds up neither the events around it nor those that come later."""
    key = key_of(sqlite_store)
    batch = rows(6, key)
    batch[3] = (*batch[3][:-1], "not an event")  # a plain row: its body is parsed
    assert sqlite_store.insert_events(batch) == 6
    with caplog.at_level(logging.ERROR, logger="llmtap.sqlite_store"):
        assert count(sqlite_store) == 5
    assert "seq 4 could not be derived" in caplog.text
    sqlite_store.insert_events(rows(1, key))
    assert count(sqlite_store) == 6  # the watermark moved past it


def test_kill_9_after_the_acknowledgement_loses_nothing_from_the_stats(tmp_path: Path) -> None:
    """A process stores events (``insert_events`` returned: the server would have answered
    2xx), is killed before it derives them; the next one to open the file derives them,
    once."""
    db = tmp_path / "crash.db"
    script = textwrap.dedent(
        f"""
        import sys, time
        from llmtap.store import KeyInfo, SQLiteStore
        from tests.test_derive import rows
        store = SQLiteStore({str(db)!r}, derive_delay=3600.0)
        key = KeyInfo(1, store.ensure_project("p"), "p", "dev")
        store.insert_events(rows(40, key))
        store.catch_up()
        store.insert_events(rows(25, key))
        print("stored", flush=True)
        time.sleep(60)
        """
    )
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "stored"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert watermark(db) == (40, 65)
    store = SQLiteStore(db)
    assert watermark(db) == (65, 65)
    assert count(store) == 65
    page, _ = store.list_events(1, EventFilter(q="zebra", limit=100))
    assert len(page) == 65
    store.close()
    again = SQLiteStore(db)
    assert count(again) == 65
    again.close()


def test_a_large_group_goes_in_whole_and_in_order(
    sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    """Rows are written a hundred per statement (see ``_bulk``): 250 rows, a duplicate among
    them, take the next seqs in the order they came."""
    key = key_of(sqlite_store)
    batch = rows(250, key)
    batch.insert(120, batch[7])
    assert sqlite_store.insert_events(batch) == 250
    conn = sqlite3.connect(tmp_path / "d.db")
    stored = [row[0] for row in conn.execute("SELECT id FROM events ORDER BY seq")]
    conn.close()
    assert stored == [row[0] for row in batch[:120] + batch[121:]]
    assert count(sqlite_store) == 250
