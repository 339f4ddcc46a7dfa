"""The SQLite store: the embedded default, one file, WAL mode.

One connection writes, under a lock: SQLite allows one writer at a time anyway. Event rows are
written with group commit: every request thread queues its rows, and whichever thread gets the
write lock commits everything queued so far in one transaction, so concurrent batches share a
commit (the cost that dominates ingest). Each reading thread has its own connection, which WAL
lets read while the writer writes. Several server processes on one file each have a writer;
``BEGIN IMMEDIATE`` with a busy timeout queues them, so none sees "database is locked".
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import _derive, _hist
from ._checkpoint import WAL_AUTOCHECKPOINT_PAGES, Checkpointer
from ._common import EVENT_COLUMNS, KeyInfo
from ._migrations import migrate_sqlite
from ._queries import Queries, _event_out

__all__ = ["SQLiteStore"]

_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)}) "
    "ON CONFLICT (project_id, id) DO NOTHING"
)
_LIST_COLUMNS = "seq, started_us, body, environment, template_revision, cost_usd"
WRITER_CACHE_KIB = 65536
# A group commit takes at most this many rows (a bound on how long the lock is held).
_GROUP_ROWS = 5000


class _Pending:
    """One request's rows, waiting for a group commit."""

    __slots__ = ("done", "error", "rows", "stored")

    def __init__(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.stored = 0
        self.done = False
        self.error: BaseException | None = None


class SQLiteStore(Queries):
    backend = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._pending_lock = threading.Lock()
        self._local = threading.local()
        self._dims_cache: dict[tuple[Any, ...], int] = {}  # see _derive._dims_ids
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode=WAL")
        # Ingest touches pages all over the indexes, aggregates and text index: a page cache of
        # 64 MiB keeps them in memory rather than re-read from the file at each transaction.
        self._writer.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        # Checkpoints run on a thread of their own (see _checkpoint); the writer's automatic
        # one, every ~40 MB of WAL rather than 4 MB, finishes what that thread could not.
        self._writer.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        _derive.install(self._writer)
        self.applied_migrations = migrate_sqlite(self._writer)
        self._checkpointer = Checkpointer(self._connect) if self.path != ":memory:" else None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        # In WAL mode NORMAL survives a crash of the process (what an acknowledgement promises);
        # only a power cut can take the last transactions.
        conn.execute("PRAGMA synchronous=NORMAL")
        # Several processes may write one file (server workers, ``llmtap keys create``): a
        # writer waits its turn rather than failing with "database is locked".
        conn.execute("PRAGMA busy_timeout=60000")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.create_aggregate("llmtap_hist_sum", 1, _hist.HistSum)  # type: ignore[arg-type]
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def _write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[sqlite3.Cursor]:
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursors = [conn.execute(sql, params) for sql, params in statements]
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return cursors

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._writer.close()

    # -- projects and keys -------------------------------------------------------------------

    def ensure_project(self, name: str) -> int:
        now = datetime.now(timezone.utc).isoformat()
        self._write(
            [
                (
                    "INSERT INTO projects (name, created_at) VALUES (?, ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    (name, now),
                )
            ]
        )
        row = self._reader().execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def create_key(self, project: str, environment: str, key_hash: str, prefix: str) -> int:
        project_id = self.ensure_project(project)
        now = datetime.now(timezone.utc).isoformat()
        (cur,) = self._write(
            [
                (
                    "INSERT INTO api_keys (project_id, environment, key_hash, prefix, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (project_id, environment, key_hash, prefix, now),
                )
            ]
        )
        return int(cur.lastrowid or 0)

    def key_by_hash(self, key_hash: str) -> KeyInfo | None:
        row = (
            self._reader()
            .execute(
                "SELECT k.id, k.project_id, p.name, k.environment FROM api_keys k "
                "JOIN projects p ON p.id = k.project_id "
                "WHERE k.key_hash = ? AND k.revoked_at IS NULL",
                (key_hash,),
            )
            .fetchone()
        )
        return KeyInfo(*row) if row else None

    # -- writing -------------------------------------------------------------------------

    def insert_events(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Store event rows (see ``event_row``); an id already stored is skipped. Returns how
        many were new. Durable when it returns (committed; WAL survives a crash of the process).

        Thread-safe, and meant to be called from many request threads at once: their rows are
        committed together (group commit)."""
        if not rows:
            return 0
        mine = _Pending(rows)
        with self._pending_lock:
            self._pending.append(mine)
        with self._write_lock:
            # The thread before us may have committed our rows with its own.
            if not mine.done:
                self._commit_pending()
        if mine.error is not None:
            raise mine.error
        return mine.stored

    def _commit_pending(self) -> None:
        """Commit what is queued, in groups of at most ``_GROUP_ROWS`` rows. Holds the write
        lock. A group that fails is retried request by request, so one bad request cannot fail
        the others."""
        with self._pending_lock:
            queued, self._pending = self._pending, []
        group: list[_Pending] = []
        size = 0
        for item in queued:
            if group and size + len(item.rows) > _GROUP_ROWS:
                self._commit_group(group)
                group, size = [], 0
            group.append(item)
            size += len(item.rows)
        if group:
            self._commit_group(group)

    def _commit_group(self, group: list[_Pending]) -> None:
        try:
            self._insert(group)
        except Exception:
            if len(group) == 1:
                group[0].error = sys.exc_info()[1]
                group[0].done = True
                return
            for item in group:
                self._commit_group([item])
            return
        for item in group:
            item.done = True

    def _insert(self, group: list[_Pending]) -> None:
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            (before_seq,) = conn.execute("SELECT ifnull(max(seq), 0) FROM events").fetchone()
            for item in group:
                before = conn.total_changes
                conn.executemany(_INSERT_EVENT, item.rows)
                item.stored = conn.total_changes - before
            # Aggregates, attributes and text index: same transaction, new events only.
            rows = [row for item in group for row in item.rows]
            _derive.after_insert(conn, rows, before_seq, self._dims_cache)
            conn.execute("COMMIT")
            if self._checkpointer is not None:
                self._checkpointer.committed()
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def insert_feedback(
        self,
        project_id: int,
        feedback_key: str,
        rating: float | None,
        better: str | None,
        feedback_id: str | None = None,
    ) -> bool:
        """Store a feedback; False when one with this ``feedback_id`` is stored already."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "INSERT INTO feedback (project_id, feedback_key, rating, better_response,"
                    " created_us, feedback_id) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (project_id, feedback_id) WHERE feedback_id IS NOT NULL"
                    " DO NOTHING",
                    (
                        project_id,
                        feedback_key,
                        rating,
                        better,
                        int(time.time() * 1_000_000),
                        feedback_id,
                    ),
                )
                stored = cur.rowcount == 1
                if stored:
                    _derive.after_feedback(conn, project_id, feedback_key, rating)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return stored

    # -- reading -------------------------------------------------------------------------

    def get_event(self, project_id: int, event_id: str) -> dict[str, Any] | None:
        conn = self._reader()
        row = conn.execute(
            f"SELECT {_LIST_COLUMNS}, feedback_key FROM events WHERE project_id = ? AND id = ?",
            (project_id, event_id),
        ).fetchone()
        if row is None:
            return None
        event = _event_out(row[2:6])
        event["feedback"] = self._feedback(conn, project_id, row[6])
        return event

    def _feedback(
        self, conn: sqlite3.Connection, project_id: int, feedback_key: str | None
    ) -> list[dict[str, Any]]:
        if feedback_key is None:
            return []
        rows = conn.execute(
            "SELECT rating, better_response, created_us FROM feedback "
            "WHERE project_id = ? AND feedback_key = ? ORDER BY id",
            (project_id, feedback_key),
        ).fetchall()
        return [
            {
                "rating": rating,
                "better_response": better,
                "created_at": datetime.fromtimestamp(created / 1e6, timezone.utc).isoformat(),
            }
            for rating, better, created in rows
        ]
