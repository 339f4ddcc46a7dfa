"""One exporter per server, key and delivery settings, shared by the clients that have them,
flushed at interpreter exit, and started afresh in a forked child."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from typing import Any

from ._config import Settings
from ._exporter import Exporter
from ._log import log

__all__ = ["exporter_for"]

# What an exporter reads of its settings: clients that differ in any of them get exporters of
# their own (``with_options(llmtap={"batch_size": 10})`` is honoured, not silently shared).
_DELIVERY = (
    "url",
    "api_key",
    "flush_timeout",
    "batch_size",
    "flush_interval",
    "max_queue",
    "spool_dir",
    "spool_max_bytes",
    "raise_internal_errors",
)
_exporters: dict[tuple[Any, ...], Exporter] = {}
_registry_lock = threading.Lock()


def exporter_for(settings: Settings) -> Exporter:
    """The exporter shared by every client that sends to this server with this key and these
    delivery settings."""
    key = tuple(getattr(settings, name) for name in _DELIVERY)
    exporter = _exporters.get(key)
    if exporter is None:
        with _registry_lock:
            exporter = _exporters.get(key)
            if exporter is None:
                exporter = _exporters[key] = Exporter(settings)
    return exporter


@atexit.register
def _flush_at_exit() -> None:
    exporters = [e for e in list(_exporters.values()) if e.busy()]
    if not exporters:
        return
    deadline = time.monotonic() + max(e.settings.flush_timeout for e in exporters)
    for exporter in exporters:
        try:
            exporter.close(max(0.0, deadline - time.monotonic()))
            exporter.report_at_exit()
        except Exception as exc:  # at exit, never raise
            log.log(logging.DEBUG, "llmtap: error while flushing at exit: %r", exc)


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for exporter in list(_exporters.values()):
        exporter.reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
