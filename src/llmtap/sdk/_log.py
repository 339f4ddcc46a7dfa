"""How the SDK reports its own trouble: to ``logging`` under ``llmtap``, at most once a minute
per kind of trouble, and never by raising into the user's call."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

__all__ = ["internal_error", "log", "warn_limited"]

log = logging.getLogger("llmtap")

_INTERVAL = 60.0
_last: dict[str, float] = {}
_suppressed: dict[str, int] = {}
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # The parent's exporter thread may have held the lock at the fork; it does not exist here.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def warn_limited(key: str, message: str, *args: Any, level: int = logging.WARNING) -> None:
    """Log ``message`` unless a message with the same ``key`` went out in the last minute; the
    next one that goes out says how many were held back."""
    now = time.monotonic()
    with _lock:
        last = _last.get(key)
        if last is not None and now - last < _INTERVAL:
            _suppressed[key] = _suppressed.get(key, 0) + 1
            return
        _last[key] = now
        held = _suppressed.pop(key, 0)
    if held:
        message += " (%d similar messages held back)"
        args = (*args, held)
    log.log(level, message, *args)


def internal_error(where: str, exc: BaseException, raise_it: bool) -> None:
    """A bug or surprise inside llmtap itself: logged, or raised when ``raise_it`` (our tests)."""
    if raise_it:
        raise exc
    warn_limited(
        "internal:" + where,
        "llmtap: internal error in %s, the call goes on unrecorded: %r",
        where,
        exc,
        level=logging.ERROR,
    )
