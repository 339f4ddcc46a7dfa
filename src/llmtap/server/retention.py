"""The retention purge: on a schedule inside ``llmtap serve``, each project's raw events older
than its retention (its own, else ``retention_days``) are deleted, in the store's bounded
chunks; the stats they counted in stay unless ``retention_keep_stats`` is off.

With several server processes on one database, one purges at a time: the holder of a lease in
the database (the alert evaluator's mechanism, under another name). The time of the next purge
is kept in the store, so the dashboard of any process can show it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..settings import resolve
from ..store import Store
from ._schedule import LeasedJob
from .otlp.logs import HELD_FOR_US

__all__ = ["LEASE", "NEXT_PURGE", "Purger", "retention_of"]

log = logging.getLogger("llmtap.retention")
LEASE = "retention-purge"
NEXT_PURGE = "retention_next_purge_us"  # a meta value: when the holder purges next
_DAY_US = 86_400_000_000


def retention_of(store: Store, project_id: int, default_days: int) -> int:
    """The days the project's raw events are kept (0: forever)."""
    own = store.retention_days(project_id)
    return default_days if own is None else own


class Purger(LeasedJob):
    """Purges every ``interval`` seconds on a thread of its own while it holds the lease.
    ``clock`` (seconds since the epoch) is injectable, for tests."""

    lease = LEASE
    thread_name = "llmtap-retention"

    def __init__(
        self,
        store: Store,
        days: int | None = None,
        interval: float | None = None,
        keep_stats: bool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(store, float(resolve("retention_interval", interval)), clock)
        self.days = int(resolve("retention_days", days))
        self.keep_stats = bool(resolve("retention_keep_stats", keep_stats))

    def run_once(self) -> dict[str, Any] | None:
        """One purge, if this process holds the lease: how many events went, by project
        (None: another process purges)."""
        now_us = int(self.clock() * 1_000_000)
        # A purge of a large backlog may outlast one interval: the lease outlives it.
        ttl = int(max(3 * self.interval, 600.0) * 1_000_000)
        if not self.holds_lease(now_us, ttl):
            return None
        purged: dict[str, Any] = {}
        projects = self.store.list_projects()
        cutoffs: dict[int, int | None] = {}
        for project in projects:
            days = retention_of(self.store, project["id"], self.days)
            cutoffs[project["id"]] = now_us - days * _DAY_US if days > 0 else None
        # Whole months first where the store has them (PostgreSQL), then the rest by rows.
        # A step that fails is logged and the others go on: one project's trouble (or a
        # month's detach giving up behind a long read) must not keep every project's events.
        dropped: dict[int, int] = {}
        try:
            dropped = self.store.drop_expired_partitions(cutoffs, self.keep_stats)
        except Exception:
            log.exception("retention: months could not be dropped; purging by rows")
        for project in projects:
            cut = cutoffs[project["id"]]
            if cut is None:
                continue
            try:
                n = dropped.get(project["id"], 0)
                n += self.store.purge_before(project["id"], cut, self.keep_stats)
                # What stays of the purged calls is counts, not what they asked.
                self.store.forget_unused_prompts(project["id"])
            except Exception:
                log.exception("retention: the purge of %r failed", project["name"])
                continue
            if n:
                purged[project["name"]] = n
                log.info("retention: %d events of %r purged", n, project["name"])
        # OTLP log records whose span never came: the logs endpoint drops them as records
        # arrive; this drops them when none arrive any more.
        self.store.expire_held(now_us - HELD_FOR_US)
        self.store.set_meta(NEXT_PURGE, str(now_us + int(self.interval * 1_000_000)))
        return purged
