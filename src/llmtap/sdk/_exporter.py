"""Delivery of events to the llmtap server, in the background, without losing any.

The caller's thread only appends to a deque (no I/O; a lock only when memory is full). Two
daemon threads per server, key and delivery settings (``_registry.py``) do the rest:

- the *builder* takes calls off the deque (when a batch is full, or every ``flush_interval``),
  builds and serialises their events, and writes each batch to the disk spool (see
  ``_spool.py``) before anything is sent: from then on the batch survives the process;
- the *sender* posts the spooled batches, oldest of its own first, then those a previous
  process left, and removes each once the server has acknowledged it (after its commit). While
  the server is unreachable or answers 5xx or 429 it backs off, with jitter; the builder keeps
  moving calls to disk, so memory stays bounded whatever the server does.

Events carry stable ids and the server stores an id once, so a batch sent twice (a crash
between the server's answer and the file's removal) is stored once. At interpreter exit, what
is queued is spooled and sent within ``flush_timeout``; what is not sent stays spooled for the
next process. After ``os.fork`` the child starts an exporter of its own; the parent's queue and
spooled batches stay the parent's.

Nothing is lost silently: every event is counted in one state (``_stats.py``, read with
``client.stats()``), every loss is logged (at most once a minute per kind), and at exit a summary
is logged when anything was dropped, failed or lost with the process.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import deque
from typing import Any

import pydantic_core

from ..wire import replace_surrogates, truncate_strings
from ._config import Settings
from ._log import internal_error, log, warn_limited
from ._post import EVENTS_PATH, FEEDBACK_PATH, Outcome, Poster
from ._record import Call, FeedbackItem
from ._spool import KIND_EVENTS, KIND_FEEDBACK, Entry, Spool, spool_directory
from ._stats import ExportStats, Ledger

# llmtap's own generator: drawing from the global one would change the host program's
# random sequence (and its seeded reproducibility); and not a copy of it either, which forked
# workers would share and retry in step with.
_jitter = random.SystemRandom()

__all__ = ["Exporter"]

_BACKOFF_FIRST, _BACKOFF_MAX = 0.25, 4.0
_HOLD_GIL_AT_MOST = 0.001
_GIL_PAUSE = 0.0001
_BACKLOG_BATCHES = 10
# One request carries at most this much; a larger event has its long texts cut.
_MAX_REQUEST_BYTES = 4 * 1024 * 1024
_MAX_FIELD_BYTES = 1024 * 1024
# Batch bodies kept in memory beside their spool files (the rest is read back from disk).
_MAX_CACHED_BYTES = 8 * 1024 * 1024
# How often the sender looks for batches other processes left behind.
_ADOPT_EVERY = 5.0
_PATHS = {KIND_EVENTS: EVENTS_PATH, KIND_FEEDBACK: FEEDBACK_PATH}


class Exporter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.reset()

    def reset(self) -> None:
        """Fresh state: at construction, and in a forked child (whose copies of the parent's
        locks may be held by a thread that does not exist there)."""
        self._queue: deque[Call | FeedbackItem] = deque()
        self._outbox: deque[Entry] = deque()  # built batches, not yet acknowledged
        self._adopted: deque[Entry] = deque()  # batches a dead process left, being sent
        self._ledger = Ledger()  # what became of every event: see _stats.py
        self._wake = threading.Event()  # builder: work to do
        self._send_wake = threading.Event()  # sender: work to do, or hurry
        self._idle = threading.Condition()
        self._start_lock = threading.Lock()
        self._stopping = False
        self._hurry = False
        self._builder: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self._starting: int | None = None  # the thread in ``_start``, while one is
        self._pid = os.getpid()
        self._poster = Poster(self.settings, self._warn)
        self._spool: Spool | None = None
        self._spool_checked = False
        self._cached = 0
        # The batch the sender has taken out to post, and whether the full spool dropped its
        # file meanwhile: under this lock, so that the drop is counted exactly once.
        self._in_hand_lock = threading.Lock()
        self._in_hand: Entry | None = None
        self._in_hand_evicted = False

    # -- the caller's side: cheap and never blocking --------------------------------------

    def submit(self, item: Call | FeedbackItem) -> None:
        # Not from inside ``_start`` on this thread: a stream garbage-collected there (its
        # guard records it) would wait for the lock this thread holds, for ever.
        if (self._builder is None or self._pid != os.getpid()) and (
            self._starting != threading.get_ident()
        ):
            self._start()
        queue = self._queue
        # Batches that could not be spooled wait in memory too, within the same bound. Read
        # without the lock, in this order, the sum can only come out too high (the builder
        # moves items from the queue to the batch it builds, then to a batch built): exact
        # when it says there is room; checked again under the lock when it says there is not.
        if self._ledger.in_memory(queue) >= self.settings.max_queue:
            dropped = self._ledger.refuse(queue, item, self.settings.max_queue)
            if dropped:
                # Calls came faster than the builder moves them to disk, or there is no spool
                # and the server does not take them.
                self._warn(
                    "queue-full",
                    "llmtap: memory queue full (max_queue %d): %d events dropped so far",
                    self.settings.max_queue,
                    dropped,
                )
                return
        else:
            queue.append(item)
        if len(queue) >= self.settings.batch_size:
            self._wake.set()

    def busy(self) -> bool:
        """Running, or holding events: what the exit flush must see to."""
        return self._builder is not None or self._pending()

    def _pending(self) -> bool:
        # Batches adopted from a process that died count too: a restarted application's
        # flush (or exit) delivers what the dead one left.
        return self._ledger.pending(self._queue) > 0

    def stats(self) -> ExportStats:
        """What became of the events so far; see ``_stats.py``."""
        return self._ledger.snapshot(self._queue)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything queued is delivered, at most ``timeout`` seconds (default:
        the ``flush_timeout`` setting). True when all of it was; what was not stays spooled."""
        if self._pending() and (self._builder is None or self._pid != os.getpid()):
            self._start()
        if self._builder is None:
            return not self._pending()
        deadline = time.monotonic() + (self.settings.flush_timeout if timeout is None else timeout)
        self._hurry = True
        try:
            with self._idle:
                while self._pending():
                    remaining = deadline - time.monotonic()
                    threads = (self._builder, self._sender)
                    if remaining <= 0 or not all(t is not None and t.is_alive() for t in threads):
                        return False
                    self._wake.set()
                    self._send_wake.set()
                    self._idle.wait(min(remaining, 0.05))
        finally:
            self._hurry = False
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Flush within ``timeout`` then stop the threads; undelivered batches stay spooled.
        Events submitted later start them again."""
        done = self.flush(timeout)
        self._stopping = True
        self._wake.set()
        self._send_wake.set()
        if self._queue:
            self._warn(
                "lost-at-close",
                "llmtap: %d events neither delivered nor spooled within the flush timeout",
                len(self._queue),
            )
        elif self._spool is not None and (spooled := self.stats().spooled):
            self._warn(
                "spooled-at-close",
                "llmtap: %d events not delivered yet; they wait in %s for the next run",
                spooled,
                self._spool.directory,
            )
        return done

    def report_at_exit(self) -> None:
        """Say what was lost, if anything: the one summary a user reads after a run."""
        s = self.stats()
        lost = s.pending - s.spooled  # in memory, gone with the process
        if s.dropped or s.failed or lost:
            log.warning(
                "llmtap: of %d events, %d delivered, %d dropped, %d refused by the server,"
                " %d lost at exit, %d left in the spool for the next run",
                s.queued + s.adopted,
                s.delivered,
                s.dropped,
                s.failed,
                lost,
                s.spooled,
            )

    def _start(self) -> None:
        with self._start_lock:
            self._starting = threading.get_ident()
            try:
                self._start_threads()
            finally:
                self._starting = None

    def _start_threads(self) -> None:
        if self._pid != os.getpid():
            self.reset()  # a forked child: the parent's queue is the parent's to send
        if self._builder is not None and self._builder.is_alive():
            return
        self._stopping = False
        self._builder = threading.Thread(
            target=self._guard, args=(self._build_loop,), name="llmtap-builder", daemon=True
        )
        self._sender = threading.Thread(
            target=self._guard, args=(self._send_loop,), name="llmtap-sender", daemon=True
        )
        self._builder.start()
        self._sender.start()

    def _guard(self, loop: Any) -> None:
        try:
            loop()
        except Exception as exc:  # a bug of ours must not pass silently
            internal_error("exporter", exc, raise_it=False)
        finally:
            with self._idle:
                self._idle.notify_all()

    def _notify(self) -> None:
        with self._idle:
            self._idle.notify_all()

    # -- the builder's thread: calls -> spooled batches --------------------------------------

    def _open_spool(self) -> Spool | None:
        if not self._spool_checked:
            self._spool_checked = True
            settings = self.settings
            if settings.spool_max_bytes > 0:
                directory = spool_directory(settings.url, settings.api_key, settings.spool_dir)
                try:
                    self._spool = Spool(directory, settings.spool_max_bytes)
                except OSError as exc:
                    self._warn(
                        "spool-unusable",
                        "llmtap: cannot use the spool in %s (%s); undelivered events are kept"
                        " in memory only",
                        directory,
                        exc,
                    )
        return self._spool

    def _build_loop(self) -> None:
        queue, batch_size = self._queue, self.settings.batch_size
        spool = self._open_spool()
        if spool is not None:
            # First of all, take over what a process that died left, so that this process's
            # flush (and exit) waits for it too; the sender looks again now and then.
            self._adopt(spool)
        self._send_wake.set()
        while True:
            self._wake.wait(self.settings.flush_interval)
            self._wake.clear()
            while queue:
                batch = self._ledger.take(queue, batch_size)
                try:
                    self._build(batch)
                except Exception as exc:
                    internal_error("exporter", exc, raise_it=False)
                    self._ledger.unbuilt(self._ledger.building)  # the rest of the batch
                self._send_wake.set()
                # What came in while this batch was built waits for a batch of its own to
                # fill, or for the interval, rather than leaving in crumbs: each batch costs a
                # spool file and a request (about 2 ms of this process's CPU), so batches of 5
                # would cost the application's threads the GIL for ten times as long.
                if len(queue) < batch_size and not (self._stopping or self._hurry):
                    break
            self._notify()
            if self._stopping and not queue:
                self._builder = None  # the next submit starts new threads
                return

    def _build(self, batch: list[Call | FeedbackItem]) -> None:
        events: list[bytes] = []
        size = 0
        held_since = time.perf_counter()
        for item in batch:
            if isinstance(item, FeedbackItem):
                try:
                    feedback = _surrogates_replaced(item.body)
                except Exception as exc:  # this feedback alone, not the batch it came with
                    self._ledger.unbuilt(1)
                    internal_error("building a feedback", exc, self.settings.raise_internal_errors)
                    continue
                self._enqueue(KIND_FEEDBACK, feedback, 1)
                continue
            try:
                event = _event_json(item)
            except Exception as exc:
                self._ledger.unbuilt(1)
                internal_error("building an event", exc, self.settings.raise_internal_errors)
                continue
            if events and size + len(event) > _MAX_REQUEST_BYTES:
                self._enqueue_events(events)
                events, size = [], 0
            events.append(event)
            size += len(event) + 1
            # Hand the GIL to the application every millisecond of our work. Without a real
            # sleep a batch would hold it for many milliseconds (sleep(0) gives it back and
            # takes it again at once), and a caller whose response just arrived would wait;
            # with pauses much more often, the handoffs themselves cost more than they save.
            # Not when calls pile up (a caller that never waits on I/O leaves the builder
            # only the interpreter's 5 ms switches): then the queue would fill and drop.
            if (
                time.perf_counter() - held_since > _HOLD_GIL_AT_MOST
                and not self._hurry
                and len(self._queue) < _BACKLOG_BATCHES * self.settings.batch_size
            ):
                time.sleep(_GIL_PAUSE)
                held_since = time.perf_counter()
        if events:
            self._enqueue_events(events)

    def _enqueue_events(self, events: list[bytes]) -> None:
        self._enqueue(KIND_EVENTS, b'{"events":[' + b",".join(events) + b"]}", len(events))

    def _enqueue(self, kind: int, body: bytes, count: int) -> None:
        entry = self._store(kind, body, count)
        self._ledger.built(entry)
        self._outbox.append(entry)

    def _store(self, kind: int, body: bytes, count: int) -> Entry:
        """A new batch's entry: written to the spool, else kept in memory (within
        ``max_queue``, which the caller's side keeps to)."""
        spool = self._spool
        if spool is None:
            return Entry(kind, count, len(body), None, body)
        try:
            entry, evicted = spool.write(kind, body, count)
        except OSError as exc:
            self._warn("spool-write", "llmtap: cannot write to the spool: %s", exc)
            return Entry(kind, count, len(body), None, body)
        if evicted:
            self._evicted(spool, evicted)
        if self._cached + len(body) > _MAX_CACHED_BYTES:
            entry.body = None  # read back from disk when its turn comes
        else:
            self._cached += len(body)
        return entry

    def _evicted(self, spool: Spool, evicted: list[Entry]) -> None:
        """The spool, full, dropped its oldest batches. Ours waiting to be sent are dropped and
        counted here; one being sent is counted by the sender, once it knows its fate."""
        others = 0
        for gone in evicted:
            if gone.owner != spool.pid:
                others += gone.count  # another process's, counted there (or a dead one's)
                continue
            with self._in_hand_lock:
                if self._in_hand is not None and self._in_hand.path == gone.path:
                    self._in_hand_evicted = True  # the sender counts it, once it knows its fate
                    continue
                for source in (self._outbox, self._adopted):
                    entry = next((e for e in list(source) if e.path == gone.path), None)
                    if entry is not None:
                        source.remove(entry)
                        self._drop(entry)
                        break
        self._warn(
            "spool-full",
            "llmtap: spool over %d bytes (spool_max_bytes): dropped its oldest batches;"
            " %d events of this process dropped so far%s",
            spool.max_bytes,
            self._ledger.dropped,
            f", and {others} events other processes left" if others else "",
        )

    def _drop(self, entry: Entry) -> None:
        """Count a batch of ours the full spool dropped."""
        if entry.body is not None:
            self._cached = max(self._cached - len(entry.body), 0)
        self._ledger.resolve(entry, dropped=True)

    # -- the sender's thread: spooled batches -> the server ---------------------------------

    def _adopt(self, spool: Spool) -> None:
        try:
            entries = spool.adopt()
        except OSError as exc:
            self._warn("spool-read", "llmtap: cannot read the spool: %s", exc)
            return
        self._ledger.adopt(entries)
        self._adopted.extend(entries)

    def _send_loop(self) -> None:
        backoff = 0.0  # seconds to wait after a failure; 0 while the server takes batches
        failed_at = delay = 0.0
        adopted = self._adopted  # batches other processes left, oldest first
        adopt_at = time.monotonic() + _ADOPT_EVERY  # the builder adopted at start
        while True:
            if self._stopping and not self._ledger.building and not self._queue:
                self._poster.close()
                self._sender = None
                self._notify()
                return
            now = time.monotonic()
            spool = self._spool
            if spool is not None and now >= adopt_at and not self._outbox:
                adopt_at = now + _ADOPT_EVERY
                self._adopt(spool)
            source = self._outbox if self._outbox else adopted
            # A flush waiting shortens the back-off, so it can succeed within its bound.
            wait = failed_at + (min(delay, 0.1) if self._hurry else delay) - now
            if not source or wait > 0:
                self._send_wake.wait(max(wait if source else _ADOPT_EVERY, 0.001))
                self._send_wake.clear()
                continue
            with self._in_hand_lock:
                try:
                    # Taken out while it is sent, so that the builder's side (dropping the
                    # oldest batches of a full spool) never takes a batch from under the sender.
                    entry = self._in_hand = source.popleft()
                except IndexError:  # dropped meanwhile
                    continue
            outcome, refused = self._send(entry)
            with self._in_hand_lock:
                evicted, self._in_hand, self._in_hand_evicted = self._in_hand_evicted, None, False
                if outcome == "retry" and not evicted:
                    source.appendleft(entry)
            if outcome == "retry":
                if evicted:  # the full spool dropped its file while it was tried
                    self._drop(entry)
                backoff = min(max(backoff * 2, _BACKOFF_FIRST), _BACKOFF_MAX)
                # Jitter: many processes retrying a restarted server do not come in step.
                delay = backoff * (1 + _jitter.random())
                failed_at = time.monotonic()
                continue
            backoff = delay = 0.0
            # A spooled batch still holding its body was counted in _cached by _store, from
            # whichever queue it is sent (halves of a split go back to the adopted one too).
            if entry.path is not None and entry.body is not None:
                self._cached = max(self._cached - len(entry.body), 0)
            if outcome == "split":
                self._split(entry, source)
            else:
                self._ledger.resolve(entry, failed=refused, dropped=outcome == "gone")
                if spool is not None:
                    spool.remove(entry)
            self._notify()

    def _send(self, entry: Entry) -> tuple[Outcome, int]:
        """Post one batch: ("done", events the server refused), ("retry", 0), ("split", 0) when
        too large for the server, or ("gone", 0) when its file is damaged or gone."""
        body = entry.body
        if body is None:
            assert self._spool is not None
            body = self._spool.read(entry)
            if body is None:
                self._warn(
                    "spool-gone",
                    "llmtap: a spooled batch of %d events was damaged or removed: dropped",
                    entry.count,
                )
                return "gone", 0
        return self._poster.post(_PATHS[entry.kind], body, entry.count)

    def _split(self, entry: Entry, source: deque[Entry]) -> None:
        """Replace a batch the server found too large by its two halves, in its place."""
        body = entry.body
        if body is None and self._spool is not None:
            body = self._spool.read(entry)
        if body is None:
            self._ledger.resolve(entry, dropped=True)
            return
        try:
            events = [_json(e) for e in json.loads(body)["events"]]
        except (ValueError, KeyError, TypeError):  # not a batch of events: refused for good
            events = []
        if self._spool is not None:
            self._spool.remove(entry)
        if len(events) < 2:  # cannot be split (a single event too large is refused as such)
            self._ledger.resolve(entry, failed=entry.count)
            return
        half = len(events) // 2
        halves = []
        for part in (events[half:], events[:half]):
            payload = b'{"events":[' + b",".join(part) + b"]}"
            halves.append(self._store(KIND_EVENTS, payload, len(part)))
        self._ledger.replace(entry, halves)
        for half_entry in halves:
            source.appendleft(half_entry)

    def _warn(self, kind: str, message: str, *args: Any) -> None:
        # Rate-limited per exporter: one server's trouble does not hide another's.
        warn_limited(f"{kind}@{id(self)}", message, *args)


def _json(value: Any) -> bytes:
    return pydantic_core.to_json(value, fallback=repr, bytes_mode="base64")


def _surrogates_replaced(value: Any) -> bytes:
    """``value`` in JSON. Half a surrogate pair in a text (a provider's JSON escapes can send
    one, and so can an app's own text) is replaced, and the item sent, rather than lost."""
    try:
        return _json(value)
    except pydantic_core.PydanticSerializationError:
        return _json(replace_surrogates(value))


def _event_json(call: Call) -> bytes:
    event = call.to_event()
    data = _surrogates_replaced(event)
    if len(data) > _MAX_REQUEST_BYTES:
        # Too big for one request: cut the long texts (the server would anyway) and say so.
        cut: list[str] = []
        event = truncate_strings(event, _MAX_FIELD_BYTES, "", cut)
        event["truncated"] = sorted(cut)
        data = _surrogates_replaced(event)
    return data
