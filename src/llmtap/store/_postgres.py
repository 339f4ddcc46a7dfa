"""The PostgreSQL store: several ``llmtap serve`` processes on one database, coordinated by
the database alone.

The methods are the same plain functions as SQLite's (``_queries``, ``_admin``, ``_users``,
``_delete``), run through the adaptor of ``_pg``: ``_reader()`` and ``_write(statements)``
mean what they mean on SQLite, and ``?`` placeholders work. What differs is here and in
``_pg_text`` (the text index), ``_pg_migrations`` (the schema).

Ingest: a batch is copied (``COPY``) into a temporary table, then moved into ``events`` with
``INSERT ... ON CONFLICT DO NOTHING``, which skips ids already stored, by whichever process,
and derived (aggregates, indexes, templates: ``_derive``) in the same transaction. So the
aggregates count exactly the committed events, whatever process is killed when: there is no
watermark to catch up with, and ``catch_up`` has nothing to do. Everything that changes a
project's derived rows (ingest, feedback, repricing, deletes) holds a transaction-scoped
advisory lock on the project, so two processes never interleave their read-modify-writes of
the same aggregate rows (and cannot deadlock on them).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from . import _derive
from ._common import EVENT_COLUMNS, StoreUnavailable, mask_url
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
from ._sqlite import SQLiteStore

__all__ = ["PostgresStore"]

_COLUMNS = ", ".join(EVENT_COLUMNS)
_PROJECT = EVENT_COLUMNS.index("project_id")
_ID = EVENT_COLUMNS.index("id")
# A batch lands here first (COPY), then moves into events; emptied at each commit.
_INCOMING = (
    f"CREATE TEMP TABLE IF NOT EXISTS incoming ON COMMIT DELETE ROWS AS"
    f" SELECT {_COLUMNS} FROM events WITH NO DATA"
)
_MOVE = (
    f"INSERT INTO events ({_COLUMNS}) SELECT {_COLUMNS} FROM incoming"
    # One order for every writer: two batches sharing ids wait for each other, never deadlock.
    " ORDER BY project_id, id ON CONFLICT (project_id, id) DO NOTHING RETURNING seq, project_id, id"
)
# The first key of the projects' advisory locks (the second is the project's id).
_PROJECT_LOCK = 7420
# Connections per process: the server's worker threads share them.
POOL_SIZE = 16


class PostgresStore:
    """The store on a PostgreSQL database (``postgresql://user:password@host/db``),
    migrated to the newest schema when opened. Raises ``StoreUnavailable`` when the server
    cannot be reached.

    Its methods are SQLite's, but for the connections, ingest and feedback defined here:
    every method ``SQLiteStore`` takes from a module of plain functions is this store's too
    (``_adopt``), so a module added to SQLite's store runs here unchanged."""

    backend = "postgresql"

    def __init__(self, url: str, pool_size: int = POOL_SIZE) -> None:
        self._url = url
        try:
            with connect(url) as conn:
                self.applied_migrations = migrate_postgres(conn)
        except psycopg.OperationalError as e:
            raise StoreUnavailable(
                f"cannot open the PostgreSQL store {mask_url(url)}: "
                + hide_password(str(e).strip().splitlines()[0], url)
            ) from None
        self._pool = open_pool(url, pool_size)
        self._readers = PooledReader(self._pool)
        self._ids = _derive.IdCache()

    def __repr__(self) -> str:
        return f"PostgresStore({mask_url(self._url)!r})"

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
        return self._readers

    def _write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[Result]:
        with self._connection() as raw, raw.transaction():
            conn = PgConn(raw)
            return [conn.execute(sql, params) for sql, params in statements]

    @contextlib.contextmanager
    def _transaction(self, project_id: int) -> Iterator[PgConn]:
        """A write transaction holding the project's lock (see the module's docstring)."""
        with self._connection() as raw, raw.transaction():
            conn = PgConn(raw)
            self._lock(conn, [project_id])
            yield conn

    @staticmethod
    def _lock(conn: PgConn, project_ids: Iterable[int]) -> None:
        for project_id in sorted(set(project_ids)):  # one order: no deadlock
            conn.execute("SELECT pg_advisory_xact_lock(?, ?)", (_PROJECT_LOCK, project_id % 2**31))

    def close(self) -> None:
        self._pool.close()

    def catch_up(self) -> None:
        """Nothing to do: events are derived in the transaction that stores them."""

    # -- writing ---------------------------------------------------------------------------

    def insert_events(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Store event rows (see ``event_row``); an id already stored in the project, by any
        process, is skipped. Returns how many were new. Durable when it returns."""
        if not rows:
            return 0
        with self._connection() as raw, raw.transaction():
            cur = raw.cursor()
            cur.execute(_INCOMING)
            with cur.copy(f"COPY incoming ({_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([param(v) for v in row])
            conn = PgConn(raw)
            self._lock(conn, (row[_PROJECT] for row in rows))
            seqs = {(p, i): seq for seq, p, i in cur.execute(_MOVE).fetchall()}
            todo = []
            for row in rows:
                seq = seqs.pop((row[_PROJECT], param(row[_ID])), None)
                if seq is not None:
                    todo.append((seq, row, getattr(row, "facts", None)))
            if todo:
                _derive.derive_each(conn, todo, self._ids)
        return len(todo)

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
            return _derive.add_feedback(
                conn, project_id, feedback_key, rating, better, feedback_id, None
            )


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
