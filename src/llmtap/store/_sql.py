"""Small helpers for SQL that runs unchanged on every backend (see ``_dialect`` for what
differs): lists of values as placeholders, and the id of a new row."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, TypeVar

__all__ = ["IN_CHUNK", "Conn", "chunks", "marks", "new_id"]

T = TypeVar("T")

# Values bound in one ``IN (...)``: under SQLite's 32,766 variables, with room for the others.
IN_CHUNK = 500


def chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """``values`` in slices of at most ``size`` (none when empty)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def marks(values: Sequence[Any]) -> str:
    """The placeholders of ``IN (...)`` for ``values``: ``?, ?, ?``."""
    return ", ".join("?" * len(values))


def new_id(conn: Any, insert: str, params: Sequence[Any], select: str) -> int:
    """Insert a row with a unique key and return its id; when another writer made the same
    row first (a concurrent transaction on PostgreSQL), its id. ``insert`` is an ``INSERT``
    without its conflict clause; ``select`` finds the row by the same ``params``."""
    row = conn.execute(f"{insert} ON CONFLICT DO NOTHING RETURNING id", params).fetchall()
    if not row:
        row = conn.execute(select, params).fetchall()
    return int(row[0][0])


class Conn(Protocol):
    """What the portable modules use of a connection: SQLite's, or the PostgreSQL adaptor
    (``_pg.PgConn``) in a transaction."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any: ...
