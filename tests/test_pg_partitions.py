"""PostgreSQL's events partitioned by month (``_pg_partitions``), on a real cluster: the
upgrade of a pg006 store with events keeps every row and every answer; retention drops a
month no project keeps, deletes by rows the rest; events of any date are accepted; ids stay
unique when the same one is posted to two stores at once, even with another date."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from llmtap.server.ingest import prepare
from llmtap.server.retention import Purger
from llmtap.store import EventFilter, KeyInfo, Store, open_store
from llmtap.store._common import EVENT_COLUMNS
from llmtap.store._pg import param
from llmtap.store._pg_migrations import PG_MIGRATIONS, migrate_postgres
from llmtap.wire import Event, make_event

from ._postgres import Postgres
from .test_testsets_store import _case

DAY = timedelta(days=1)
NOW = datetime.now(timezone.utc)


def rows_at(key: KeyInfo, moments: list[datetime], word: str = "zebra") -> list[tuple[Any, ...]]:
    """One event row per moment, each with a feedback key, an attribute and a word."""
    out = []
    for i, moment in enumerate(moments):
        event = Event.model_validate(
            make_event(
                id=str(uuid.uuid4()),
                api="chat",
                provider="openai",
                model="gpt-4o-mini",
                request={"messages": [{"role": "user", "content": f"{word} question {i}"}]},
                output_text="an answer",
                status="ok" if i % 3 else "error",
                started_at=moment.isoformat(),
                latency_ms=100.0 + i,
                usage={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
                feedback_key=f"fk-{word}-{i}",
                attributes={"user": f"u{i % 2}"},
                prompt_template_name="greet",
                template_text="hello {name}",
                template_params={"name": "x"},
            )
        )
        out.append(prepare(event, key, 0, None))
    return out


def month_name(moment: datetime) -> str:
    return f"events_p{moment.year:04d}{moment.month:02d}"


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relkind = 'r'")}


def answers(store: Store, pid: int, ids: list[str]) -> dict[str, Any]:
    """What the queries say of a project: lists, filters, search, stats, single events."""
    f = EventFilter(limit=1000)
    listed = store.list_events(pid, f)[0]

    def ids_of(**kw: Any) -> list[str]:
        return [e["id"] for e in store.list_events(pid, EventFilter(limit=1000, **kw))[0]]

    return {
        "list": [(e["id"], e["started_at"]) for e in listed],
        "search": ids_of(q="zebra"),
        "attr": ids_of(attributes={"user": "u1"}),
        "errors": ids_of(status="error"),
        "by_latency": [
            e["id"] for e in store.list_events(pid, EventFilter(limit=1000, sort="latency_ms"))[0]
        ],
        "stats": store.stats(pid, EventFilter(), ["status"])["groups"],
        "daily": store.stats(pid, EventFilter(), ["day"])["groups"],
        "one": [store.get_event(pid, i) for i in ids[:5]],
        "oldest": store.oldest_event_us(pid),
        "templates": store.templates(pid),
    }


def test_upgrade_from_pg006_keeps_every_row_seq_and_answer(postgres: Postgres) -> None:
    # A store at pg006, with events in it (stored as pg006's ingest did: queued to derive).
    name = f"up_{uuid.uuid4().hex[:12]}"
    postgres.admin(f'CREATE DATABASE "{name}"')
    old_url = postgres.url_of(name)
    with psycopg.connect(old_url, autocommit=True) as conn:
        migrate_postgres(conn, PG_MIGRATIONS[:6])
        pid = conn.execute(
            "INSERT INTO projects (name, created_at) VALUES ('p', 'now') RETURNING id"
        ).fetchone()[0]
    key = KeyInfo(1, pid, "p", "dev")
    moments = [NOW - DAY * d for d in (0, 1, 40, 41, 100, 400)] + [
        datetime(2001, 6, 1, tzinfo=timezone.utc),
        datetime(2099, 6, 1, tzinfo=timezone.utc),
    ]
    # Three events a moment, none at the same microsecond (ties list in seq order, which
    # differs between the two ways of storing them).
    rows = rows_at(key, [m + timedelta(seconds=k) for k in range(3) for m in moments])
    ids = [r[EVENT_COLUMNS.index("id")] for r in rows]
    with psycopg.connect(old_url, autocommit=True) as conn:
        # pg006's columns: those later steps add are left out.
        had = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'"
            )
        }
        kept = [i for i, c in enumerate(EVENT_COLUMNS) if c in had]
        columns = ", ".join(EVENT_COLUMNS[i] for i in kept)
        marks = ", ".join(["%s"] * len(kept))
        for row in rows:
            conn.execute(
                f"INSERT INTO events ({columns}) VALUES ({marks})", [param(row[i]) for i in kept]
            )
        conn.execute("INSERT INTO derive_queue SELECT project_id, seq FROM events")
        before = sorted(conn.execute("SELECT seq, id, body FROM events").fetchall())

    # The same events stored in a store made new, to compare every answer with.
    reference = open_store(postgres.fresh_database())
    upgraded = open_store(old_url)
    try:
        assert upgraded.applied_migrations == [name for name, _ in PG_MIGRATIONS[6:]]
        ref_pid = reference.ensure_project("p")
        assert ref_pid == pid
        reference.insert_events(rows)
        assert answers(upgraded, pid, ids) == answers(reference, pid, ids)
        with psycopg.connect(old_url) as conn:
            after = sorted(conn.execute("SELECT seq, id, body FROM events").fetchall())
            in_default = conn.execute("SELECT count(*) FROM events_default").fetchone()[0]
        assert after == before
        assert in_default == 6  # 2001 and 2099; the other months have their partition
        have = tables(old_url)
        assert {month_name(m) for m in moments[:6]} <= have
        assert "events_unpartitioned" not in have
        # Ids stay unique across the upgrade; a new event takes a seq past the old ones.
        assert upgraded.insert_events(rows[:4]) == 0
        (new,) = rows_at(key, [NOW])
        assert upgraded.insert_events([new]) == 1
        seq = upgraded.get_event(pid, new[EVENT_COLUMNS.index("id")])
        assert seq is not None
        with psycopg.connect(old_url) as conn:
            top = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
        assert top == before[-1][0] + 1
    finally:
        upgraded.close()
        reference.close()
        postgres.drop(old_url)


def test_retention_drops_a_month_no_project_keeps_and_deletes_the_rest_by_rows(
    postgres: Postgres,
) -> None:
    url = postgres.fresh_database()
    store = open_store(url)
    try:
        a = store.ensure_project("a")
        b = store.ensure_project("b")
        store.set_retention_days(b, 0)  # b keeps its events forever
        cutoff = NOW - 30 * DAY
        first = cutoff.replace(day=1, hour=12, minute=0, second=0, microsecond=0)
        dropped_month = first - 40 * DAY  # two months before the cut-off's month, or so
        shared_month = first - 100 * DAY  # a's and b's
        partly = cutoff - timedelta(seconds=5)  # the cut-off's own month, partly kept
        ka, kb = KeyInfo(1, a, "a", "dev"), KeyInfo(2, b, "b", "dev")
        gone = rows_at(ka, [dropped_month + i * timedelta(minutes=1) for i in range(7)], "gone")
        shared = rows_at(ka, [shared_month], "shared")
        kept_b = rows_at(kb, [shared_month, dropped_month - 30 * DAY], "bee")
        edge = rows_at(ka, [partly], "edge")
        recent = rows_at(ka, [NOW - DAY], "recent")
        for batch in (gone, shared, kept_b, edge, recent):
            store.insert_events(batch)
        store.insert_feedback(a, "fk-gone-0", 1.0, "better", None)
        store.insert_feedback(a, "fk-recent-0", 0.5, None, None)
        assert store.stats(a, EventFilter(), [])["groups"][0]["count"] == 10
        # A test case copied from an event of the month to drop, one from a recent event.
        suite = store.create_testset(a, "suite", [])
        copied = [gone[0][EVENT_COLUMNS.index("id")], recent[0][EVENT_COLUMNS.index("id")]]
        store.add_cases(a, suite, [_case(event_id) for event_id in copied])

        cut_us = int(cutoff.timestamp() * 1_000_000)
        # Stats not kept: every event's share is subtracted row by row, so nothing drops.
        assert store.drop_expired_partitions({a: cut_us, b: None}, False) == {}
        # The month of a's seven events drops whole (split out of the DEFAULT partition
        # first: there was no partition of that month when they came).
        assert store.drop_expired_partitions({a: cut_us, b: None}, True) == {a: 7}
        assert month_name(dropped_month) not in tables(url)
        # The case copied from a dropped event went with it, as a delete's would.
        kept = store.get_testset(a, suite)
        assert kept is not None and [c["event_id"] for c in kept["cases"]] == copied[1:]
        purger = Purger(store, days=30, keep_stats=True)
        assert purger.run_once() == {"a": 2}  # by rows: in months a partition keeps
        have = tables(url)
        assert month_name(dropped_month) not in have  # dropped whole
        assert month_name(shared_month) in have  # b keeps its event in it
        assert month_name(partly) in have
        listed = [e["id"] for e in store.list_events(a, EventFilter(limit=100))[0]]
        assert listed == [recent[0][EVENT_COLUMNS.index("id")]]
        assert store.list_events(a, EventFilter(limit=100, q="gone"))[0] == []
        assert store.list_events(a, EventFilter(limit=100, attributes={"user": "u0"}))[0]
        assert [f["feedback_key"] for f in store.list_feedback(a, 10)] == ["fk-recent-0"]
        # The stats stay (the setting), b's events stay.
        assert store.stats(a, EventFilter(), [])["groups"][0]["count"] == 10
        assert len(store.list_events(b, EventFilter(limit=100))[0]) == 2
        # Their ids are free again: the same event, posted late, is stored (and purged next).
        assert store.insert_events(gone[:2]) == 2
        assert purger.run_once() == {"a": 2}
        assert month_name(dropped_month) not in tables(url)
    finally:
        store.close()
        postgres.drop(url)


def test_events_of_any_date_are_accepted_and_listed(postgres: Postgres) -> None:
    url = postgres.fresh_database()
    store = open_store(url)
    try:
        pid = store.ensure_project("p")
        key = KeyInfo(1, pid, "p", "dev")
        moments = [
            datetime(2000, 1, 2, tzinfo=timezone.utc),
            NOW - 3000 * DAY,
            NOW - 90 * DAY,  # a late event of a month with no partition yet
            NOW + 45 * DAY,
            datetime(2099, 12, 31, tzinfo=timezone.utc),
        ]
        rows = rows_at(key, moments)
        assert store.insert_events(rows) == 5
        listed = store.list_events(pid, EventFilter(limit=100))[0]
        assert len(listed) == 5
        for row in rows:
            assert store.get_event(pid, row[EVENT_COLUMNS.index("id")]) is not None
        span = EventFilter(from_us=int((NOW - 100 * DAY).timestamp() * 1e6), limit=100)
        assert len(store.list_events(pid, span)[0]) == 3
    finally:
        store.close()
        postgres.drop(url)


def test_an_event_stored_while_its_month_is_split_out_goes_to_the_new_partition(
    postgres: Postgres,
) -> None:
    """A purge splits a late month out of the DEFAULT partition while ingest stores an event
    of that month: the insert waits for the split and lands in the month's partition (it
    used to pick the DEFAULT partition first, then fail its new constraint)."""
    from llmtap.store._pg import PgConn
    from llmtap.store._pg_partitions import _add_month

    url = postgres.fresh_database()
    store = open_store(url)
    try:
        pid = store.ensure_project("p")
        key = KeyInfo(1, pid, "p", "dev")
        late = NOW - 90 * DAY
        assert month_name(late) not in tables(url)
        assert store.insert_events(rows_at(key, [late])) == 1  # in the DEFAULT partition
        results: list[Any] = []

        def store_one() -> None:
            try:
                results.append(store.insert_events(rows_at(key, [late])))
            except Exception as e:  # shown by the assertion below
                results.append(e)

        with psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor) as raw:
            with raw.transaction():
                _add_month(PgConn(raw), late.year, late.month)  # not committed yet
                ingest = threading.Thread(target=store_one)
                ingest.start()
                ingest.join(1.0)
                assert ingest.is_alive()  # it waits for the split
            ingest.join(30)
        assert results == [1]
        with psycopg.connect(url) as conn:
            (n,) = conn.execute(f"SELECT count(*) FROM {month_name(late)}").fetchone()
            (left,) = conn.execute("SELECT count(*) FROM events_default").fetchone()
        assert (n, left) == (2, 0)
    finally:
        store.close()
        postgres.drop(url)


@pytest.mark.parametrize("other_date", [False, True])
def test_an_id_posted_to_two_stores_at_once_is_stored_once(
    postgres: Postgres, other_date: bool
) -> None:
    """Two stores (two processes' pools) store overlapping batches at once; with
    ``other_date`` the copies carry another date (another partition), still stored once."""
    url = postgres.fresh_database()
    stores = [open_store(url), open_store(url)]
    try:
        pid = stores[0].ensure_project("p")
        key = KeyInfo(1, pid, "p", "dev")
        rows = rows_at(key, [NOW - (i % 5) * 20 * DAY for i in range(400)])
        copies = rows
        if other_date:
            started = EVENT_COLUMNS.index("started_us")
            copies = [
                tuple(v - 40 * 86_400_000_000 if j == started else v for j, v in enumerate(r))
                for r in rows
            ]
        stored = [0, 0]
        start = threading.Barrier(2)

        def post(n: int, batch: list[tuple[Any, ...]]) -> None:
            start.wait()
            for i in range(0, len(batch), 50):
                stored[n] += stores[n].insert_events(batch[i : i + 50])

        threads = [
            threading.Thread(target=post, args=(0, rows)),
            threading.Thread(target=post, args=(1, list(reversed(copies)))),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(stored) == 400
        with psycopg.connect(url) as conn:
            n, distinct = conn.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone()
        assert n == distinct == 400
        assert stores[1].stats(pid, EventFilter(), [])["groups"][0]["count"] == 400
        # Twice in one batch: once.
        (again,) = rows_at(key, [NOW])
        assert stores[0].insert_events([again, again]) == 1
    finally:
        for s in stores:
            s.close()
        postgres.drop(url)


def test_a_month_left_detached_by_a_killed_purge_is_finished_by_the_next(
    postgres: Postgres,
) -> None:
    url = postgres.fresh_database()
    store = open_store(url)
    try:
        pid = store.ensure_project("p")
        key = KeyInfo(1, pid, "p", "dev")
        month = (NOW.replace(day=1) - 80 * DAY).replace(day=3)
        rows = rows_at(key, [month + i * timedelta(minutes=1) for i in range(6)], "late")
        store.insert_events(rows)
        assert store.drop_expired_partitions({pid: None}) == {}  # makes the month's partition
        assert store.stats(pid, EventFilter(), [])["groups"][0]["count"] == 6
        # What a purge killed between its detach and its drop leaves.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE events DETACH PARTITION {month_name(month)}")
        assert store.list_events(pid, EventFilter(limit=100))[0] == []
        # The next purge (any cut-off) finishes it: its ids, index rows and table go.
        assert store.drop_expired_partitions({pid: None}) == {pid: 6}
        assert month_name(month) not in tables(url)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM event_ids").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM event_attrs").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM events_text").fetchone() == (0,)
        assert store.stats(pid, EventFilter(), [])["groups"][0]["count"] == 6  # stats kept
        assert store.insert_events(rows) == 6  # the ids are free again
    finally:
        store.close()
        postgres.drop(url)


def test_a_deleted_event_can_be_stored_again(postgres: Postgres) -> None:
    url = postgres.fresh_database()
    store = open_store(url)
    try:
        pid = store.ensure_project("p")
        rows = rows_at(KeyInfo(1, pid, "p", "dev"), [NOW - DAY, NOW - 70 * DAY])
        ids = [r[EVENT_COLUMNS.index("id")] for r in rows]
        assert store.insert_events(rows) == 2
        assert store.insert_events(rows) == 0
        assert store.delete_events(pid, None, ids) == 2
        assert store.insert_events(rows) == 2
        assert sorted(e["id"] for e in store.list_events(pid, EventFilter())[0]) == sorted(ids)
    finally:
        store.close()
        postgres.drop(url)


def test_partitions_made_and_dropped_under_other_projects_writes_never_deadlock(
    postgres: Postgres,
) -> None:
    """Months attached and detached (retention, a late event's month) while another
    process stores and deletes another project's events: no transaction on either side is
    chosen as a deadlock's victim. A writer used to read ``events`` and then upgrade its lock
    to write, while the partition change held the table and waited for the writer's
    partition."""
    from llmtap.store._pg_partitions import ensure_partitions

    url = postgres.fresh_database()
    store, other = open_store(url), open_store(url)  # two processes' pools
    failures: list[str] = []
    stop = threading.Event()
    try:
        a, b = store.ensure_project("a"), store.ensure_project("b")
        key_a, key_b = KeyInfo(1, a, "a", "dev"), KeyInfo(2, b, "b", "dev")

        def writes() -> None:
            while not stop.is_set():
                try:
                    other.insert_events(rows_at(key_b, [NOW] * 200, word="busy"))
                    other.delete_events(b, EventFilter(q="busy"))
                except Exception as e:  # reported below
                    failures.append(f"b: {e!r}")

        writers = [threading.Thread(target=writes) for _ in range(2)]
        for t in writers:
            t.start()
        cut = int((NOW - 30 * DAY).timestamp() * 1e6)
        for months in range(3, 13):
            try:
                store.insert_events(rows_at(key_a, [NOW - months * 31 * DAY]))
                store.drop_expired_partitions({a: cut, b: None})  # attaches, then detaches
                ensure_partitions(store, int((NOW + months * 31 * DAY).timestamp() * 1e6))
            except Exception as e:  # reported below
                failures.append(f"a: {e!r}")
        stop.set()
        for t in writers:
            t.join(60)
        assert failures == []
        assert store.oldest_event_us(a) is None  # every month of a's was dropped
    finally:
        stop.set()
        store.close()
        other.close()
        postgres.drop(url)
