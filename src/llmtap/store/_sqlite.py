"""The SQLite store: the embedded default, one file, WAL mode.

One connection writes, under a lock: SQLite allows one writer at a time anyway. Event rows are
written with group commit: every request thread queues its rows, and whichever thread gets the
write lock commits everything queued so far in one transaction, so concurrent batches share a
commit. That transaction holds the events rows alone; what is derived from them (aggregates,
attribute and text indexes, templates: see ``_derive``) follows in chunks of thousands, on a
thread of its own, at most ``derive_delay`` (a second) later. Reads that use derived tables catch up
first, so what a client stored is in the stats it asks for next.

Each reading thread has its own connection, which WAL lets read while the writer writes.
Several server processes on one file each have a writer. They take turns through a lock on a
file beside the database (``<db>-writer``), which wakes the next one as soon as it is free:
SQLite's own busy wait polls, sleeping up to 100 ms between tries, and two workers that
relied on it ingested less than one (measured with ``bench/ingest.py``). The busy timeout is
kept for writers that do not take that lock (an older llmtap), so none sees "database is
locked".
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import (
    _admin,
    _alerts,
    _boards,
    _context,
    _copy,
    _delete,
    _derive,
    _held,
    _hist,
    _queries,
    _rederive,
    _retention,
    _testsets,
    _users,
)
from ._bulk import insert_many
from ._checkpoint import WAL_AUTOCHECKPOINT_PAGES, Checkpointer
from ._common import EVENT_COLUMNS, StoreUnavailable
from ._delete import deleted_epoch
from ._facts import Facts
from ._migrations import migrate_sqlite

__all__ = ["DERIVE_DELAY", "DERIVE_EVENTS", "SQLiteStore"]

log = logging.getLogger("llmtap.store")

_INSERT_EVENT = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)})"
_EVENT_ID_TAKEN = "ON CONFLICT (project_id, id) DO NOTHING"
_PROJECT = EVENT_COLUMNS.index("project_id")
_ID = EVENT_COLUMNS.index("id")
WRITER_CACHE_KIB = 65536
# A group commit takes at most this many rows (a bound on how long the lock is held).
_GROUP_ROWS = 5000
# Derivation runs when this many events wait, or this many seconds after the last run. Larger
# chunks sum more events into each aggregate row (10,000 and 1 s ingest ~20% faster than
# 5,000 and 0.5 s; 20,000 and 2 s no faster still), at the price of memory and of the wait of
# a read that catches up (10,000 events take 0.2 to 0.3 s to derive here).
DERIVE_EVENTS = 10_000
DERIVE_DELAY = 1.0
# Past this many waiting (derivation falling behind), a commit derives before it returns, so
# memory stays bounded.
_DERIVE_AT_MOST = 3 * DERIVE_EVENTS
_BODY = len(EVENT_COLUMNS) - 1
_MAX_SEQ = "SELECT COALESCE(max(seq), 0) FROM events"

# An event committed and not derived yet: its seq, its row, its facts. A row that came with
# its facts is kept without its body; one that came without (read back from the file, after
# a crash or from another process) keeps its body, and its facts are parsed from it when it
# is derived.
_Underived = tuple[int, Sequence[Any], Facts | None]


# The files of one database: prompts and responses are in all of them.
_COMPANIONS = ("-wal", "-shm", "-writer")


def _make_private(path: str) -> None:
    """Make the database file (created if missing) and its companions readable and writable by
    their owner only (0600): whatever the umask, and also when an older llmtap made them
    world-readable. SQLite gives the ``-wal`` and ``-shm`` it creates the database's mode."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except PermissionError:  # another user's file, shared on purpose: theirs to decide
        log.warning("cannot make %s private (not its owner)", path)
    finally:
        os.close(fd)
    for suffix in _COMPANIONS:
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.chmod(path + suffix, 0o600)


class _WriteLock:
    """The right to write: a lock between this process's threads, then an exclusive
    ``flock`` on ``path`` between processes (None: this process only, for ``:memory:``)."""

    def __init__(self, path: str | None) -> None:
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600) if path else None

    def __enter__(self) -> None:
        self._lock.acquire()
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _Pending:
    """One request's rows, waiting for a group commit."""

    __slots__ = ("done", "error", "rows", "stored")

    def __init__(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.stored = 0
        self.done = False
        self.error: BaseException | None = None


class SQLiteStore:
    """The ``Store`` contract (see ``llmtap.store``) on one SQLite file.

    This class holds the connections, the write path (group commit) and derivation; every
    other operation is a plain function of a module by concern whose first parameter is the
    store, made a method below by assignment (in the contract's order): one definition, no
    wrapper to keep in step with it. ``tests/test_store_contract.py`` compares signatures."""

    backend = "sqlite"
    _write_lock: _WriteLock

    # -- events: reading (writing is below) -----------------------------------------------
    get_event = _queries.get_event
    list_events = _queries.list_events
    iter_events = _queries.iter_events
    # -- stats and templates --------------------------------------------------------------
    stats = _queries.stats
    stats_many = _queries.stats_many
    templates = _queries.templates
    # -- prices ---------------------------------------------------------------------------
    price_overrides = _queries.price_overrides
    unpriced_models = _queries.unpriced_models
    set_price_override = _queries.set_price_override
    reprice = _queries.reprice
    # -- projects and keys ----------------------------------------------------------------
    ensure_project = _admin.ensure_project
    project_id = _admin.project_id
    list_projects = _admin.list_projects
    create_key = _admin.create_key
    key_by_hash = _admin.key_by_hash
    list_keys = _admin.list_keys
    set_key_scopes = _admin.set_key_scopes
    revoke_key = _admin.revoke_key
    # -- users, sessions, invitations, failed logins --------------------------------------
    count_users = _users.count_users
    create_user = _users.create_user
    user_by_name = _users.user_by_name
    set_password = _users.set_password
    delete_user = _users.delete_user
    list_users = _users.list_users
    set_role = _users.set_role
    remove_member = _users.remove_member
    create_session = _users.create_session
    session_user = _users.session_user
    revoke_session = _users.revoke_session
    create_invitation = _users.create_invitation
    invitation = _users.invitation
    accept_invitation = _users.accept_invitation
    record_failure = _users.record_failure
    count_failures = _users.count_failures
    clear_failures = _users.clear_failures
    # -- feedback, meta values -----------------------------------------------------------
    list_feedback = _admin.list_feedback
    get_meta = _admin.get_meta
    set_meta = _admin.set_meta
    # -- context spans --------------------------------------------------------------------
    insert_context = _context.insert_context
    chain_context = _context.chain_context
    # -- OTLP log records held for their span ---------------------------------------------
    hold_records = _held.hold_records
    held_records = _held.held_records
    held_sizes = _held.held_sizes
    forget_held = _held.forget_held
    expire_held = _held.expire_held
    existing_event_ids = _held.existing_event_ids
    # -- delete ---------------------------------------------------------------------------
    delete_events = _delete.delete_events
    # -- retention ------------------------------------------------------------------------
    retention_days = _retention.retention_days
    set_retention_days = _retention.set_retention_days
    oldest_event_us = _retention.oldest_event_us
    purge_before = _retention.purge_before
    forget_unused_prompts = _retention.forget_unused_prompts
    drop_expired_partitions = _retention.drop_expired_partitions
    # -- a logical dump and load ----------------------------------------------------------
    tables = _copy.tables
    count_rows = _copy.count_rows
    read_rows = _copy.read_rows
    copy_progress = _copy.copy_progress
    write_rows = _copy.write_rows
    finish_copy = _copy.finish_copy
    # -- alerts and budgets ----------------------------------------------------------------
    alert_items = _alerts.alert_items
    every_alert_item = _alerts.every_alert_item
    put_alert_item = _alerts.put_alert_item
    delete_alert_item = _alerts.delete_alert_item
    alert_states = _alerts.alert_states
    record_alerts = _alerts.record_alerts
    claim_notifications = _alerts.claim_notifications
    finish_notification = _alerts.finish_notification
    alert_history = _alerts.alert_history
    take_lease = _alerts.take_lease
    drop_lease = _alerts.drop_lease

    list_boards = _boards.list_boards
    list_board_templates = _boards.list_board_templates
    board = _boards.board
    create_board = _boards.create_board
    update_board = _boards.update_board
    board_versions = _boards.board_versions
    board_version = _boards.board_version
    delete_board = _boards.delete_board
    create_share = _boards.create_share
    share_by_hash = _boards.share_by_hash
    list_shares = _boards.list_shares
    revoke_share = _boards.revoke_share
    attribute_keys = _boards.attribute_keys

    create_testset = _testsets.create_testset
    list_testsets = _testsets.list_testsets
    get_testset = _testsets.get_testset
    delete_testset = _testsets.delete_testset
    add_cases = _testsets.add_cases
    update_case = _testsets.update_case
    delete_case = _testsets.delete_case
    create_run = _testsets.create_run
    list_runs = _testsets.list_runs
    get_run = _testsets.get_run
    run_case_ids = _testsets.run_case_ids
    add_results = _testsets.add_results
    finish_run = _testsets.finish_run

    def __init__(self, path: str | Path, derive_delay: float = DERIVE_DELAY) -> None:
        """``derive_delay``: at most how long committed events wait to be derived when no
        read asks for them (see ``_Deriver``)."""
        self.path = str(path)
        self.derive_delay = derive_delay
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            _make_private(self.path)
        self._write_lock = _WriteLock(None if self.path == ":memory:" else self.path + "-writer")
        self._pending: list[_Pending] = []
        self._pending_lock = threading.Lock()
        self._local = threading.local()
        self._ids = _derive.IdCache()
        self._underived: list[_Underived] = []  # under the write lock
        self._epoch = "0"  # of the deletes _underived knows of (see _delete)
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
        # What a crash left underived (or another process: it derives it too, later) first.
        self.catch_up()
        self._deriver = _Deriver(self, self._derive_waiting)

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

    def _query_reader(self, derived: bool = False) -> sqlite3.Connection:
        """The queries' reader (on PostgreSQL, a read replica's when there is one): on
        SQLite, the same as ``_reader``."""
        return self._reader()

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

    @contextlib.contextmanager
    def _transaction(self, project_id: int) -> Iterator[sqlite3.Connection]:
        """A write transaction on the writer, every stored event derived first (what the
        modules that adjust the derived tables need: ``_delete``, repricing). One writer
        at a time, whatever the project."""
        with self._write_lock:
            self._derive()
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._deriver.close()
        self.catch_up()
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._writer.close()
        self._write_lock.close()

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
            (before,) = conn.execute(_MAX_SEQ).fetchone()
            stored = 0
            for item in group:
                changes = conn.total_changes
                insert_many(conn, _INSERT_EVENT, item.rows, _EVENT_ID_TAKEN)
                item.stored = conn.total_changes - changes
                stored += item.stored
            rows = [row for item in group for row in item.rows]
            if stored == len(rows):  # no duplicate: the rows took the next seqs, in order
                new = list(zip(range(before + 1, before + 1 + stored), rows, strict=True))
            else:
                seq_of = {
                    (project_id, event_id): seq
                    for seq, project_id, event_id in conn.execute(
                        "SELECT seq, project_id, id FROM events WHERE seq > ?", (before,)
                    )
                }
                new = []
                for row in rows:
                    seq = seq_of.pop((row[_PROJECT], row[_ID]), None)
                    if seq is not None:
                        new.append((seq, row))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if self._checkpointer is not None:
            self._checkpointer.committed()
        for seq, row in new:
            facts = getattr(row, "facts", None)
            self._underived.append((seq, row if facts is None else row[:_BODY], facts))
        if len(self._underived) >= _DERIVE_AT_MOST:
            self._derive()
        elif len(self._underived) >= DERIVE_EVENTS:
            self._deriver.wake()

    # -- deriving ------------------------------------------------------------------------

    def catch_up(self) -> None:
        """Derive every event committed so far, by this process or another (see ``_derive``).
        Cheap when there is nothing to do."""
        if not self._underived:
            conn = self._reader()
            (last,) = conn.execute(_MAX_SEQ).fetchone()
            if last <= _derive.derived_through(conn):
                return
        with self._write_lock:
            self._derive()

    def _derive(self) -> None:
        """Derive what is committed and not derived yet, in one transaction that moves the
        watermark. Holds the write lock. An event whose derivation fails is logged and left
        out; the others are derived."""
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            epoch = deleted_epoch(conn)
            if epoch != self._epoch:  # a delete may have freed seqs we hold: read the file
                self._underived, self._epoch = [], epoch
            done = _derive.derived_through(conn)
            (last,) = conn.execute(_MAX_SEQ).fetchone()
            todo = [item for item in self._underived if done < item[0] <= last]
            if len(todo) < last - done:  # another process's, or what a crash left
                todo += self._stored_underived(conn, done, {item[0] for item in todo})
            if todo:
                _derive.derive_each(conn, todo, self._ids)
            if last != done:
                _derive.set_derived_through(conn, last)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._ids.clear()  # it may hold ids of rows rolled back
            raise
        self._underived = [item for item in self._underived if item[0] > last]
        if self._checkpointer is not None:
            self._checkpointer.committed()

    def _derive_waiting(self) -> None:
        """The deriver's turn: what this process committed, if anything waits."""
        if self._underived:
            with self._write_lock:
                self._derive()

    @staticmethod
    def _stored_underived(
        conn: sqlite3.Connection, after: int, known: set[int]
    ) -> list[_Underived]:
        columns = ", ".join(EVENT_COLUMNS)
        return [
            (row[0], row[1:], None)
            for row in conn.execute(
                f"SELECT seq, {columns} FROM events WHERE seq > ? ORDER BY seq", (after,)
            )
            if row[0] not in known
        ]

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
                through = _derive.derived_through(conn)
                stored = _rederive.add_feedback(
                    conn, project_id, feedback_key, rating, better, feedback_id, through
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return stored


class _Deriver:
    """The thread that derives (see ``_derive``): ``work`` every ``store.derive_delay``
    seconds, or at once when woken (``DERIVE_EVENTS`` wait). The PostgreSQL store runs one
    too."""

    def __init__(self, store: Any, work: Callable[[], None]) -> None:
        self._store = store
        self._work = work
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="llmtap-derive", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._store.derive_delay)
            self._wake.clear()
            try:
                self._work()
            except StoreUnavailable as e:  # PostgreSQL restarting, say: no traceback each turn
                log.warning("deriving stats and indexes failed (%s); retrying", e)
            except Exception:  # a full disk, say: the events wait, and the next turn retries
                log.exception("deriving stats and indexes failed; retrying")
