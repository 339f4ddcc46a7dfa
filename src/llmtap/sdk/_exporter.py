"""Delivery of events to the llmtap server, in the background.

The caller's thread only appends to a deque (no lock, no I/O). One daemon thread per server
and key takes batches off it (when a batch is full, or every ``flush_interval``), serialises
them, and posts them with retries and backoff. At interpreter exit, what is queued is sent
within ``flush_timeout`` seconds. After ``os.fork`` the child starts a fresh exporter of its
own and leaves the parent's queue to the parent.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
from collections import deque
from typing import Any

import httpx2
import pydantic_core

from .._version import __version__
from ._config import Settings
from ._log import internal_error, log, warn_limited
from ._record import Call, FeedbackItem

__all__ = ["Exporter", "exporter_for"]

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_BACKOFF = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
_HOLD_GIL_AT_MOST = 0.0002
_GIL_PAUSE = 0.00005
_HEADERS = {"content-type": "application/json", "user-agent": f"llmtap-python/{__version__}"}


class Exporter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._url = settings.url
        self._headers = dict(_HEADERS)
        if settings.api_key:
            self._headers["authorization"] = f"Bearer {settings.api_key}"
        self._reset()

    def _reset(self) -> None:
        """Fresh state: at construction, and in a forked child (whose copies of the parent's
        locks may be held by a thread that does not exist there)."""
        self._queue: deque[Call | FeedbackItem] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._start_lock = threading.Lock()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._http: httpx2.Client | None = None
        self._dropped = itertools.count(1)
        self.delivered = 0
        self.failed = 0

    # -- the caller's side: cheap and never blocking --------------------------------------

    def submit(self, item: Call | FeedbackItem) -> None:
        if self._thread is None or self._pid != os.getpid():
            self._start()
        queue = self._queue
        if len(queue) >= self.settings.max_queue:
            dropped = next(self._dropped)
            warn_limited("queue-full", "llmtap: queue full, %d events dropped so far", dropped)
            return
        queue.append(item)
        if len(queue) >= self.settings.batch_size:
            self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything queued is delivered (or given up on), at most ``timeout``
        seconds (default: the ``flush_timeout`` setting). True when nothing is left."""
        if self._queue and (self._thread is None or self._pid != os.getpid()):
            self._start()
        thread = self._thread
        if thread is None:
            return not self._queue
        deadline = time.monotonic() + (self.settings.flush_timeout if timeout is None else timeout)
        with self._idle:
            self._wake.set()
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not thread.is_alive():
                    return False
                self._idle.wait(min(remaining, 0.05))
                self._wake.set()
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Flush within ``timeout`` then stop the thread. Events submitted later start it again."""
        done = self.flush(timeout)
        self._stopping = True
        self._wake.set()
        if not done and self._queue:
            warn_limited(
                "lost-at-close",
                "llmtap: %d events not delivered within the flush timeout",
                len(self._queue),
            )
        return done

    def _start(self) -> None:
        with self._start_lock:
            if self._pid != os.getpid():
                self._reset()  # a forked child: the parent's queue is the parent's to send
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="llmtap-exporter", daemon=True)
            self._thread.start()

    # -- the exporter's thread -------------------------------------------------------------

    def _run(self) -> None:
        queue, batch_size = self._queue, self.settings.batch_size
        while True:
            self._wake.wait(self.settings.flush_interval)
            self._wake.clear()
            while queue:
                self._busy = True
                batch = [queue.popleft() for _ in range(min(batch_size, len(queue)))]
                try:
                    self._deliver(batch)
                except Exception as exc:  # a bug of ours must not kill the thread
                    internal_error("exporter", exc, raise_it=False)
                self._busy = False
            with self._idle:
                self._idle.notify_all()
            if self._stopping and not queue:
                if self._http is not None:
                    self._http.close()
                    self._http = None
                self._thread = None  # the next submit starts a new one
                return

    def _deliver(self, batch: list[Call | FeedbackItem]) -> None:
        events: list[bytes] = []
        held_since = time.perf_counter()
        for item in batch:
            if isinstance(item, FeedbackItem):
                self._post("/api/v1/feedback", _json(item.body), 1)
                continue
            try:
                events.append(_json(item.to_event()))
            except Exception as exc:
                internal_error("building an event", exc, self.settings.raise_internal_errors)
            # Hand the GIL to the application every 200 us of our work. Without a real
            # sleep a batch would hold it for milliseconds (sleep(0) gives it back and
            # takes it again at once), and a caller whose response just arrived would wait.
            if time.perf_counter() - held_since > _HOLD_GIL_AT_MOST:
                time.sleep(_GIL_PAUSE)
                held_since = time.perf_counter()
        if events:
            self._post("/api/v1/events", b'{"events":[' + b",".join(events) + b"]}", len(events))

    def _post(self, path: str, body: bytes, count: int) -> None:
        if self._http is None:
            self._http = httpx2.Client(timeout=httpx2.Timeout(10.0, connect=2.0))
        for attempt in range(len(_BACKOFF) + 1):
            problem = self._post_once(path, body, count)
            if problem is None:
                self.delivered += count
                return
            if problem == "final" or attempt == len(_BACKOFF) or self._stopping:
                break
            time.sleep(_BACKOFF[attempt])
        self.failed += count
        warn_limited(
            "undelivered", "llmtap: %d events could not be delivered to %s", count, self._url
        )

    def _post_once(self, path: str, body: bytes, count: int) -> str | None:
        """None when delivered; "retry" or "final" when not."""
        assert self._http is not None
        try:
            response = self._http.post(self._url + path, content=body, headers=self._headers)
        except httpx2.HTTPError as exc:
            warn_limited("unreachable", "llmtap: server %s unreachable: %s", self._url, exc)
            return "retry"
        if response.status_code in _RETRY_STATUS:
            warn_limited(
                "retry-status", "llmtap: server answered %d, retrying", response.status_code
            )
            return "retry"
        if response.status_code >= 300 or _has_errors(response):
            _log_rejection(response, count)
            return None if response.status_code < 300 else "final"
        return None


def _json(value: Any) -> bytes:
    return pydantic_core.to_json(value, fallback=repr, bytes_mode="base64")


def _has_errors(response: httpx2.Response) -> bool:
    try:
        return bool(response.json().get("errors"))
    except ValueError:
        return False


def _log_rejection(response: httpx2.Response, count: int) -> None:
    try:
        detail = response.json()
    except ValueError:
        detail = {"error": response.text[:200]}
    warn_limited(
        f"rejected-{response.status_code}",
        "llmtap: server rejected events (%d sent, HTTP %d): %s %s",
        count,
        response.status_code,
        detail.get("error"),
        (detail.get("errors") or [])[:3],
    )


# -- one exporter per server and key, flushed at exit --------------------------------------

_exporters: dict[tuple[str, str | None], Exporter] = {}
_registry_lock = threading.Lock()


def exporter_for(settings: Settings) -> Exporter:
    """The exporter shared by every client that sends to this server with this key."""
    key = (settings.url, settings.api_key)
    exporter = _exporters.get(key)
    if exporter is None:
        with _registry_lock:
            exporter = _exporters.get(key)
            if exporter is None:
                exporter = _exporters[key] = Exporter(settings)
    return exporter


@atexit.register
def _flush_at_exit() -> None:
    exporters = [e for e in list(_exporters.values()) if e._thread is not None or e._queue]
    if not exporters:
        return
    deadline = time.monotonic() + max(e.settings.flush_timeout for e in exporters)
    for exporter in exporters:
        try:
            exporter.close(max(0.0, deadline - time.monotonic()))
        except Exception as exc:  # at exit, never raise
            log.log(logging.DEBUG, "llmtap: error while flushing at exit: %r", exc)


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for exporter in list(_exporters.values()):
        exporter._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
