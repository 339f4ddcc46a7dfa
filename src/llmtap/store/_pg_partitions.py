"""PostgreSQL's events, partitioned by month of ``started_us`` (declarative RANGE partitions
``events_pYYYYMM``, UTC), and retention that drops a whole month at once.

- A DEFAULT partition (``events_default``) takes what no month holds: an event far in the
  past or the future is stored like any other. The retention job (and the opening of a store)
  creates the current and the next month ahead, and splits out of the DEFAULT partition each
  recent month it holds rows of (late events), so they too can go by a partition drop.
- Idempotent ingest: a unique index of a partitioned table must hold the partition key, so
  ``(project_id, id)`` can no longer be unique in ``events`` itself. The ids stored are kept
  in ``event_ids`` (primary key ``(project_id, id)``): ingest claims an id there first
  (``ON CONFLICT DO NOTHING``) and stores the events it claimed, so the same id posted twice,
  to two processes at once too, is stored once (the second claim waits for the first to
  commit, then finds the id taken). A delete releases its ids (``forget_ids``).
- A month partition is dropped when it holds no event of a project whose retention keeps it
  (the caller passes every project's cut-off). Its projects' queued events are derived first,
  under their data locks, then the partition is detached (a moment's exclusive lock on
  ``events``); the detached table's index rows, feedback and ids are then deleted in batches,
  and it is dropped. The stats stay: with ``keep_aggregates`` off every event's share must be
  subtracted, which the bounded deletes (``_delete``) do, so then no partition is dropped.
  A process killed midway leaves a detached ``events_pYYYYMM``, finished by the next purge.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from . import _context, _pg_derive, _testsets
from ._delete import _drop_feedback
from ._pg import PgConn
from ._sql import chunks, marks

if TYPE_CHECKING:
    from ._postgres import PostgresStore

__all__ = [
    "DEFAULT",
    "drop_expired",
    "ensure_partitions",
    "month_bounds",
    "partition_events",
]

DEFAULT = "events_default"
_NAME = re.compile(r"events_p(\d{4})(\d{2})$")
# Held while partitions are created, attached or detached: one process at a time.
_PARTITION_LOCK = 7_420_000_002
# Recent months the DEFAULT partition is searched for rows to split out.
_SPLIT_MONTHS = 24
# Detached events whose index rows, ids and feedback go per transaction.
_BATCH = 5_000

# pg001's indexes, and one by id (the unique one is ``event_ids``'s); the primary key holds
# the partition key, as PostgreSQL requires, and the project, as Citus does.
_INDEXES = (
    "ALTER TABLE events ADD PRIMARY KEY (project_id, seq, started_us)",
    "CREATE INDEX events_by_id ON events (project_id, id)",
    "CREATE INDEX events_by_time ON events (project_id, started_us, seq)",
    "CREATE INDEX events_by_model ON events (project_id, model, started_us)",
    "CREATE INDEX events_by_template ON events (project_id, prompt_template_name, started_us)",
    "CREATE INDEX events_by_chat ON events (project_id, chat_id, started_us, seq)"
    " WHERE chat_id IS NOT NULL",
    "CREATE INDEX events_by_chain ON events (project_id, chain_id, started_us, seq)"
    " WHERE chain_id IS NOT NULL",
    "CREATE INDEX events_by_feedback_key ON events (project_id, feedback_key)",
    "CREATE INDEX events_by_latency ON events (project_id, COALESCE(latency_ms, -1), seq)",
    "CREATE INDEX events_by_cost ON events (project_id, COALESCE(cost_usd, -1), seq)",
)


def month_bounds(year: int, month: int) -> tuple[int, int]:
    """The month's first microsecond (UTC) and the next month's."""
    lo = datetime(year, month, 1, tzinfo=timezone.utc)
    hi = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=timezone.utc)
    return int(lo.timestamp()) * 1_000_000, int(hi.timestamp()) * 1_000_000


def _month_of(us: int) -> tuple[int, int]:
    moment = datetime.fromtimestamp(us // 1_000_000, timezone.utc)
    return moment.year, moment.month


def _shift(year: int, month: int, by: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + by
    return index // 12, index % 12 + 1


def _now_us() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1_000_000)


def _months(conn: PgConn, attached: bool) -> list[str]:
    """The month tables, attached to ``events`` or (``attached`` False) detached, oldest
    first."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace"
        f" AND c.relkind = 'r' AND c.relispartition = {'true' if attached else 'false'}"
    ).fetchall()
    return sorted(r[0] for r in rows if _NAME.match(r[0]))


def _columns(conn: PgConn) -> list[str]:
    """The columns of ``events``, in order."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'events'::regclass AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum"
    ).fetchall()
    return [r[0] for r in rows]


def _add_month(conn: PgConn, year: int, month: int) -> None:
    """Create the month's partition, moving into it the rows the DEFAULT partition holds of
    it (PostgreSQL refuses a partition whose rows sit in the DEFAULT one)."""
    name = f"events_p{year:04d}{month:02d}"
    lo, hi = month_bounds(year, month)
    # Ingest waits (a moment) rather than put a row of the month in the DEFAULT partition
    # between the move and the attach. The lock is on ``events`` itself: an insert takes
    # its own lock there before it decides which partition a row goes to, so it decides
    # after this commits. (Locked on the DEFAULT partition alone, an insert could decide on
    # DEFAULT first, wait, then fail the constraint the attach gave it.)
    conn.execute("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
    conn.execute(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS)")
    # Every column the table has now (later steps add some), not pg007's.
    names = ", ".join(_columns(conn))
    conn.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT} WHERE started_us >= ? AND started_us < ?"
        f" RETURNING {names}) INSERT INTO {name} ({names}) SELECT {names} FROM moved",
        (lo, hi),
    )
    conn.execute(f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})")


def _ensure(conn: PgConn, now_us: int, scan: str = DEFAULT) -> list[str]:
    """In ``conn``'s transaction, under the partition lock: the current and next months'
    partitions, and those of recent months the DEFAULT partition (or ``scan``) holds rows of."""
    conn.execute("SELECT pg_advisory_xact_lock(?)", (_PARTITION_LOCK,))
    have = set(_months(conn, attached=True)) | set(_months(conn, attached=False))
    year, month = _month_of(now_us)
    wanted = {(year, month), _shift(year, month, 1)}
    oldest, _ = month_bounds(*_shift(year, month, -_SPLIT_MONTHS))
    for (started,) in conn.execute(
        f"SELECT DISTINCT started_us / 86400000000 FROM {scan}"
        " WHERE started_us >= ? AND started_us < ?",
        (oldest, month_bounds(*_shift(year, month, 2))[0]),
    ).fetchall():
        wanted.add(_month_of(int(started) * 86_400_000_000))
    made = []
    for y, m in sorted(wanted):
        name = f"events_p{y:04d}{m:02d}"
        if name not in have:
            _add_month(conn, y, m)
            made.append(name)
    return made


def ensure_partitions(store: PostgresStore, now_us: int | None = None) -> list[str]:
    """Create the partitions ahead (see the module's docstring); returns those made."""
    with store._connection() as raw, raw.transaction():
        return _ensure(PgConn(raw), _now_us() if now_us is None else now_us)


def partition_events(conn: PgConn) -> None:
    """pg007: make ``events`` partitioned, keeping every row, seq and id (see the module's
    docstring); months of the last two years with events get their partition."""
    conn.execute("ALTER TABLE events RENAME TO events_unpartitioned")
    (sequence,) = conn.execute(
        "SELECT pg_get_serial_sequence('events_unpartitioned', 'seq')"
    ).fetchall()[0]
    (next_seq,) = conn.execute(
        f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence}"
    ).fetchall()[0]
    # The same columns (pg001's, and any step before this one added), seq an identity again.
    conn.execute(
        "CREATE TABLE events (LIKE events_unpartitioned INCLUDING DEFAULTS INCLUDING IDENTITY)"
        " PARTITION BY RANGE (started_us)"
    )
    conn.execute(f"CREATE TABLE {DEFAULT} PARTITION OF events DEFAULT")
    conn.execute(
        "CREATE TABLE event_ids (project_id BIGINT NOT NULL, id TEXT NOT NULL,"
        " PRIMARY KEY (project_id, id))"
    )
    _ensure(conn, _now_us(), scan="events_unpartitioned")  # rows move once, straight in
    names = ", ".join(_columns(conn))
    conn.execute(
        f"INSERT INTO events ({names}) SELECT {names} FROM events_unpartitioned ORDER BY started_us"
    )
    conn.execute("INSERT INTO event_ids (project_id, id) SELECT project_id, id FROM events")
    conn.execute("DROP TABLE events_unpartitioned")  # its index names are free again
    for statement in _INDEXES:
        conn.execute(statement)
    (last,) = conn.execute("SELECT COALESCE(max(seq), 0) FROM events").fetchall()[0]
    if max(last, next_seq):
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('events', 'seq'), ?)", (max(last, next_seq),)
        )


def drop_expired(
    store: PostgresStore, before_us: Mapping[int, int | None], keep_aggregates: bool = True
) -> dict[int, int]:
    """Drop each month partition whose events every project is done with (``before_us``:
    each project's cut-off, None: kept forever); returns the events dropped, by project."""
    now_us = _now_us()
    ensure_partitions(store, now_us)
    dropped: dict[int, int] = {}
    if not keep_aggregates:
        return dropped
    with store._connection() as raw:
        conn = PgConn(raw)
        leftovers = _months(conn, attached=False)
        candidates = []
        for name in _months(conn, attached=True):
            match = _NAME.match(name)
            assert match is not None
            _, hi = month_bounds(int(match[1]), int(match[2]))
            if hi > now_us:
                continue
            keeping = [p for p, cut in before_us.items() if cut is None or cut < hi]
            if any(_holds(conn, name, p) for p in keeping):
                continue  # a project still keeps some of its events
            projects = [p for p in before_us if p not in keeping and _holds(conn, name, p)]
            candidates.append((name, projects))
    for name, projects in candidates:
        if _detach(store, name, projects, list(before_us)):
            leftovers.append(name)
    for name in leftovers:
        for project_id, n in _finish(store, name).items():
            dropped[project_id] = dropped.get(project_id, 0) + n
    return dropped


def _holds(conn: PgConn, name: str, project_id: int) -> bool:
    sql = f"SELECT 1 FROM {name} WHERE project_id = ? LIMIT 1"
    return bool(conn.execute(sql, (project_id,)).fetchall())


def _detach(store: PostgresStore, name: str, projects: list[int], known: list[int]) -> bool:
    """Detach the partition once its projects' queued events are derived (each counted in
    the stats before it goes), with no event of theirs committing meanwhile; False (nothing
    done) when the events it holds changed projects since they were looked at: a late event
    of a project that keeps the month, say. ``known``: every project the caller knows."""
    with store._connection() as raw, raw.transaction():
        conn = PgConn(raw)
        _pg_derive.lock_data(conn, projects)
        for project_id in sorted(projects):
            _pg_derive.lock_derive(conn, project_id)
            while store._derive_chunk(conn, project_id, _pg_derive.EVERY_SEQ):
                pass
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_PARTITION_LOCK,))
        # Readers queue behind the exclusive lock: give up (the next purge tries again)
        # rather than stall them behind a long query.
        conn.execute("SET LOCAL lock_timeout = '10s'")
        # No insert into ``events`` from here (readers go on) until the detach: the projects
        # the month holds are looked at again, under the lock.
        conn.execute("LOCK TABLE events IN SHARE MODE")
        if sorted(p for p in known if _holds(conn, name, p)) != sorted(projects):
            return False
        conn.execute(f"ALTER TABLE events DETACH PARTITION {name}")
    return True


def _finish(store: PostgresStore, name: str) -> dict[int, int]:
    """Delete a detached month's index rows, ids, queue entries, feedback and the test cases
    copied from its events in batches,
    then the table; returns its events by project."""
    with store._connection() as raw:
        counts = {
            int(p): int(n)
            for p, n in PgConn(raw).execute(
                f"SELECT project_id, count(*) FROM {name} GROUP BY project_id"
            )
        }
    for project_id in sorted(counts):
        after = -1
        while True:
            with store._connection() as raw, raw.transaction():
                conn = PgConn(raw)
                rows = conn.execute(
                    f"SELECT seq, id, feedback_key FROM {name} WHERE project_id = ?"
                    " AND seq > ? ORDER BY seq LIMIT ?",
                    (project_id, after, _BATCH),
                ).fetchall()
                if not rows:
                    break
                _forget_rows(conn, project_id, rows)
                after = rows[-1][0]
    with store._connection() as raw, raw.transaction():
        conn = PgConn(raw)
        conn.execute(f"DROP TABLE {name}")
    for project_id in sorted(counts):
        _context.forget_orphan_context(store, project_id)
    return counts


def _forget_rows(conn: Any, project_id: int, rows: list[Any]) -> None:
    for part in chunks(rows):
        seqs = [r[0] for r in part]
        for table in ("event_attrs", "events_text", "derive_queue"):
            conn.execute(
                f"DELETE FROM {table} WHERE project_id = ? AND seq IN ({marks(seqs)})",
                (project_id, *seqs),
            )
        ids = [r[1] for r in part]
        conn.execute(
            f"DELETE FROM event_ids WHERE project_id = ? AND id IN ({marks(ids)})",
            (project_id, *ids),
        )
        # The test cases copied from them go too, as with every delete (see ``_delete``).
        _testsets.forget_cases(conn, project_id, ids)
    # The detached events are no longer in ``events``: feedback no stored event carries goes.
    _drop_feedback(conn, project_id, {r[2] for r in rows if r[2] is not None})
