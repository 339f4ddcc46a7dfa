"""The garbage collector while a run is under way in a process of its own making.

A run makes a few dozen short-lived objects per case (the request, the answer, the recorded
event, the result), and CPython's default generation-0 threshold (700 allocations) then runs a
collection every few cases; once enough of them survive (results, events waiting to be sent),
a full collection walks everything the process holds: the modules, openai's and pydantic's
classes, the test set. Measured on the benchmark's run of 1,000 cases: 10 to 77 ms of
collections a run, the full ones 40 to 60 ms each, against 2 ms with what the run found frozen
and collections ten times rarer.

``run_collection`` does that for the length of a run and puts everything back after, so the
CLI and the pytest plugin (inside the user's own test process) leave the collector as they
found it. Runs in several threads at once share one setting: the first in sets it, the last
out restores it. A process that froze its own objects (``llmtap serve`` does at start) keeps
them frozen: only a freeze made here is undone here.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["run_collection"]

# Allocations between two generation-0 collections during a run (CPython's default: 700).
GEN0_THRESHOLD = 10_000

_lock = threading.Lock()
_runs = 0
_saved: tuple[tuple[int, int, int], bool] | None = (
    None  # the thresholds before, and whether we froze
)


@contextlib.contextmanager
def run_collection() -> Iterator[None]:
    """Collect rarely, and never walk what existed when the first run began, until the last
    run of the process ends."""
    global _runs, _saved
    with _lock:
        if _runs == 0:
            froze = gc.get_freeze_count() == 0
            _saved = (gc.get_threshold(), froze)
            if froze:
                gc.freeze()
            threshold = gc.get_threshold()
            gc.set_threshold(max(threshold[0], GEN0_THRESHOLD), *threshold[1:])
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0 and _saved is not None:
                threshold, froze = _saved
                gc.set_threshold(*threshold)
                if froze:
                    gc.unfreeze()
                _saved = None
