"""The store on a real SQLite file: migrations and the write path."""

from __future__ import annotations

import fcntl
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from llmtap.store import EventFilter, KeyInfo, open_store
from llmtap.store._migrations import SQLITE_MIGRATIONS, migrate_sqlite
from llmtap.store._sqlite import SQLiteStore

from .test_retention_store import dated


def test_blank_database_gets_every_step_once(tmp_path: Path) -> None:
    db = tmp_path / "blank.db"
    store = open_store(str(db))
    assert store.applied_migrations == [name for name, _ in SQLITE_MIGRATIONS]
    store.close()
    again = open_store(str(db))
    assert again.applied_migrations == []
    again.close()
    conn = sqlite3.connect(db)
    recorded = [row[0] for row in conn.execute("SELECT name FROM _llmtap_migrations")]
    assert recorded == [name for name, _ in SQLITE_MIGRATIONS]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_upgrade_from_the_first_schema_keeps_data(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrate_sqlite(conn, SQLITE_MIGRATIONS[:1])
    conn.execute("INSERT INTO projects (name, created_at) VALUES ('kept', '2026-01-01')")
    conn.close()
    store = open_store(str(db))
    assert store.applied_migrations == [name for name, _ in SQLITE_MIGRATIONS[1:]]
    assert store.ensure_project("kept") == 1
    store.close()


def test_a_failing_step_leaves_nothing_half_done(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    steps = [
        ("m900_good", ("CREATE TABLE a (x)",)),
        ("m901_bad", ("CREATE TABLE b (x)", "CREATE TABLE a (x)")),
    ]
    with pytest.raises(sqlite3.OperationalError):
        migrate_sqlite(conn, steps)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "a" in tables and "b" not in tables
    names = [row[0] for row in conn.execute("SELECT name FROM _llmtap_migrations")]
    assert names == ["m900_good"]


def test_writers_of_one_file_take_turns_through_its_lock_file(tmp_path: Path) -> None:
    """A store writes only while it holds the lock on ``<db>-writer``: while another process
    (here the test) holds it, the store waits, and it writes as soon as the lock is let go,
    not after a poll."""
    db = tmp_path / "turns.db"
    store = open_store(str(db))
    got = threading.Event()

    def write() -> None:
        store.ensure_project("second")
        got.set()

    with open(tmp_path / "turns.db-writer", "rb+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        thread = threading.Thread(target=write)
        thread.start()
        assert not got.wait(0.3)  # the store waits its turn
        fcntl.flock(lock, fcntl.LOCK_UN)
        released = time.perf_counter()
        assert got.wait(5)
        assert time.perf_counter() - released < 0.05
    thread.join()
    assert store.ensure_project("second") > 0
    store.close()


@pytest.mark.parametrize("sort", ["-latency_ms", "latency_ms", "-cost_usd", "-started_at"])
def test_each_sort_of_the_events_list_reads_an_index(tmp_path: Path, sort: str) -> None:
    """A page of events sorted by latency or cost reads the sort's expression index, not the
    whole project sorted: SQLite uses such an index only for the expression spelled as the
    index spells it (``COALESCE`` where it says ``ifnull`` took 2.3 s on a million events)."""
    store = SQLiteStore(tmp_path / "s.db")
    try:
        project = store.ensure_project("p")
        store.insert_events(dated(KeyInfo(1, project, "p", "dev"), [0, 1, 2]))
        reader = store._query_reader()
        statements: list[str] = []
        reader.set_trace_callback(lambda sql: statements.append(sql) if "ORDER BY" in sql else None)
        try:
            events, _ = store.list_events(project, EventFilter(sort=sort, limit=2))
        finally:
            reader.set_trace_callback(None)
        assert len(events) == 2
        (statement,) = statements
        plan = " ".join(row[-1] for row in reader.execute("EXPLAIN QUERY PLAN " + statement))
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        store.close()


def test_keys_with_long_values_stored_before_are_marked_overflowing(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    before = [name for name, _ in SQLITE_MIGRATIONS].index("m019_long_attribute_values")
    migrate_sqlite(conn, SQLITE_MIGRATIONS[:before])
    rows = [(1, "prompt", "p" * 201, 1), (1, "prompt", "short", 2), (1, "team", "blue", 3)]
    conn.executemany(
        "INSERT INTO event_attrs (project_id, key, value, seq) VALUES (?, ?, ?, ?)", rows
    )
    conn.execute("INSERT INTO attr_keys VALUES (1, 'team', 1, 0), (1, 'prompt', 1, 0)")
    conn.execute("INSERT INTO event_attrs VALUES (2, 'prompt', ?, 4)", ("q" * 300,))
    conn.close()
    open_store(str(db)).close()
    conn = sqlite3.connect(db)
    marked = conn.execute(
        "SELECT project_id, key, overflow FROM attr_keys ORDER BY 1, 2"
    ).fetchall()
    assert marked == [(1, "prompt", 1), (1, "team", 0), (2, "prompt", 1)]
