"""What became of the events a client handed to its exporter, counted exactly:
``client.stats()``.

Every event (and every feedback) is in exactly one of these states at any time, so that

    queued + adopted == delivered + failed + dropped + pending

- ``queued``: handed to the exporter by this process (those dropped at once included);
- ``adopted``: left in the spool by a process that ended, taken over by this one;
- ``delivered``: acknowledged by the server, after its commit;
- ``failed``: refused by the server for good (invalid, or a 4xx answer), or not buildable;
- ``dropped``: lost on our side: the memory queue full (``max_queue``), the spool full (its
  oldest batches go), or a spool file found damaged or gone;
- ``pending``: not delivered yet: in memory, being sent, or waiting in the spool (``spooled``
  of them, which outlive the process).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from ._spool import Entry

__all__ = ["ExportStats", "Ledger"]


@dataclass(frozen=True)
class ExportStats:
    """Counts of events (and feedback) since the exporter started; see ``llmtap.sdk._stats``:
    ``queued + adopted == delivered + failed + dropped + pending``."""

    queued: int
    adopted: int
    delivered: int
    failed: int
    dropped: int
    pending: int
    spooled: int


class Ledger:
    """The counts behind :class:`ExportStats`. Changed under one lock by the exporter's two
    threads, a batch at a time; the caller's thread only appends to the queue (read by its
    length) and, when memory is full, counts what it drops."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.taken = 0  # taken off the queue by the builder
        self.refused = 0  # dropped at the door, the queue being full
        self.building = 0  # taken, not yet built into a batch
        self.spooled = 0  # built or adopted, waiting in spool files
        self.memory = 0  # built, waiting in memory only (no usable spool)
        self.adopted = 0
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def in_memory(self, queue: deque[Any]) -> int:
        """Items held in memory (queued, being built, batches not spooled), read without the
        lock: never less than the truth (see ``Exporter.submit``)."""
        return len(queue) + self.building + self.memory

    def refuse(self, queue: deque[Any], item: Any, most: int) -> int:
        """Queue ``item`` if memory holds fewer than ``most`` items after all: 0; else drop it
        and count it: the events dropped so far."""
        with self.lock:
            if len(queue) + self.building + self.memory < most:
                queue.append(item)
                return 0
            self.refused += 1
            self.dropped += 1
            return self.dropped

    def take(self, queue: deque[Any], most: int) -> list[Any]:
        """Up to ``most`` items off the queue, for the builder."""
        with self.lock:  # so that a snapshot never sees an item both in the queue and taken
            batch = [queue.popleft() for _ in range(min(most, len(queue)))]
            self.taken += len(batch)
            self.building += len(batch)
            return batch

    def built(self, entry: Entry) -> None:
        with self.lock:
            self.building -= entry.count
            self._hold(entry, 1)

    def unbuilt(self, count: int) -> None:
        """Items that could not be built into an event."""
        with self.lock:
            self.building -= count
            self.failed += count

    def adopt(self, entries: list[Entry]) -> None:
        with self.lock:
            for entry in entries:
                self.adopted += entry.count
                self._hold(entry, 1)

    def replace(self, old: Entry, new: list[Entry]) -> None:
        """A batch split into smaller ones (the same events)."""
        with self.lock:
            self._hold(old, -1)
            for entry in new:
                self._hold(entry, 1)

    def resolve(self, entry: Entry, failed: int = 0, dropped: bool = False) -> None:
        """A batch is done with: delivered but ``failed`` of its events, or ``dropped``."""
        with self.lock:
            self._hold(entry, -1)
            if dropped:
                self.dropped += entry.count
            else:
                self.failed += failed
                self.delivered += entry.count - failed

    def _hold(self, entry: Entry, sign: int) -> None:
        if entry.path is None:
            self.memory += sign * entry.count
        else:
            self.spooled += sign * entry.count

    def pending(self, queue: deque[Any]) -> int:
        with self.lock:
            return len(queue) + self.building + self.memory + self.spooled

    def snapshot(self, queue: deque[Any]) -> ExportStats:
        """The counts, consistent with each other."""
        with self.lock:
            in_queue = len(queue)
            return ExportStats(
                queued=in_queue + self.taken + self.refused,
                adopted=self.adopted,
                delivered=self.delivered,
                failed=self.failed,
                dropped=self.dropped,
                pending=in_queue + self.building + self.memory + self.spooled,
                spooled=self.spooled,
            )
