"""A run's local journal: what each case's call brought back, written the moment it came back.

A case's call is recorded through ``llmtap.AsyncClient``, but that record reaches the server
later (batched, spooled, sent in the background), and its result later still: a runner killed
in between has paid for answers nothing on the server knows of. So the runner appends each
answer here first, one line per case, before it does anything else with it; a resumed run reads
the journal and scores those answers instead of calling (and paying for) the cases again. Only
a call that never brought an answer back (cut off in flight) leaves no answer here and is made
again. (One line per answer, none before the call: a write per case, on the event loop, is
a few microseconds.) When the run's evaluators call the provider too (a judge, embeddings),
each case's whole result is journalled once scored, so a resume sends it as it is rather than
paying for the judge again.

One file per server, key and run, in the user's cache folder next to the SDK's spool (its
folder readable by its owner only: outputs may be private). Lines are appended with one
``write`` each on a file opened for appending, so a kill cannot interleave them; a line torn by
a crash mid-write is skipped when read. The journal is removed when its run finishes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..sdk._log import log
from ..sdk._spool import _private_dir, default_dir

__all__ = ["Journal"]


class Journal:
    """The journal of run ``run_id`` on the server ``url`` with ``api_key``; ``directory``
    overrides the default folder (``~/.cache/llmtap/runs`` on Linux)."""

    def __init__(
        self, url: str, api_key: str | None, run_id: str, directory: str | Path | None = None
    ) -> None:
        base = Path(directory) if directory else default_dir().parent / "runs"
        server = hashlib.sha256(f"{url}\0{api_key or ''}".encode()).hexdigest()[:16]
        # The run id comes from the command line on resume: keep only a file name's characters.
        safe = "".join(c for c in run_id if c.isalnum() or c in "-_")[:64] or "run"
        self.path = base / f"{server}-{safe}.jsonl"
        self._fd: int | None = None
        self._base = base
        self._broken = False

    def _append(self, entry: dict[str, Any]) -> None:
        if self._broken:
            return
        try:
            if self._fd is None:
                _private_dir(self._base)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            # ASCII: an answer holding half a surrogate pair (JSON escapes allow it) is kept too.
            os.write(self._fd, (json.dumps(entry) + "\n").encode())
        except OSError as exc:  # a read-only or full cache folder: the run goes on, unjournalled
            self._broken = True
            log.warning(
                "llmtap: cannot keep the run's journal in %s (%s): a resume after an"
                " interruption may call again what was answered",
                self._base,
                exc,
            )

    def answered(self, case_id: Any, output: str, latency_ms: float, usage: dict[str, int]) -> None:
        """Case ``case_id``'s call came back with ``output``."""
        entry = {"case": str(case_id), "output": output, "latency_ms": latency_ms, "usage": usage}
        self._append(entry)

    def scored(self, case_id: Any, result: dict[str, Any]) -> None:
        """Case ``case_id``'s whole result, its scores made."""
        self._append({"case": str(case_id), "result": result})

    def read(self) -> dict[str, dict[str, Any]]:
        """The answers journalled, by case id."""
        return {case: e for case, e in self._entries() if isinstance(e.get("output"), str)}

    def results(self) -> dict[str, dict[str, Any]]:
        """The results journalled, by case id."""
        return {
            case: e["result"] for case, e in self._entries() if isinstance(e.get("result"), dict)
        }

    def _entries(self) -> list[tuple[str, dict[str, Any]]]:
        try:
            text = self.path.read_bytes().decode("utf-8", "replace")
        except OSError:  # none was kept (or its folder is not usable): nothing to reuse
            return []
        entries = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                entries.append((str(entry["case"]), entry))
            except (ValueError, KeyError, TypeError):
                continue  # torn by a crash mid-write
        return entries

    def close(self, remove: bool = False) -> None:
        """Close the file; ``remove``: the run is over, the journal is not needed any more."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove:
            with contextlib.suppress(OSError):  # none was made, or its folder is not usable
                self.path.unlink()
