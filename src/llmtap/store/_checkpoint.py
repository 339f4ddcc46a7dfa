"""WAL checkpoints off the write path.

In WAL mode every commit appends pages to the ``-wal`` file, and a checkpoint copies them back
into the database file (and syncs it). SQLite's automatic checkpoint runs inside the commit
that crosses its threshold, that is, inside an ingest request holding the write lock. Here a
thread of its own, with its own connection, checkpoints instead (``PASSIVE``: it never blocks
the writer), at most twice a second and only after commits; while SQLite copies, the GIL is
free, so the write path goes on on the other core.

Under sustained ingest such a checkpoint never quite catches up (the writer appends while it
copies), and the WAL is only started again from its beginning after a complete one. So the
writer keeps SQLite's automatic checkpoint too, at ``WAL_AUTOCHECKPOINT_PAGES``: by then this
thread has copied nearly everything, and the writer's checkpoint, which nothing appends
during, has little left to copy and completes. No checkpoint here ever waits for readers or
writers (``RESTART`` would hold up ingest for as long as a reader, an export say, reads).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

__all__ = ["WAL_AUTOCHECKPOINT_PAGES", "Checkpointer"]

log = logging.getLogger("llmtap.store")

INTERVAL = 0.5
WAL_AUTOCHECKPOINT_PAGES = 10_000  # the writer's own, about 40 MB of WAL


class Checkpointer:
    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
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
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # another process checkpointing, a full disk: next time
            log.debug("checkpoint skipped: %s", exc)
