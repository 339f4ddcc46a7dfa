"""WAL checkpoints off the write path.

In WAL mode every commit appends pages to the ``-wal`` file, and a checkpoint copies them back
into the database file (and syncs it). SQLite's automatic checkpoint runs inside the commit
that crosses its threshold, that is, inside an ingest request holding the write lock. Here a
thread of its own, with its own connection, checkpoints instead (``PASSIVE``: it never blocks
the writer), at most twice a second and only after commits; while SQLite copies, the GIL is
free, so the write path goes on on the other core. A checkpoint that cannot keep up under
sustained ingest would let the WAL grow: past ``limit_pages`` it is restarted (``RESTART``
waits for the current writer, then the next one starts the WAL from its beginning).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

__all__ = ["Checkpointer"]

log = logging.getLogger("llmtap.store")

INTERVAL = 0.5
LIMIT_PAGES = 20_000  # about 80 MB of WAL


class Checkpointer:
    def __init__(
        self, connect: Callable[[], sqlite3.Connection], limit_pages: int = LIMIT_PAGES
    ) -> None:
        self._connect = connect
        self._limit = limit_pages
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmtap-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """Tell the checkpointer there is something to copy (cheap: called at every commit)."""
        self._dirty.set()

    def close(self) -> None:
        self._stopping.set()
        self._dirty.set()
        self._thread.join(10)

    def _run(self) -> None:
        conn = self._connect()
        try:
            while not self._stopping.is_set():
                self._dirty.wait()
                if self._stopping.wait(INTERVAL):
                    break
                self._dirty.clear()
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            _busy, wal_pages, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if wal_pages > self._limit:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.Error as exc:  # another process checkpointing, a full disk: next time
            log.debug("checkpoint skipped: %s", exc)
