"""A job inside ``llmtap serve`` that runs every ``interval`` seconds on a thread of its own,
done by one server process at a time: the holder of a lease in the database, renewed each
turn; a process that dies stops renewing and another takes over once the lease expires. The
alert evaluator and the retention purge are such jobs."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..store import Store

__all__ = ["LeasedJob"]

log = logging.getLogger("llmtap.server")


class LeasedJob:
    """Subclasses name their ``lease`` and ``thread_name`` and define ``run_once`` (which
    calls ``holds_lease`` first). ``clock`` (seconds since the epoch) is injectable."""

    lease = ""
    thread_name = ""

    def __init__(self, store: Store, interval: float, clock: Callable[[], float]) -> None:
        self.store = store
        self.interval = interval
        self.clock = clock
        self.holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        try:
            self.store.drop_lease(self.lease, self.holder)
        except Exception:  # the store may be closing too: the lease then simply expires
            log.warning("could not give the lease %r up", self.lease, exc_info=True)

    def holds_lease(self, now_us: int, ttl_us: int) -> bool:
        """Take or renew the lease until ``now_us + ttl_us``; False: another process has it."""
        return self.store.take_lease(self.lease, self.holder, now_us, ttl_us)

    def run_once(self) -> Any:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except Exception:  # a bad turn (the disk, a bug) must not end the schedule
                log.exception("%s failed; retrying at the next interval", self.thread_name)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
