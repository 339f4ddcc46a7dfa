"""Many rows in one statement, for the write path.

``executemany`` steps once per row, and Python's sqlite3 lets go of the GIL around each step.
Taking it back after a step of microseconds is the problem: while another thread runs Python
(a request being validated), each take-back can wait the interpreter's whole switch interval,
5 ms. Measured here: 2,000 rows through ``executemany`` beside a busy thread took 6.2 s instead
of 11 ms. One ``INSERT`` with a hundred ``VALUES`` rows steps once, so the GIL changes hands
once per hundred rows; alone it is also a little faster (26 against 34 µs per events row).

A connection with a faster way of its own uses it: the PostgreSQL adaptor copies the rows
(``COPY``) and moves them in one statement (``_pg.PgConn.insert_rows``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from ._sql import Conn

__all__ = ["ROWS_PER_STATEMENT", "copy_new", "insert_many"]

# 100 rows of the widest table (events, 22 columns) bind 2,200 values, far under SQLite's
# limit of 32,766.
ROWS_PER_STATEMENT = 100


def insert_many(conn: Conn, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
    """``{head} VALUES (?, ...), (?, ...) {tail}`` for ``rows``, a hundred rows a statement.
    ``head`` is ``INSERT ... INTO table (columns)``; ``tail`` an optional ``ON CONFLICT``
    clause. Rows go in in order."""
    if not rows:
        return
    bulk = getattr(conn, "insert_rows", None)
    if bulk is not None:
        bulk(head, rows, tail)
        return
    width = len(rows[0])
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        conn.execute(_sql(head, width, len(chunk), tail), [v for row in chunk for v in row])


def copy_new(conn: Conn, head: str, rows: Sequence[Sequence[Any]]) -> bool:
    """``rows``, copied from another store, written straight in where the connection has a
    faster way for rows that are all new (PostgreSQL's ``copy_rows``): True. False when it
    has none, or one of them is not new: nothing written, ``insert_many`` is the way."""
    bulk = getattr(conn, "copy_rows", None)
    return bulk is not None and bool(rows) and bool(bulk(head, rows))


@functools.lru_cache(maxsize=512)
def _sql(head: str, width: int, n: int, tail: str) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return f"{head} VALUES {', '.join([row] * n)} {tail}"
