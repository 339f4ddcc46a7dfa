"""Where events live: SQLite by default, one contract for every backend.

The server imports the store; the SDK never does.
"""

from __future__ import annotations

from ._common import EventFilter, KeyInfo, decode_cursor, event_row, to_us
from ._sqlite import SQLiteStore

__all__ = [
    "EventFilter",
    "KeyInfo",
    "SQLiteStore",
    "Store",
    "decode_cursor",
    "event_row",
    "open_store",
    "to_us",
]

Store = SQLiteStore


def open_store(db: str) -> Store:
    """The store at ``db``: a SQLite file path (created if missing), migrated to the newest
    schema."""
    if db.startswith(("postgres://", "postgresql://")):
        raise NotImplementedError("PostgreSQL support is not there yet; use a SQLite path")
    return SQLiteStore(db)
