"""The PostgreSQL store: several ``llmtap serve`` processes on one database, coordinated by
the database alone.

The methods are the same plain functions as SQLite's (``_queries``, ``_admin``, ``_users``,
``_delete``), run through the adaptor of ``_pg``: ``_reader()`` and ``_write(statements)``
mean what they mean on SQLite, and ``?`` placeholders work. What differs is here and in
``_pg_text`` (the text index), ``_pg_migrations`` (the schema), ``_pg_derive`` (derivation).

Ingest: a batch is copied (``COPY``) into a temporary table, then moved into ``events`` with
``INSERT ... ON CONFLICT DO NOTHING``, which skips ids already stored, by whichever process,
and the new events are queued for derivation in the same statement. Deriving them
(aggregates, indexes, templates: ``_derive``) follows after the commit, in chunks of
thousands, on a thread of each process, as on SQLite: upserting the aggregate rows of every
batch in its own transaction, under the project's lock, made 60% of ingest's time and let
one process ingest a project at a time (see ``_pg_derive``, and BENCHMARKS.md). Reads that
use the derived tables catch up first.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from . import _copy, _derive, _pg_derive, _pg_partitions, _rederive
from ._common import EVENT_COLUMNS, StoreUnavailable, mask_url
from ._facts import Facts
from ._pg import (
    PgConn,
    PooledReader,
    Result,
    connect,
    hide_password,
    open_pool,
    param,
)
from ._pg_migrations import migrate_postgres
from ._replica import ReadSide
from ._sqlite import DERIVE_DELAY, DERIVE_EVENTS, SQLiteStore, _Deriver

__all__ = ["PostgresStore"]

log = logging.getLogger("llmtap.store")

_COLUMNS = ", ".join(EVENT_COLUMNS)
_PROJECT = EVENT_COLUMNS.index("project_id")
_ID = EVENT_COLUMNS.index("id")
# A batch lands here first (COPY), then moves into events; emptied at each commit.
# ``ord``: each row's place in the batch, so the events' seqs follow it (what orders events
# that started at the same instant: a chat's turns sent together).
_INCOMING = (
    f"CREATE TEMP TABLE IF NOT EXISTS incoming ON COMMIT DELETE ROWS AS"
    f" SELECT {_COLUMNS}, 0 AS ord FROM events WITH NO DATA"
)
_MOVE = (
    # The ids claimed first (``_pg_partitions``): an id another transaction is storing waits
    # for it to commit, then is skipped. One order for every writer: two batches sharing ids
    # wait for each other, never deadlock.
    # A batch holds an id once (``insert_events``): no row of it is claimed twice.
    "WITH claimed AS (INSERT INTO event_ids (project_id, id) SELECT project_id, id"
    " FROM incoming ORDER BY project_id, id ON CONFLICT DO NOTHING RETURNING project_id, id),"
    f" moved AS (INSERT INTO events ({_COLUMNS}) SELECT"
    f" {', '.join('i.' + c for c in EVENT_COLUMNS)} FROM incoming i JOIN claimed c"
    " ON c.project_id = i.project_id AND c.id = i.id ORDER BY i.ord"
    " RETURNING seq, project_id, id),"
    " queued AS (INSERT INTO derive_queue (project_id, seq) SELECT project_id, seq FROM moved)"
    " SELECT seq, project_id, id FROM moved"
)
# A transaction that writes ``events`` takes its lock there before anything else, reads
# included: one that read first (a lock on the table or a partition) and then wrote would
# upgrade its lock, and deadlock with the partition changes that lock the table then a
# partition (a month attached, ``_pg_partitions._add_month``; a month detached). Only the
# parent: those lock it first.
_LOCK_FOR_WRITES = "LOCK TABLE ONLY events IN ROW EXCLUSIVE MODE"
# Past this many events stored by this process and not derived (derivation falling behind),
# ingest derives before it answers: the queue, and the wait of a read that catches up, stay
# bounded.
_DERIVE_AT_MOST = 3 * DERIVE_EVENTS
# Connections per process: the server's worker threads share them.
POOL_SIZE = 16


# A copy's reads walk each table's key: ``(key) > (after) ORDER BY key LIMIT n``. The
# planner estimates such a row comparison at a row or two (from its first column, the
# project), so it reads every partition of events whole and sorts it, for every batch; and it
# compiles (JIT) and parallelises a scan it expects to be costly. Each batch read at the speed
# of the key's index instead (measured on 1,000,000 events: 480 ms a batch against 8 ms).
_WALK_THE_INDEX = (
    "SET LOCAL enable_sort = off",
    "SET LOCAL jit = off",
    "SET LOCAL max_parallel_workers_per_gather = 0",
)


class PostgresStore:
    """The store on a PostgreSQL database (``postgresql://user:password@host/db``),
    migrated to the newest schema when opened. Raises ``StoreUnavailable`` when the server
    cannot be reached.

    Its methods are SQLite's, but for the connections, ingest, feedback and a copy's reads,
    defined here: every method ``SQLiteStore`` takes from a module of plain functions is this
    store's too (``_adopt``), so a module added to SQLite's store runs here unchanged."""

    backend = "postgresql"

    def __init__(
        self,
        url: str,
        pool_size: int = POOL_SIZE,
        derive_delay: float = DERIVE_DELAY,
        read_url: str | None = None,
    ) -> None:
        """``derive_delay``: at most how long stored events wait to be derived when no read
        asks for them (see ``_pg_derive``). ``read_url``: a streaming replica of ``url``
        the queries read from (see ``_replica``); nothing is written there."""
        self._url = url
        self.derive_delay = derive_delay
        try:
            with connect(url) as conn:
                self.applied_migrations = migrate_postgres(conn)
        except (psycopg.OperationalError, psycopg.ProgrammingError) as e:
            # Unreachable, or a URL libpq cannot parse (its message may quote the password).
            raise StoreUnavailable(
                f"cannot open the PostgreSQL store {mask_url(url)}: "
                + hide_password(str(e).strip().splitlines()[0], url)
            ) from None
        self._pool = open_pool(url, pool_size)
        _pg_partitions.ensure_partitions(self)  # a server idle since last month has none
        self._readers = PooledReader(self._pool, url)
        try:
            self._read_side = ReadSide(self._readers, read_url, pool_size)
        except BaseException:
            self._pool.close()
            raise
        self._ids = _derive.IdCache()
        self._stored = 0  # events this process stored since it last derived
        # The facts of the events this process stored and has not derived, by (project, seq):
        # the deriver need not parse their bodies again (a fifth of its time). Those another
        # process derives stay, until there are too many (``insert_events``).
        self._facts: dict[tuple[int, int], Facts] = {}
        self._stored_lock = threading.Lock()
        # One thread of the process derives at a time; the others wait here, not holding a
        # pooled connection while they wait for the project's derive lock.
        self._deriving = threading.Lock()
        self._deriver = _Deriver(self, self.catch_up)

    def __repr__(self) -> str:
        read = self._read_side.url
        return f"PostgresStore({mask_url(self._url)!r}" + (
            f", read_url={mask_url(read)!r})" if read else ")"
        )

    # -- connections -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; the server gone (down, restarting) is ``StoreUnavailable``."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as e:
            self._ids.clear()  # a transaction may have rolled back with ids in it
            message = hide_password(
                str(e).strip().splitlines()[0] if str(e) else repr(e), self._url
            )
            raise StoreUnavailable(f"the PostgreSQL store is unavailable: {message}") from None

    def _reader(self) -> PooledReader:
        """The primary: reads that must be current (keys, users, leases, ...)."""
        return self._readers

    def _query_reader(self, derived: bool = False) -> PooledReader:
        """The queries' reader: the replica of ``--read-db`` when there is one, once it
        has this process's writes, and (``derived``: a query of derived rows) the
        derivation done so far (see ``_replica``)."""
        return self._read_side.reader(derived)

    def _write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[Result]:
        with self._connection() as raw:
            with raw.transaction():
                conn = PgConn(raw)
                done = [conn.execute(sql, params) for sql, params in statements]
            self._read_side.wrote(raw)
            return done

    @contextlib.contextmanager
    def _transaction(self, project_id: int) -> Iterator[PgConn]:
        """A write transaction on the project in which every event stored is derived, and
        no other is stored: what the modules that adjust the derived tables need (feedback,
        ``_delete``, repricing). See ``_pg_derive``."""
        with self._connection() as raw:
            with raw.transaction():
                conn = PgConn(raw)
                _pg_derive.lock_data(conn, [project_id])
                conn.execute(_LOCK_FOR_WRITES)
                _pg_derive.lock_derive(conn, project_id)
                try:
                    while self._derive_chunk(conn, project_id, _pg_derive.EVERY_SEQ):
                        pass
                    yield conn
                except BaseException:
                    self._ids.clear()  # it may hold ids of rows rolled back
                    raise
            self._read_side.wrote(raw)

    def _derive_chunk(self, conn: PgConn, project_id: int, through: int) -> bool:
        """Derive a chunk of the project's queue; False when nothing is left."""
        taken = _pg_derive.derive_chunk(conn, project_id, through, self._ids, self._facts)
        return taken == _pg_derive.CHUNK

    def close(self) -> None:
        self._deriver.close()
        try:
            self.catch_up()
        except StoreUnavailable as e:  # what waits is derived by the next process to open
            log.warning("events left to derive at close: %s", e)
        self._read_side.close()
        self._pool.close()

    def catch_up(self) -> None:
        """Derive every event stored so far, by this process or another: the queue as it is
        now, project by project, a chunk a transaction. Cheap (one query) when it is empty."""
        with self._connection() as raw:  # PostgreSQL down: StoreUnavailable, as elsewhere
            waiting = _pg_derive.queued(PgConn(raw))
        if not waiting:
            return
        with self._deriving:
            for project_id, through in sorted(waiting.items()):
                more = True
                while more:
                    with self._connection() as raw, raw.transaction():
                        conn = PgConn(raw)
                        _pg_derive.lock_derive(conn, project_id)
                        try:
                            more = self._derive_chunk(conn, project_id, through)
                        except BaseException:
                            self._ids.clear()
                            raise
            with self._stored_lock:
                self._stored = 0
        if self._read_side.replica is not None:  # the queries wait for the replica to have it
            with self._connection() as raw:
                self._read_side.wrote(raw, derived=True)

    # -- writing ---------------------------------------------------------------------------

    def insert_events(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Store event rows (see ``event_row``); an id already stored in the project, by any
        process, is skipped. Returns how many were new. Durable when it returns."""
        if not rows:
            return 0
        # An id twice in the batch: the first copy, as SQLite keeps (its row and its facts).
        firsts: dict[tuple[Any, Any], tuple[Any, ...]] = {}
        for row in rows:
            firsts.setdefault((row[_PROJECT], row[_ID]), row)
        if len(firsts) < len(rows):
            rows = list(firsts.values())
        with self._connection() as raw, raw.transaction():
            # The data lock before any lock on ``events`` (the temporary table's creation
            # takes one): a purge holds the data lock, then detaches a partition.
            _pg_derive.lock_data(PgConn(raw), (row[_PROJECT] for row in rows), shared=True)
            cur = raw.cursor()
            cur.execute(f"{_LOCK_FOR_WRITES}; {_INCOMING}")  # one round trip
            with cur.copy(f"COPY incoming ({_COLUMNS}, ord) FROM STDIN") as copy:
                for place, row in enumerate(rows):
                    copy.write_row([*(param(v) for v in row), place])
            moved = cur.execute(_MOVE).fetchall()
        stored = len(moved)
        with self._stored_lock:
            self._stored += stored
            waiting = self._stored
            if len(self._facts) > 2 * _DERIVE_AT_MOST:
                self._facts.clear()
            seqs = {(p, i): seq for seq, p, i in moved}
            for row in rows:
                seq = seqs.get((row[_PROJECT], param(row[_ID])))
                facts = getattr(row, "facts", None)
                if seq is not None and facts is not None:
                    self._facts[row[_PROJECT], seq] = facts
        if waiting >= _DERIVE_AT_MOST:
            self.catch_up()
        elif waiting >= DERIVE_EVENTS:
            self._deriver.wake()
        return stored

    def drop_expired_partitions(
        self, before_us: Mapping[int, int | None], keep_aggregates: bool = True
    ) -> dict[int, int]:
        """Drop the month partitions of events no project keeps (see ``_pg_partitions``)."""
        return _pg_partitions.drop_expired(self, before_us, keep_aggregates)

    def insert_feedback(
        self,
        project_id: int,
        feedback_key: str,
        rating: float | None,
        better: str | None,
        feedback_id: str | None = None,
    ) -> bool:
        """Store a feedback; False when one with this ``feedback_id`` is stored already."""
        with self._transaction(project_id) as conn:
            return _rederive.add_feedback(
                conn, project_id, feedback_key, rating, better, feedback_id, None
            )

    def read_rows(
        self, table: dict[str, Any], after: list[Any] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Up to ``limit`` rows of ``table`` whose key is past ``after``, in key order, read
        along the key's index (see ``_WALK_THE_INDEX``)."""
        with self._connection() as raw, raw.transaction():
            conn = PgConn(raw)
            for setting in _WALK_THE_INDEX:
                conn.execute(setting)
            return _copy.read_rows_on(conn, table, after, limit)


def _adopt(cls: type) -> None:
    """Give ``cls`` every method ``SQLiteStore`` assigns from a portable module (a plain
    function defined outside ``_sqlite``), unless ``cls`` defines its own."""
    for name, member in vars(SQLiteStore).items():
        if (
            inspect.isfunction(member)
            and member.__module__ != SQLiteStore.__module__
            and name not in vars(cls)
        ):
            setattr(cls, name, member)


_adopt(PostgresStore)
