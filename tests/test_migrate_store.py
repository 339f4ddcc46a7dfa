"""``llmtap migrate-store`` as a user runs it: SQLite -> PostgreSQL -> SQLite keeps every
answer the store gives (events, feedback, keys, prices, templates, stats, boards, alerts, test
sets, users), a copy killed midway resumes, and a count that differs exits non-zero."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg

from llmtap.server.ingest import prepare
from llmtap.store import EventFilter, KeyInfo, Store, open_store
from llmtap.wire import Event, make_event

from ._postgres import Postgres
from .conftest import LLMTAP
from .test_cli import llmtap_cli
from .test_retention_store import dated


def fill(db: str, n: int) -> None:
    store = open_store(db)
    try:
        pid = store.ensure_project("p")
        key = KeyInfo(1, pid, "p", "dev")
        store.create_key("p", "prod", "h" * 64, "lt_abc", ["ingest", "read"])
        store.create_user("ann", "pbkdf2$x", is_owner=True)
        store.insert_events(dated(key, [i % 40 for i in range(n)]))
        store.insert_feedback(pid, "fk-0-0", 0.25, "better", "f1")
        prices = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
        store.set_price_override(pid, "gpt-4o-mini", 0, prices, lambda o: lambda e: 0.5)
        store.create_board(pid, "b1", "Board", {"panels": []}, "ann")
        store.put_alert_item(pid, "rule", "errors", {"name": "errors", "threshold": 1})
        testset = store.create_testset(pid, "set", ["exact"])
        store.add_cases(pid, testset, [{"input": {"x": 1}, "expected": "y"}])
    finally:
        store.close()


def answers(db: str) -> dict[str, Any]:
    """What the store answers through its contract, about everything it holds."""
    store = open_store(db)
    try:
        pid = store.project_id("p")
        assert pid is not None
        events, _ = store.list_events(pid, EventFilter(limit=10_000))
        ids = sorted(e["id"] for e in events)
        return {
            "ids": ids,
            "event": store.get_event(pid, ids[0]),
            "feedback": [(f["feedback_key"], f["rating"]) for f in store.list_feedback(pid, 100)],
            "stats": store.stats(pid, EventFilter(), ["model"]),
            "by_user": store.stats(pid, EventFilter(), ["attributes.user"]),
            "search": len(store.list_events(pid, EventFilter(q="zebra", limit=10_000))[0]),
            "templates": store.templates(pid),
            "keys": store.list_keys(pid),
            "prices": store.price_overrides(pid),
            "boards": [b["name"] for b in store.list_boards(pid)],
            "alerts": [(a["name"], a["body"]) for a in store.alert_items(pid, "rule")],
            "testsets": [t["name"] for t in store.list_testsets(pid)],
            "users": [u["name"] for u in store.list_users()],
            "counts": {t["name"]: store.count_rows(t["name"]) for t in store.tables()},
        }
    finally:
        store.close()


def migrate(source: str, target: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return llmtap_cli("migrate-store", "--from", source, "--to", target, *extra)


def test_sqlite_to_postgresql_and_back_keeps_every_answer(
    tmp_path: Path, postgres: Postgres
) -> None:
    first = str(tmp_path / "first.db")
    fill(first, 120)
    before = answers(first)
    assert before["search"] == 120 and before["feedback"] and before["prices"]
    url = postgres.fresh_database()
    there = migrate(first, url)
    assert there.returncode == 0, there.stderr
    assert "counts match" in there.stderr
    assert answers(url) == before
    back = str(tmp_path / "back.db")
    again = migrate(url, back, "--batch-size", "7")
    assert again.returncode == 0, again.stderr
    assert answers(back) == before
    # The copy is a working store: new events take new seqs and count once.
    store: Store = open_store(back)
    try:
        pid = store.project_id("p")
        assert pid is not None
        assert store.insert_events(dated(KeyInfo(1, pid, "p", "dev"), [1, 2])) == 2
        assert store.stats(pid, EventFilter(), [])["groups"][0]["count"] == 122
    finally:
        store.close()
    # Run again over a complete copy that has changed since: the counts differ, exit 1.
    rerun = migrate(url, back)
    assert rerun.returncode == 1
    assert "events: 122 rows in the target, 120 in the source" in rerun.stderr
    # PostgreSQL's identities were moved past the ids copied: new rows take new ids.
    pg: Store = open_store(url)
    try:
        pid = pg.project_id("p")
        assert pid is not None
        assert pg.insert_events(dated(KeyInfo(1, pid, "p", "dev"), [3])) == 1
        assert pg.insert_feedback(pid, "fk-3-0", 1.0, None, "f2")
        pg.create_key("p", "dev", "k" * 64, "lt_new", ["read"])
        assert pg.stats(pid, EventFilter(), [])["groups"][0]["count"] == 121
    finally:
        pg.close()


def test_text_postgresql_cannot_hold_is_copied_as_its_store_keeps_it(
    tmp_path: Path, postgres: Postgres
) -> None:
    """NUL in a model's name and an attribute's value: PostgreSQL refuses it in text, so the
    copy's batches that hold it go the careful way (the way a PostgreSQL store keeps such
    text), the others straight in. Counts match; the event is found by what it was sent with."""
    source = str(tmp_path / "nul.db")
    fill(source, 30)
    store: Store = open_store(source)
    try:
        pid = store.project_id("p")
        assert pid is not None
        event = make_event(
            id="with-nul",
            api="chat",
            provider="openai",
            model="mini\x00x",
            request={"messages": [{"role": "user", "content": "zebra"}]},
            status="ok",
            started_at="2026-01-02T00:00:00+00:00",
            attributes={"user": "u\x00x"},
        )
        key = KeyInfo(1, pid, "p", "dev")
        assert store.insert_events([prepare(Event.model_validate(event), key, 0, None)]) == 1
    finally:
        store.close()
    url = postgres.fresh_database()
    copied = migrate(source, url, "--batch-size", "10")
    assert copied.returncode == 0, copied.stderr
    assert "counts match" in copied.stderr
    pg: Store = open_store(url)
    try:
        pid = pg.project_id("p")
        assert pid is not None
        by_model, _ = pg.list_events(pid, EventFilter(model="mini\x00x"))
        by_user, _ = pg.list_events(pid, EventFilter(attributes={"user": "u\x00x"}))
        assert [e["id"] for e in by_model] == [e["id"] for e in by_user] == ["with-nul"]
        assert pg.count_rows("events") == 31
    finally:
        pg.close()


def _copied(target: str) -> int:
    """Events in the target of a copy under way (0 while its schema is being made)."""
    try:
        if target.startswith("postgresql://"):
            with psycopg.connect(target, connect_timeout=5) as conn:
                return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])  # type: ignore[index]
        if not Path(target).exists():
            return 0
        with sqlite3.connect(target, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except (sqlite3.OperationalError, psycopg.Error):  # the schema is being made
        return 0


def _kill_midway_and_resume(source: str, target: str) -> None:
    fill(source, 1500)
    before = answers(source)
    process = subprocess.Popen(
        [*LLMTAP, "migrate-store", "--from", source, "--to", target, "--batch-size", "10"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ,
    )
    deadline = time.monotonic() + 60
    copied = 0
    while time.monotonic() < deadline and process.poll() is None:
        copied = _copied(target)
        if copied >= 200:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 200 <= copied < 1500  # killed midway
    resumed = migrate(source, target, "--batch-size", "10")
    assert resumed.returncode == 0, resumed.stderr
    assert answers(target) == before


def test_a_copy_killed_midway_resumes_and_loses_nothing(tmp_path: Path) -> None:
    _kill_midway_and_resume(str(tmp_path / "src.db"), str(tmp_path / "dst.db"))


def test_a_copy_into_postgresql_killed_midway_resumes_and_loses_nothing(
    tmp_path: Path, postgres: Postgres
) -> None:
    """Into PostgreSQL, each batch is copied straight in, or, when some of it is there
    already (the batch a kill cut), inserted row by row skipping those."""
    _kill_midway_and_resume(str(tmp_path / "src.db"), postgres.fresh_database())


def test_a_copy_out_of_postgresql_killed_midway_resumes_and_loses_nothing(
    tmp_path: Path, postgres: Postgres
) -> None:
    _kill_midway_and_resume(postgres.fresh_database(), str(tmp_path / "dst.db"))


def test_a_target_that_holds_data_is_refused(tmp_path: Path) -> None:
    source, target = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    fill(source, 3)
    fill(target, 3)
    result = migrate(source, target)
    assert result.returncode == 1
    assert "copy into an empty store" in result.stderr
    # A user alone (made on the new server before the copy): the source's user of that name
    # would have been skipped, and its roles given to the target's.
    alone = str(tmp_path / "c.db")
    store = open_store(alone)
    store.create_user("alice", "not-a-hash")
    store.close()
    result = migrate(source, alone)
    assert result.returncode == 1 and "(users)" in result.stderr, result.stderr


def test_an_unreachable_target_is_one_line_without_its_password(tmp_path: Path) -> None:
    source = str(tmp_path / "a.db")
    fill(source, 1)
    result = migrate(source, "postgresql://me:sekrit-pw-42@127.0.0.1:1/nowhere")
    assert result.returncode != 0
    assert "sekrit-pw-42" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_a_missing_source_file_is_a_usage_error_and_makes_nothing(tmp_path: Path) -> None:
    result = migrate(str(tmp_path / "typo.db"), str(tmp_path / "b.db"))
    assert result.returncode == 2
    assert "no SQLite file" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_every_foreign_key_points_at_a_table_copied_first(tmp_path: Path) -> None:
    """A copy writes ``projects`` and ``users`` first, then the rest by name: a table whose
    rows point at another table must be placed first too (``_copy._FIRST``)."""
    store = open_store(str(tmp_path / "s.db"))
    try:
        order = [t["name"] for t in store.tables()]
    finally:
        store.close()
    assert order[:2] == ["projects", "users"]
    with sqlite3.connect(tmp_path / "s.db") as conn:
        for name in order:
            for fk in conn.execute(f"PRAGMA foreign_key_list({name})"):
                assert order.index(fk[2]) < order.index(name), (name, fk[2])
