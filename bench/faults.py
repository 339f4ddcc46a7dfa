"""Issue 4: the fault-injection run's figures. A client process (and a child it forks)
records events while the server is absent at start, answers 500 and then 429 for a while,
answers slowly, and is killed with ``kill -9`` and restarted several times during ingest;
then the SQLite file is read: events sent, stored, missing, duplicated (target: 0 and 0).
The same run as ``tests/test_durability.py``, with more events."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from tests.faults import chaos_run

from ._harness import Figure, figure


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        n, n_child = (1500, 300) if quick else (4000, 800)
        return chaos_run(Path(tmp), n=n, n_child=n_child, kills=3).as_dict()


def report(result: dict[str, Any]) -> str:
    return (
        f"faults: sent {result['sent']:,}, stored {result['stored']:,}, missing "
        f"{result['missing']}, duplicated {result['duplicated']} (targets: 0 and 0); "
        f"SQLite integrity_check: {result['integrity']}; counted in the stats: "
        f"{result['counted_in_stats']:,}"
    )


def summary(r: dict[str, Any]) -> list[Figure]:
    return [
        figure("faults: events missing", r["missing"], "==", 0),
        figure("faults: events duplicated", r["duplicated"], "==", 0),
    ]
