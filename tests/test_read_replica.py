"""``--read-db``: queries read from a real streaming replica of the suite's PostgreSQL
(``postgres_replica``, a hot standby made by ``pg_basebackup -R``), every write goes to the
primary (a hot standby refuses writes: one routed there would fail), a process reads its own
writes (feedback, deletes) at once, and the replica down fails reads with a 503 while ingest
goes on. SQLite refuses the option."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import psycopg
import pytest

from llmtap.store import EventFilter, event_row, open_store
from llmtap.wire import Event

from ._postgres import Postgres, Replica
from .conftest import LLMTAP, Server, free_port, start_server, stop_server
from .test_dashboard_http import login
from .test_server import event


@pytest.fixture
def databases(postgres: Postgres, postgres_replica: Replica) -> Iterator[tuple[str, str]]:
    """(primary URL, the same database's URL on the replica, once it is there)."""
    url = postgres.fresh_database()
    yield url, postgres_replica.has(urlsplit(url).path.lstrip("/"))
    postgres.drop(url)


def _until(check: Callable[[], Any], timeout: float = 30) -> Any:
    """``check()`` once it is truthy (replication is quick, not instant)."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "replication did not catch up in time"
        time.sleep(0.05)
    return found


def _replay(replica: str, paused: bool) -> None:
    with psycopg.connect(replica, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")


def _caught_up(primary: str, replica: str) -> None:
    """Return once the replica has replayed everything the primary has written so far."""
    with psycopg.connect(primary, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'").fetchone()
    assert row is not None
    with psycopg.connect(replica, autocommit=True) as conn:
        _until(
            lambda: (
                conn.execute("SELECT pg_last_wal_replay_lsn() - '0/0' >= %s", row).fetchone()
                == (True,)
            )
        )


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _ids(server: Server, key: str) -> set[str]:
    answer = server.get("/api/v1/events", key, limit=500)
    assert answer.status_code == 200, answer.text
    return {e["id"] for e in answer.json()["events"]}


def test_serve_reads_from_the_replica_and_sees_its_own_writes(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    primary, replica = databases
    password = "pw-" + uuid.uuid4().hex  # the suite's cluster trusts loopback: any is taken
    read_url = replica.replace("postgres@", f"postgres:{password}@", 1)
    # No alert or retention lease taken meanwhile (a write, which this process then reads
    # back from the primary until the replica has it): the test pauses the replica.
    quiet = {"LLMTAP_ALERT_INTERVAL": "0", "LLMTAP_RETENTION_INTERVAL": "0"}
    srv = start_server(tmp_path, db=primary, env=quiet, args=("--read-db", read_url))
    try:
        key = srv.new_key(project="shop")
        first = event(model="m-first", feedback_key="fk-first", latency_ms=20.0)
        assert srv.post("/api/v1/events", key, json={"events": [first]}).status_code == 200
        # Ingested on the primary, read from the replica once it has replayed it.
        _until(lambda: first["id"] in _ids(srv, key))
        stats = srv.get("/api/v1/stats", key, group_by="model").json()
        assert [(g["key"]["model"], g["count"]) for g in stats["groups"]] == [("m-first", 1)]
        with login(srv) as browser:
            _until(lambda: "m-first" in browser.get("/events", params={"project": "shop"}).text)

        # With the replica's replay paused, a new event is on the primary only: the API
        # does not list it, so the list is the replica's. (Paused once the replica has the
        # login's writes, and a query has seen it has them: else that query would rightly
        # read the primary.)
        _caught_up(primary, replica)
        assert first["id"] in _ids(srv, key)
        _replay(replica, paused=True)
        try:
            second = event(model="m-second")
            assert srv.post("/api/v1/events", key, json={"events": [second]}).status_code == 200
            time.sleep(0.5)  # ample for a read that would go to the primary
            assert second["id"] not in _ids(srv, key)
            # A feedback (a write of this process) is read back at once: until the replica
            # has replayed it, this process's queries go to the primary.
            sent = srv.post(
                "/api/v1/feedback", key, json={"feedback_key": "fk-first", "rating": 0.5}
            )
            assert sent.status_code == 200, sent.text
            one = srv.get(f"/api/v1/events/{first['id']}", key).json()
            assert [f["rating"] for f in one["feedback"]] == [0.5]
            assert second["id"] in _ids(srv, key)  # the primary's list
        finally:
            _replay(replica, paused=False)
        _until(lambda: second["id"] in _ids(srv, key))
    finally:
        log = stop_server(srv)
    assert "(queries read from postgresql://postgres:***@127.0.0.1" in log
    assert password not in log


def test_a_store_reading_from_a_hot_standby_writes_everything_to_the_primary(
    databases: tuple[str, str],
) -> None:
    """Everything a server writes, through a store whose reads go to a hot standby: a
    single write routed there would fail ("cannot execute ... in a read-only transaction")."""
    primary, replica = databases
    store = open_store(primary, read_db=replica)
    try:
        project = store.ensure_project("p")
        store.create_key("p", "dev", "hash-" + uuid.uuid4().hex, "lt_x", ["ingest", "read"])
        bodies = [
            event(model="m", feedback_key=f"fk-{i}", latency_ms=10.0 + i, attributes={"a": "b"})
            for i in range(30)
        ]
        rows = [event_row(Event.model_validate(b), project, "dev", None, None, 1) for b in bodies]
        assert store.insert_events(rows) == 30
        store.catch_up()
        assert store.insert_feedback(project, "fk-0", 1.0, "better", None)
        assert store.delete_events(project, ids=[bodies[1]["id"]]) == 1
        store.set_retention_days(project, 30)
        user = store.create_user("ana", "hash", project_id=project, role="viewer")
        assert user is not None
        # The queries, which read from the replica (and first derive, on the primary).
        everything = EventFilter(attributes={"a": "b"})
        _until(lambda: len(store.list_events(project, everything)[0]) == 29)
        stats = store.stats(project, EventFilter(), ["model"])
        assert stats["groups"][0]["count"] == 29
        assert store.get_event(project, bodies[0]["id"])["feedback"][0]["rating"] == 1.0
        assert store.templates(project) == []
        assert len(list(store.iter_events(project, EventFilter(q="nothing-matches")))) == 0
    finally:
        store.close()
    with psycopg.connect(replica, autocommit=True) as conn:  # what was written, replayed
        _until(lambda: conn.execute("SELECT count(*) FROM events").fetchone() == (29,))


def test_replica_down_fails_reads_with_503_and_ingest_goes_on(
    tmp_path: Path, databases: tuple[str, str], postgres_replica: Replica
) -> None:
    primary, replica = databases
    srv = start_server(tmp_path, db=primary, env={"LLMTAP_READ_DB": replica})
    try:
        key = srv.new_key()
        first = event()
        assert srv.post("/api/v1/events", key, json={"events": [first]}).status_code == 200
        _until(lambda: first["id"] in _ids(srv, key))
        postgres_replica.stop()
        try:
            # A connection to the replica is waited for (10 s, as on the primary), then 503.
            down = httpx2.get(f"{srv.url}/api/v1/events", headers=_auth(key), timeout=60)
            assert down.status_code == 503, down.text
            assert down.json()["error"].startswith("the read replica postgresql://")
            stats = httpx2.get(f"{srv.url}/api/v1/stats", headers=_auth(key), timeout=60)
            assert stats.status_code == 503, stats.text
            later = event()
            stored = srv.post("/api/v1/events", key, json={"events": [later]})
            assert stored.status_code == 200, stored.text
        finally:
            postgres_replica.start()
        # The pool replaces its broken connections (a request may wait for that).
        _until(
            lambda: (
                httpx2.get(f"{srv.url}/api/v1/events", headers=_auth(key), timeout=60).status_code
                == 200
            ),
            timeout=60,
        )
        _until(lambda: later["id"] in _ids(srv, key))
    finally:
        stop_server(srv)


def test_sqlite_refuses_read_db(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *LLMTAP,
            "serve",
            "--db",
            str(tmp_path / "x.db"),
            "--read-db",
            "postgresql://u:secret-pw@127.0.0.1/x",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "--read-db (LLMTAP_READ_DB) needs a PostgreSQL store" in done.stderr
    assert "secret-pw" not in done.stderr + done.stdout
    with pytest.raises(ValueError, match="needs a PostgreSQL store"):
        open_store(str(tmp_path / "y.db"), read_db="postgresql://127.0.0.1/x")
    with pytest.raises(ValueError, match="must be a postgresql:// URL"):
        open_store("postgresql://127.0.0.1/x", read_db=str(tmp_path / "z.db"))
