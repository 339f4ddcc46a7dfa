"""What only the PostgreSQL backend has: its SQL histogram functions, a schema ready to be
sharded by project, migrations applied once by processes starting together, passwords never
shown, several ``llmtap serve`` processes on one database, and a server restarted under them.
Everything else it does is checked by the suite run on both backends (``store``, ``server``)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmtap
from llmtap.fake_provider import FakeProvider
from llmtap.store import EventFilter, _hist, open_store
from llmtap.store._pg_migrations import PG_MIGRATIONS

from ._postgres import Postgres
from ._receivers import wait_until
from .conftest import LLMTAP, Server, free_port, start_server, stop_server, wait_for
from .test_server import event

# Tables that are small and read everywhere: Citus would replicate them to every node
# (reference tables), so they need no distribution column in their keys.
REFERENCE_TABLES = {
    "_llmtap_migrations",
    "meta",
    "projects",
    "api_keys",
    "users",
    "memberships",
    "invitations",
    "sessions",
    "login_failures",
    "alert_lease",  # one row per evaluator lease: who evaluates every project's alerts
}


def _blank(postgres: Postgres) -> str:
    """A new database without llmtap's schema (``fresh_database`` gives a migrated one)."""
    name = f"blank_{uuid.uuid4().hex[:12]}"
    postgres.admin(f'CREATE DATABASE "{name}"')
    return postgres.url_of(name)


@pytest.fixture
def database(postgres: Postgres) -> Any:
    url = postgres.fresh_database()
    yield url
    postgres.drop(url)


histograms = st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), max_size=30).map(
    _hist.histogram
)


@settings(max_examples=150, deadline=None)
@given(a=histograms, b=histograms)
def test_sql_histogram_sum_is_pythons(postgres: Postgres, a: int, b: int) -> None:
    """``llmtap_hist_add`` and ``llmtap_hist_sum`` in plpgsql merge the stored blobs as
    ``_hist`` does in Python (big-integer addition)."""
    url = _shared_database(postgres)
    with psycopg.connect(url, autocommit=True) as conn:
        blobs = [_hist.encode(a), _hist.encode(b), _hist.encode(a)]
        (added,) = conn.execute(
            "SELECT llmtap_hist_add(%s::bytea, %s::bytea)", blobs[:2]
        ).fetchone()  # type: ignore[misc]
        (summed,) = conn.execute(
            "SELECT llmtap_hist_sum(x) FROM unnest(%s::bytea[]) x", (blobs,)
        ).fetchone()  # type: ignore[misc]
    assert _hist.decode(added) == a + b
    assert _hist.decode(summed) == 2 * a + b


_SHARED: dict[int, str] = {}


def _shared_database(postgres: Postgres) -> str:
    """One migrated database for the examples of a property (made once per session)."""
    if id(postgres) not in _SHARED:
        _SHARED[id(postgres)] = postgres.fresh_database()
    return _SHARED[id(postgres)]


def test_every_key_of_project_data_holds_the_project(database: str) -> None:
    """Sharding by project (Citus) needs the distribution column in every primary key and
    unique index of the distributed tables: all but the small reference tables."""
    with psycopg.connect(database) as conn:
        # A partition of events is no table of its own (its keys are checked below).
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                " AND table_name NOT IN (SELECT relname FROM pg_class WHERE relispartition)"
            )
        }
        assert {"events", "agg", "feedback", "event_attrs", "templates"} <= tables
        unique = conn.execute(
            "SELECT t.relname, i.relname, pg_get_indexdef(i.oid)"
            " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE n.nspname = 'public' AND x.indisunique"
        ).fetchall()
    missing = [
        f"{table}.{index}: {definition}"
        for table, index, definition in unique
        if table not in REFERENCE_TABLES and "project_id" not in definition.split("(", 1)[1]
    ]
    assert len(unique) > 10
    assert missing == []
    # Every table is named: a new one must be placed on one side or the other.
    assert tables - REFERENCE_TABLES <= {
        "events",
        "feedback",
        "event_attrs",
        "events_text",
        "agg_dims",
        "attr_keys",
        "attr_values",
        "agg",
        "templates",
        "price_overrides",
        "unpriced",
        "context_spans",
        "otlp_held",
        "alert_items",
        "alert_states",
        "alert_history",
        "alert_outbox",
        "boards",
        "board_versions",
        "board_shares",
        "testsets",
        "testcases",
        "testruns",
        "testresults",
        "derive_queue",
        "event_ids",
    }


def test_processes_starting_together_migrate_once(postgres: Postgres) -> None:
    url = _blank(postgres)
    start = threading.Barrier(4)

    def open_one(_: int) -> list[str]:
        start.wait()
        store = open_store(url)
        try:
            return store.applied_migrations
        finally:
            store.close()

    with ThreadPoolExecutor(4) as pool:
        applied = list(pool.map(open_one, range(4)))
    assert sorted(applied, key=len)[-1] == [name for name, _ in PG_MIGRATIONS]
    assert sum(1 for a in applied if a) == 1  # one opener applied it, the others found it
    postgres.drop(url)


def _password_url(url: str, password: str) -> str:
    # The suite's cluster trusts loopback: any password is accepted, and must never show.
    return url.replace("postgres@", f"postgres:{password}@", 1)


def test_serve_never_shows_the_password(tmp_path: Path, database: str) -> None:
    password = "pw-" + uuid.uuid4().hex
    srv = start_server(tmp_path, db=_password_url(database, password))
    try:
        key = srv.new_key()
        assert srv.post("/api/v1/events", key, json={"events": [event()]}).status_code == 200
    finally:
        log = stop_server(srv)
    assert "llmtap postgresql store: postgresql://postgres:***@" in log
    assert password not in log


def _serve(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LLMTAP, "serve", "--db", url, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_with_postgresql_down_is_one_clear_line(tmp_path: Path) -> None:
    password = "pw-" + uuid.uuid4().hex
    url = f"postgresql://llmtap:{password}@127.0.0.1:{free_port()}/llmtap"
    done = _serve(url)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "cannot open the PostgreSQL store postgresql://llmtap:***@127.0.0.1" in lines[0]
    assert password not in done.stderr + done.stdout
    keys = subprocess.run(
        [*LLMTAP, "keys", "create", "--project", "p", "--db", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert keys.returncode != 0 and len(keys.stderr.strip().splitlines()) == 1
    assert password not in keys.stderr + keys.stdout


@pytest.mark.parametrize(
    "shape",
    [
        "postgresql://llmtap@127.0.0.1:{port}/llmtap?password={pw}",  # down, password in the query
        "postgresql://llmtap:{pw}%zz@127.0.0.1:{port}/llmtap",  # a URL libpq cannot parse
        "postgresql://llmtap@127.0.0.1:{port}/llmtap?password={pw}&nonsense=1",
    ],
)
def test_a_bad_or_unreachable_url_is_one_line_without_its_password(shape: str) -> None:
    password = "pw-" + uuid.uuid4().hex
    done = _serve(shape.format(port=free_port(), pw=password))
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "cannot open the PostgreSQL store" in done.stderr
    assert password not in done.stderr + done.stdout


_MODELS = ("gpt-4o-mini", "gpt-4o", "in-house-7b")  # two priced, one not
# Per group, what the aggregates must hold exactly (percentiles come from histograms).
_EXACT = (
    *("count", "errors", "input_tokens", "output_tokens", "cached_tokens"),
    *("cost_usd", "unpriced_events"),
)


def _call(i: int) -> dict[str, Any]:
    """A call with something in every aggregate: model, template, an attribute, tokens,
    a cost or none, a latency, now and then an error."""
    failed = i % 11 == 0
    return event(
        model=_MODELS[i % 3],
        latency_ms=5.0 + (i * 37) % 900,
        status="error" if failed else "ok",
        error={"type": "RateLimitError", "message": "slow down"} if failed else None,
        usage={"input_tokens": 10 + i % 50, "output_tokens": 3 + i % 7, "cached_tokens": i % 5},
        prompt_template_name=f"t{i % 4}",
        attributes={"team": f"team{i % 5}"},
    )


def _assert_aggregates_exact(database: str, key: str) -> dict[str, int]:
    """The aggregates (what stats read) hold what the stored events say, by model, template,
    attribute and day: the same stats computed from the events themselves (a filter on the
    api, which the aggregates do not keep, makes them). The events stored, by model."""
    store = open_store(database)
    try:
        found = store.key_by_hash(_hash(key))
        assert found is not None
        pid = found.project_id
        stored: dict[str, int] = {}
        for e in store.iter_events(pid, EventFilter()):
            stored[e["model"]] = stored.get(e["model"], 0) + 1
        for group_by in (["model"], ["prompt_template_name"], ["attributes.team"], ["day"]):
            kept = store.stats(pid, EventFilter(), group_by)
            counted = store.stats(pid, EventFilter(api="chat"), group_by)
            assert (kept["source"], counted["source"]) == ("aggregates", "events")
            assert [[g["key"], *(g[k] for k in _EXACT)] for g in kept["groups"]] == [
                [g["key"], *(g[k] for k in _EXACT)] for g in counted["groups"]
            ], group_by
        return stored
    finally:
        store.close()


def test_keys_create_and_serve_find_postgresql_in_llmtap_db(database: str) -> None:
    """``LLMTAP_DB`` names the store for every command: a key made by ``llmtap keys create``
    on PostgreSQL works on ``llmtap serve`` started with no ``--db``."""
    env = {**os.environ, "LLMTAP_DB": database}
    made = subprocess.run(
        [*LLMTAP, "keys", "create", "--project", "env", "--scope", "ingest", "--scope", "read"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    port = free_port()
    process = subprocess.Popen(
        [*LLMTAP, "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    srv = Server(f"http://127.0.0.1:{port}", database, process, None)
    try:
        wait_for(srv.url + "/healthz")
        sent = event()
        assert srv.post("/api/v1/events", key, json={"events": [sent]}).status_code == 200
        assert [e["id"] for e in srv.get("/api/v1/events", key).json()["events"]] == [sent["id"]]
    finally:
        process.terminate()
        _, said = process.communicate(timeout=10)
    assert "postgresql" in said.lower()  # the store it opened, named on start
    store = open_store(database)
    try:
        assert store.project_id("env") is not None
    finally:
        store.close()


def _stats(server: Server, key: str) -> dict[str, Any]:
    answer = server.get("/api/v1/stats", key, group_by="model")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_two_servers_on_one_database_store_a_batch_posted_to_both_once(
    tmp_path: Path, database: str
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_server(tmp_path / "a", db=database)
    b = start_server(tmp_path / "b", db=database)
    try:
        key = a.new_key()
        batches = [[_call(i) for i in range(50)] for _ in range(8)]
        start = threading.Barrier(16)

        def post(job: tuple[Server, list[dict[str, Any]]]) -> int:
            srv, batch = job
            start.wait()
            return srv.post("/api/v1/events", key, json={"events": batch}, timeout=60).status_code

        # Each batch to both servers at once, every batch at the same time.
        jobs = [(srv, batch) for batch in batches for srv in (a, b)]
        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(post, jobs)) == {200}
        for srv in (a, b):
            stats = _stats(srv, key)
            counts = {g["key"]["model"]: g["count"] for g in stats["groups"]}
            assert counts == dict(zip(_MODELS, (8 * 17, 8 * 17, 8 * 16), strict=True))
            listed = srv.get("/api/v1/events", key, limit=500).json()["events"]
            assert len(listed) == 400
            assert len({e["id"] for e in listed}) == 400
    finally:
        stop_server(a)
        stop_server(b)
    assert sum(_assert_aggregates_exact(database, key).values()) == 400


def test_ingest_answers_503_while_postgresql_restarts_and_recovers(
    tmp_path: Path, postgres: Postgres, provider: FakeProvider
) -> None:
    """PostgreSQL stopped and started under a server that an app's llmtap SDK records its
    calls to all along: ingest answers 503 meanwhile, the SDK keeps those batches and sends
    them again, and every call the app made is stored once the pool has reconnected."""
    if postgres.cluster is None:
        pytest.fail("this test stops and starts the server: it needs the suite's own cluster")
    url = postgres.fresh_database()
    srv = start_server(tmp_path, db=url)
    app: llmtap.Client | None = None
    try:
        key = srv.new_key()
        first = event()
        assert srv.post("/api/v1/events", key, json={"events": [first]}).status_code == 200
        app = llmtap.Client(
            api_key="sk-fake",
            base_url=provider.base_url,
            llmtap={"api_key": key, "url": srv.url, "flush_interval": 0.05,
                    "spool_dir": str(tmp_path / "spool")},
        )  # fmt: skip
        made: list[str] = []
        stop = threading.Event()

        def calls(client: llmtap.Client) -> None:
            while not stop.is_set():
                answer = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
                made.append(answer.model_extra["llmtap_feedback_key"])
                time.sleep(0.02)

        caller = threading.Thread(target=calls, args=(app,))
        caller.start()
        while len(made) < 5:
            time.sleep(0.01)
        postgres.cluster.stop()
        try:
            down = srv.post("/api/v1/events", key, json={"events": [event()]}, timeout=60)
            assert down.status_code == 503, down.text
            assert down.json()["ok"] is False and down.json()["status"] == 503
            assert srv.get("/healthz", key).status_code == 200  # the process itself lives
            during = len(made)
            time.sleep(1.0)  # the app goes on calling; its batches are refused
            assert len(made) > during
        finally:
            postgres.cluster.start()
        # The pool replaces its broken connections: ingest works again, nothing was lost.
        again = event()
        deadline = time.monotonic() + 30
        while True:
            answer = srv.post("/api/v1/events", key, json={"events": [again]}, timeout=30)
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert answer.status_code == 200, answer.text
        ids = {e["id"] for e in srv.get("/api/v1/events", key).json()["events"]}
        assert {first["id"], again["id"]} <= ids
        stop.set()
        caller.join(30)
        assert app.flush(60), app.stats()
        sent = app.stats()
        assert sent.delivered == sent.queued == len(made) and sent.dropped == sent.failed == 0
        stored, cursor = [], None
        while True:  # every page
            page = srv.get(
                "/api/v1/events", key, limit=100, **({"cursor": cursor} if cursor else {})
            )
            stored += page.json()["events"]
            cursor = page.json()["next_cursor"]
            if not cursor:
                break
        assert sorted(e["feedback_key"] for e in stored if e["feedback_key"]) == sorted(made)
    finally:
        if app is not None:
            app.close()
        stop_server(srv)
        postgres.drop(url)


def test_a_store_reopened_reads_what_another_wrote(postgres: Postgres, database: str) -> None:
    """No state lives in a process: a second store on the database sees the first's events
    in its stats, templates and searches at once."""
    from llmtap.store import event_row
    from llmtap.wire import Event

    one = open_store(database)
    two = open_store(database)
    try:
        project = one.ensure_project("p")
        body = event(request={"messages": [{"role": "user", "content": "Zebra crossing"}]})
        row = event_row(Event.model_validate(body), project, "dev", None, None, 1)
        assert one.insert_events([row]) == 1
        assert two.insert_events([row]) == 0
        found, _ = two.list_events(project, EventFilter(q="zebra"))
        assert [e["id"] for e in found] == [body["id"]]
        assert two.stats(project, EventFilter(), [])["groups"][0]["count"] == 1
    finally:
        one.close()
        two.close()


def test_pooled_connections_postgresql_ended_are_replaced_before_use(
    postgres: Postgres, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection is lent with no round trip when it is idle and sound, and replaced when
    PostgreSQL ended it (a restart, an idle timeout, an administrator's kill): every read
    after the kill succeeds, on a new backend."""
    import psycopg
    from psycopg_pool import ConnectionPool

    pinged: list[Any] = []
    ping = ConnectionPool.check_connection

    def counted(conn: Any) -> None:
        pinged.append(conn)
        ping(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counted))

    def backends() -> set[int]:
        with psycopg.connect(database, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            ).fetchall()
        return {pid for (pid,) in rows}

    store = open_store(database)
    try:
        store.set_meta("probe", "yes")
        pinged.clear()
        for _ in range(5):  # a read: one statement on a connection the pool lends
            assert store.get_meta("probe") == "yes"
        assert pinged == []  # sound and idle: lent as they were
        before = backends()
        assert before
        name = database.rsplit("/", 1)[1]
        postgres.admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )
        wait_until(lambda: not (backends() & before), timeout=10, what="the backends to end")
        for _ in range(5):  # each of the pool's connections checked, and replaced
            assert store.get_meta("probe") == "yes"
        assert pinged and backends() and not (backends() & before)
    finally:
        store.close()


def test_kill_9_of_a_server_mid_batch_leaves_the_aggregates_exact(
    tmp_path: Path, database: str
) -> None:
    """Events and their place in the derive queue commit together, and a chunk's derived
    rows with its removal from the queue: a process killed mid-batch, or mid-derivation,
    leaves no event missing from the stats (or counted twice)."""
    (tmp_path / "a").mkdir()
    srv = start_server(tmp_path / "a", db=database)
    key = srv.new_key()
    acknowledged: list[str] = []
    stop = threading.Event()

    def flood(worker: int) -> None:
        while not stop.is_set():
            batch = [_call(worker + i) for i in range(200)]
            try:
                answer = srv.post("/api/v1/events", key, json={"events": batch}, timeout=30)
            except Exception:  # the server was killed under this request
                return
            if answer.status_code == 200:
                acknowledged.extend(e["id"] for e in batch)

    threads = [threading.Thread(target=flood, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 400 and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.process.kill()  # kill -9, batches in flight
    srv.process.wait()
    stop.set()
    for t in threads:
        t.join(60)
    assert len(acknowledged) >= 400
    store = open_store(database)
    try:
        project = store.key_by_hash(_hash(key))
        assert project is not None
        ids = {e["id"] for e in store.iter_events(project.project_id, EventFilter())}
        assert set(acknowledged) <= ids  # nothing acknowledged is lost
    finally:
        store.close()
    assert sum(_assert_aggregates_exact(database, key).values()) == len(ids)


def _hash(key: str) -> str:
    from llmtap.server.auth import hash_key

    return hash_key(key)
