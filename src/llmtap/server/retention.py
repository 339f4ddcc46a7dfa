"""The retention purge: on a schedule inside ``llmtap serve``, each project's raw events older
than its retention (its own, else ``retention_days``) are deleted, in the store's bounded
chunks; the stats they counted in stay unless ``retention_keep_stats`` is off.

With several server processes on one database, one purges at a time: the holder of a lease in
the database (the alert evaluator's mechanism, under another name). The time of the next purge
is kept in the store, so the dashboard of any process can show it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..settings import resolve
from ..store import Store

__all__ = ["LEASE", "NEXT_PURGE", "Purger", "retention_of"]

log = logging.getLogger("llmtap.retention")
LEASE = "retention-purge"
NEXT_PURGE = "retention_next_purge_us"  # a meta value: when the holder purges next
_DAY_US = 86_400_000_000


def retention_of(store: Store, project_id: int, default_days: int) -> int:
    """The days the project's raw events are kept (0: forever)."""
    own = store.retention_days(project_id)
    return default_days if own is None else own


class Purger:
    """Purges every ``interval`` seconds on a thread of its own while it holds the lease.
    ``clock`` (seconds since the epoch) is injectable, for tests."""

    def __init__(
        self,
        store: Store,
        days: int | None = None,
        interval: float | None = None,
        keep_stats: bool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.days = int(resolve("retention_days", days))
        self.interval = float(resolve("retention_interval", interval))
        self.keep_stats = bool(resolve("retention_keep_stats", keep_stats))
        self.clock = clock
        self.holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="llmtap-retention", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        try:
            self.store.drop_lease(LEASE, self.holder)
        except Exception:  # the store may be closing too: the lease then simply expires
            log.warning("could not give the retention purge's lease up", exc_info=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a bad turn (the disk, a bug) must not end the schedule
                log.exception("retention purge failed; retrying at the next interval")
            self._stop.wait(self.interval)

    def run_once(self) -> dict[str, Any] | None:
        """One purge, if this process holds the lease: how many events went, by project
        (None: another process purges)."""
        now_us = int(self.clock() * 1_000_000)
        # A purge of a large backlog may outlast one interval: the lease outlives it.
        ttl = int(max(3 * self.interval, 600.0) * 1_000_000)
        if not self.store.take_lease(LEASE, self.holder, now_us, ttl):
            return None
        purged: dict[str, Any] = {}
        for project in self.store.list_projects():
            days = retention_of(self.store, project["id"], self.days)
            if days <= 0:
                continue
            n = self.store.purge_before(project["id"], now_us - days * _DAY_US, self.keep_stats)
            if n:
                purged[project["name"]] = n
                log.info("retention: %d events of %r purged", n, project["name"])
        self.store.set_meta(NEXT_PURGE, str(now_us + int(self.interval * 1_000_000)))
        return purged
