"""A logical dump and load of a whole store, for ``llmtap migrate-store``: table by table (the
same names and columns on both backends), in batches ordered by each table's primary key, so a
copy reads and holds one batch at a time and can resume after the last key it wrote.

What is not copied: the migrations' own table (the target has its schema already), the text
index (each backend's own structure: rebuilt from the events as they are written), the
process lease, and meta values that describe one database's state rather than the data
(derivation's watermark, the delete epoch, a copy's own progress).

The target's derived rows (aggregates, indexes, templates) are copied as they are, never
derived again: each batch of events sets the target's derivation watermark past itself in
the transaction that writes it, so a SQLite target does not count the events a second time.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ._bulk import copy_new, insert_many
from ._common import is_partition_name
from ._dialect import dialect_of
from ._facts import searchable_text
from ._sql import Conn

if TYPE_CHECKING:
    from ._sqlite import SQLiteStore

__all__ = [
    "copy_progress",
    "count_rows",
    "finish_copy",
    "read_rows",
    "read_rows_on",
    "tables",
    "write_rows",
]

# Copied first, in this order: every foreign key of the schema points at one of them.
_FIRST = ("projects", "users")
# Derivation's own state is not copied: the source derives everything first (``catch_up``),
# so PostgreSQL's queue of events to derive is empty, and SQLite keeps a watermark instead.
# PostgreSQL's ids of stored events (``event_ids``) are recorded as the events are written.
_SKIPPED_TABLES = {"_llmtap_migrations", "events_text", "alert_lease", "derive_queue", "event_ids"}
_PROGRESS = "migrate_store:"
# Not LIKE: "_" is one of its wildcards.
_META_FILTER = (
    " WHERE key NOT IN ('derived_seq', 'deleted_epoch')"
    f" AND substr(key, 1, {len(_PROGRESS)}) <> '{_PROGRESS}'"
)


# Unique, and in the order of an index (``event_attrs_by_seq``, then one row per key).
_WALKED_BY = {"event_attrs": ["project_id", "seq", "key"]}


def _ident(name: str) -> str:
    """A table or column name, checked against what the schema's own names look like (they
    come from the database's catalogue, never from a user)."""
    if not name.replace("_", "").isalnum() or not name.isascii():
        raise ValueError(f"unexpected name in the schema: {name!r}")
    return name


def tables(store: SQLiteStore) -> list[dict[str, Any]]:
    """The tables a copy moves, parents first: ``{"name", "columns", "key"}``, ``key`` the
    columns that order and resume it (the primary key's)."""
    conn = store._reader()
    found: dict[str, dict[str, Any]] = {}
    if store.backend == "sqlite":
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for name in names:
            if name.startswith(("sqlite_", "events_text")) or name in _SKIPPED_TABLES:
                continue
            info = conn.execute(f"PRAGMA table_info({_ident(name)})").fetchall()
            key = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
            found[name] = {"name": name, "columns": [r[1] for r in info], "key": key}
    else:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ).fetchall()
        for name, column in rows:
            # A partition's rows are read through ``events``.
            if name not in _SKIPPED_TABLES and not is_partition_name(name):
                found.setdefault(name, {"name": name, "columns": [], "key": []})
                found[name]["columns"].append(column)
        keys = conn.execute(
            "SELECT k.table_name, k.column_name FROM information_schema.table_constraints c"
            " JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name"
            " AND k.table_schema = c.table_schema AND k.table_name = c.table_name"
            " WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = current_schema()"
            " ORDER BY k.table_name, k.ordinal_position"
        ).fetchall()
        for name, column in keys:
            if name in found:
                found[name]["key"].append(column)
    for table in found.values():
        # A table without a primary key (PostgreSQL's event_attrs: indexed by hashes) is
        # walked in an order one of its indexes gives, else of all its columns (none of them
        # nullable). A walk no index gives sorts the rest of the table for every batch.
        table["key"] = table["key"] or _WALKED_BY.get(table["name"]) or list(table["columns"])
    order = [n for n in _FIRST if n in found] + sorted(n for n in found if n not in _FIRST)
    return [found[n] for n in order]


def _where_meta(table: str) -> str:
    return _META_FILTER if table == "meta" else ""


def count_rows(store: SQLiteStore, table: str) -> int:
    """How many rows of ``table`` a copy moves."""
    sql = f"SELECT count(*) FROM {_ident(table)}{_where_meta(table)}"
    return int(store._reader().execute(sql).fetchone()[0])


def read_rows(
    store: SQLiteStore,
    table: dict[str, Any],
    after: list[Any] | None,
    limit: int,
) -> list[tuple[Any, ...]]:
    """Up to ``limit`` rows of ``table`` (as ``tables`` gives it) whose key is past ``after``
    (None: from the first), in key order; its columns in ``table["columns"]``'s order."""
    return read_rows_on(store._reader(), table, after, limit)


def read_rows_on(
    conn: Conn, table: dict[str, Any], after: list[Any] | None, limit: int
) -> list[tuple[Any, ...]]:
    """``read_rows`` on the connection ``conn``."""
    columns = ", ".join(_ident(c) for c in table["columns"])
    key = ", ".join(_ident(c) for c in table["key"])
    where = _where_meta(table["name"])
    params: list[Any] = []
    if after is not None:
        # A row value comparison walks the key's index on both backends.
        marks = ", ".join("?" * len(after))
        where += (" AND " if where else " WHERE ") + f"({key}) > ({marks})"
        params = list(after)
    sql = f"SELECT {columns} FROM {_ident(table['name'])}{where} ORDER BY {key} LIMIT ?"
    return [tuple(r) for r in conn.execute(sql, [*params, limit]).fetchall()]


def copy_progress(store: SQLiteStore, table: str) -> dict[str, Any] | None:
    """How far a copy into this store got with ``table``: ``{"after": key, "done": bool}``."""
    value = store.get_meta(_PROGRESS + table)
    return None if value is None else dict(json.loads(value))


def write_rows(
    store: SQLiteStore,
    table: dict[str, Any],
    rows: list[tuple[Any, ...]],
    done: bool = False,
) -> None:
    """Add ``rows`` (read by ``read_rows`` from another store) to ``table``, rows already
    there skipped, and record how far the copy got, in one transaction: a copy that stops
    anywhere resumes after the last batch written. ``done``: the table is complete."""
    name = table["name"]
    columns = table["columns"]
    after = None
    if rows:
        last = rows[-1]
        after = [last[columns.index(c)] for c in table["key"]]
    else:
        previous = copy_progress(store, name)
        after = previous["after"] if previous else None
    progress = json.dumps({"after": after, "done": done})
    with store._transaction(0) as conn:
        head = f"INSERT INTO {_ident(name)} ({', '.join(_ident(c) for c in columns)})"
        events = name == "events" and bool(rows)
        if copy_new(conn, head, rows):
            fresh = rows if events else []  # every row was new
        else:
            fresh = _not_stored(conn, columns, rows) if events else []
            insert_many(conn, head, rows, "ON CONFLICT DO NOTHING")
        if fresh:
            _index_texts(conn, columns, fresh)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (_PROGRESS + name, progress),
        )


def _not_stored(conn: Any, columns: list[str], rows: list[tuple[Any, ...]]) -> list[Any]:
    """The event rows not in the target yet (a resumed batch may have some)."""
    project, seq = columns.index("project_id"), columns.index("seq")
    marks = ", ".join("?" * len(rows))
    have = {
        (p, s)
        for p, s in conn.execute(
            f"SELECT project_id, seq FROM events WHERE seq IN ({marks})", [r[seq] for r in rows]
        ).fetchall()
    }
    return [r for r in rows if (r[project], r[seq]) not in have]


def _index_texts(conn: Any, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """Index new events' texts in the target's own way, and move its derivation watermark
    past them: their aggregates are copied, not derived again."""
    project, seq, body = (columns.index(c) for c in ("project_id", "seq", "body"))
    dialect_of(conn).remember_ids(conn, [(row[project], row[columns.index("id")]) for row in rows])
    texts = []
    for row in rows:
        text = searchable_text(json.loads(row[body]))
        if text:
            texts.append((row[project], row[seq], text))
    dialect_of(conn).index_texts(conn, texts)
    # The batch's own last seq, never lowering the mark: ``max(seq)`` of every partition of
    # PostgreSQL's events is no index read (their keys start with the project), and grew
    # with each batch of a copy.
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('derived_seq', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        " WHERE CAST(meta.value AS BIGINT) < CAST(excluded.value AS BIGINT)",
        (str(max(row[seq] for row in rows)),),
    )


def finish_copy(store: SQLiteStore) -> None:
    """After a copy: identities start past the ids copied (PostgreSQL's sequences do not see
    explicit ids; SQLite's rowids need nothing)."""
    if store.backend == "sqlite":
        return
    conn = store._reader()
    identities = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ).fetchall()
    store._write(
        [
            (
                f"SELECT setval(pg_get_serial_sequence(?, ?),"
                f" COALESCE((SELECT max({_ident(c)}) FROM {_ident(t)}), 0) + 1, false)",
                (t, c),
            )
            for t, c in identities
        ]
    )
