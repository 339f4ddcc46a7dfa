"""The PostgreSQL connection layer: a psycopg 3 pool, and an adaptor through which the store
modules written for SQLite (``?`` placeholders, ``conn.execute(sql, params)``, cursors with
``fetchone``/``fetchall``/``rowcount``) run unchanged on PostgreSQL.

Parameters are bound on the client (psycopg's ``ClientCursor``): like SQLite, a ``?`` whose
type PostgreSQL cannot infer (``? IS NULL``, ``SELECT ?, ?`` feeding an ``INSERT``) just
works, where server-side binding would refuse it. Python booleans go in as 0/1 (booleans are
INTEGER columns, as in SQLite), and ``sum()`` of an integer column (``numeric`` in
PostgreSQL) comes back as an ``int``, not a ``Decimal``.

psycopg is imported here only, and this module only when a ``postgresql://`` URL is opened:
SQLite users do not need it installed.
"""

from __future__ import annotations

import functools
import re
import select
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.adapt import Loader
from psycopg_pool import ConnectionPool, PoolTimeout

from ._common import StoreUnavailable, url_secrets
from ._pg_text import POSTGRES

# "INSERT INTO table (columns)", as ``_bulk.insert_many`` is given it.
_INSERT_HEAD = re.compile(r"INSERT INTO (\w+) \(([\w, ]+)\)")

__all__ = [
    "PgConn",
    "PooledReader",
    "Result",
    "connect",
    "hide_password",
    "open_pool",
    "param",
    "translate",
]


def hide_password(text: str, url: str) -> str:
    """``text`` (an error message, say) with every password of ``url`` masked wherever it
    appears (see ``url_secrets``)."""
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """SQLite's ``?`` placeholders as psycopg's ``%s``, and ``%`` escaped, outside quoted
    strings and identifiers. Cached: the store's statements are a few hundred strings."""
    out = []
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        if ch == "%":
            out.append("%%")
            continue
        out.append(ch)
    return "".join(out)


# PostgreSQL's text cannot hold NUL, which SQLite's can (an event's ids, model, attributes
# may carry one: hostile or broken clients). It is stored, and looked for, as U+FFFD, the
# same way in both directions, so a lookup by the original text still finds it. Bodies are
# JSON, where NUL is escaped already: they are stored exactly.
_NUL = "\x00"


_AS_IS = frozenset({int, float, bytes, type(None)})


def param(value: Any) -> Any:
    """A parameter as PostgreSQL takes it: booleans as 0/1, NUL in text as U+FFFD."""
    if type(value) in _AS_IS:  # most values: derivation copies millions of numbers a minute
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and _NUL in value:
        return value.replace(_NUL, "\ufffd")
    return value


class _NumericLoader(Loader):
    """``numeric`` (what ``sum()`` of a BIGINT column gives) as an ``int`` when whole."""

    def load(self, data: Any) -> Any:
        text = bytes(data).decode()
        if "." in text or "N" in text or "e" in text:
            return float(text)
        return int(text)


class Result:
    """A statement's rows, read whole (the connection went back to the pool), with the
    cursor methods the store modules use."""

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._next = self._rows[self._next :], len(self._rows)
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    def close(self) -> None:
        self._next = len(self._rows)


def _run(conn: psycopg.Connection[Any], sql: str, params: Sequence[Any]) -> Result:
    try:
        if params:
            cur = conn.execute(translate(sql), [param(p) for p in params])  # type: ignore[arg-type]
        else:  # no placeholder to fill: psycopg takes the text as it is, % included
            cur = conn.execute(sql)  # type: ignore[arg-type]
    except psycopg.IntegrityError as e:
        raise IntegrityError(str(e)) from e
    rows = cur.fetchall() if cur.description is not None else []
    return Result(rows, cur.rowcount)


class IntegrityError(sqlite3.IntegrityError):
    """A unique or foreign key violation on PostgreSQL, as the portable modules catch it
    (``except sqlite3.IntegrityError``): they were written for SQLite, and run on both."""


class PgConn:
    """One pooled connection, in a transaction the caller holds, as the store modules use
    SQLite's: ``execute``, ``executemany``, ``dialect``."""

    dialect = POSTGRES

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        return _run(self.raw, sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            _run(self.raw, sql, row)

    def insert_rows(self, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
        """``_bulk.insert_many``'s rows in two statements, whatever their number: copied
        into a temporary table (``COPY``), then moved with ``{head} SELECT ... {tail}``.
        A hundred rows a statement (``VALUES``) cost ten times more here: psycopg does not
        cache the conversion of statements that long, and splits each one again."""
        table, columns = _table_and_columns(head)
        temp = f"bulk_{table}"
        cur = self.raw.cursor()
        # Emptied at each commit, and after each use (a transaction may fill it twice).
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {temp} ON COMMIT DELETE ROWS AS"  # type: ignore[arg-type]
            f" SELECT {columns} FROM {table} WITH NO DATA"
        )
        with cur.copy(f"COPY {temp} ({columns}) FROM STDIN") as copy:  # type: ignore[arg-type]
            for row in rows:
                copy.write_row(list(map(param, row)))
        try:
            cur.execute(f"{head} SELECT {columns} FROM {temp} {tail}")  # type: ignore[arg-type]
        except psycopg.IntegrityError as e:
            raise IntegrityError(str(e)) from e
        cur.execute(f"DELETE FROM {temp}")  # type: ignore[arg-type]

    def copy_rows(self, head: str, rows: Sequence[Sequence[Any]]) -> bool:
        """Rows read from another store (``migrate-store``), copied straight into the table
        as they are, under a savepoint: True. False, with nothing written, when one of them
        is there already or holds text PostgreSQL cannot (NUL): the caller then goes the
        careful way (``insert_rows``, which skips the one and mends the other)."""
        table, columns = _table_and_columns(head)
        try:
            statement = f"COPY {table} ({columns}) FROM STDIN"
            with (
                self.raw.transaction(),
                self.raw.cursor() as cur,
                cur.copy(statement) as copy,  # type: ignore[arg-type]
            ):
                for row in rows:
                    copy.write_row(row)
        except (psycopg.IntegrityError, psycopg.DataError):
            return False
        return True


def _table_and_columns(head: str) -> tuple[str, str]:
    """The table and the column list of ``INSERT INTO table (a, b, ...)``."""
    match = _INSERT_HEAD.fullmatch(head.strip())
    if match is None:
        raise ValueError(f"not an INSERT head: {head!r}")
    table, columns = match.groups()
    return table, columns


class PooledReader:
    """What ``store._reader()`` gives on PostgreSQL: each statement on a connection borrowed
    from the pool for its duration (autocommit), its rows read whole. The server of ``url``
    down (or no connection free in time) is ``StoreUnavailable``, naming ``what`` and never
    the password."""

    dialect = POSTGRES

    def __init__(
        self, pool: ConnectionPool[Any], url: str = "", what: str = "the PostgreSQL store"
    ) -> None:
        self._pool = pool
        self._url = url
        self._what = what

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        try:
            with self._pool.connection() as conn:
                return _run(conn, sql, params)
        except (psycopg.OperationalError, PoolTimeout) as e:
            first = str(e).strip().splitlines()[0] if str(e) else repr(e)
            message = hide_password(first, self._url)
            raise StoreUnavailable(f"{self._what} is unavailable: {message}") from None


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_loader("numeric", _NumericLoader)


def connect(url: str) -> psycopg.Connection[Any]:
    """One connection outside the pool (migrations), set up as the pool's are."""
    conn = psycopg.connect(
        url, autocommit=True, cursor_factory=psycopg.ClientCursor, connect_timeout=10
    )
    _configure(conn)
    return conn


def check(conn: psycopg.Connection[Any]) -> None:
    """Raise when a pooled connection is dead; a round trip only when it may be.

    An idle connection has nothing to read: PostgreSQL sends nothing unasked but the notice
    that it ends the session (a restart, an idle timeout, an administrator's kill), and a
    socket the other side closed reads as its end. So when the socket has something to read,
    the pool's own check (an empty query) decides; otherwise the connection is lent at once,
    where that check cost a round trip for every statement a reader runs (and one more per
    write transaction). A connection that dies unseen (the network cut, no FIN) fails its
    statement instead, which answers 503 as a failed check would, and the pool replaces it."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    poller = select.poll()  # not select(): a busy server's descriptors pass 1024
    poller.register(conn.fileno(), select.POLLIN)
    if poller.poll(0):
        ConnectionPool.check_connection(conn)


def open_pool(url: str, max_size: int, name: str = "llmtap") -> ConnectionPool[Any]:
    """A pool of autocommit connections to ``url``. Each connection is checked before it is
    lent (``check``), so after a restart of the server the broken ones are replaced, not
    handed out."""
    return ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        kwargs={"autocommit": True, "cursor_factory": psycopg.ClientCursor, "connect_timeout": 5},
        configure=_configure,
        check=check,
        # A request waits this long for a connection (the server down: it then answers 503).
        timeout=10,
        name=name,
        open=True,
    )
