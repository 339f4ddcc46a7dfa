"""The SQLite backend's own steps, for code that times or inspects SQLite itself rather than a
store: ``bench/ingest.py`` measures the physical limit of the server's SQL beside the server.

Not the store contract (``llmtap.store.Store``): the server never uses these. Each is the very
step ``SQLiteStore`` takes, so what is measured is what the server does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from . import _derive
from ._bulk import insert_many
from ._derive import Derived
from ._facts import Facts
from ._migrations import migrate_sqlite
from ._sqlite import _EVENT_ID_TAKEN, _INSERT_EVENT, DERIVE_EVENTS, WRITER_CACHE_KIB

__all__ = [
    "DERIVE_EVENTS",
    "WRITER_CACHE_KIB",
    "Derived",
    "derived_rows",
    "insert_event_rows",
    "make_schema",
    "write_derived",
]


def make_schema(conn: sqlite3.Connection) -> None:
    """Give ``conn`` the store's functions and its database the newest schema."""
    _derive.install(conn)
    migrate_sqlite(conn)


def insert_event_rows(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Insert events-table rows (``event_row``) as a group commit does, in ``conn``'s
    transaction; an id already stored is skipped."""
    insert_many(conn, _INSERT_EVENT, rows, _EVENT_ID_TAKEN)


def derived_rows(
    conn: sqlite3.Connection, fresh: Sequence[tuple[int, Sequence[Any], Facts]]
) -> Derived:
    """The derived rows of events (seq, events-table row, facts), as derivation plans them."""
    return _derive.plan(conn, fresh)


def write_derived(conn: sqlite3.Connection, rows: Derived) -> None:
    """Write rows ``derived_rows`` planned, in ``conn``'s transaction."""
    _derive.write(conn, rows)
