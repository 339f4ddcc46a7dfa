"""Issue 12: ``llmtap migrate-store`` of the query benchmark's stores (1,000,000 and 100,000
generated events, cached in ``bench/.cache/``), SQLite to PostgreSQL and back to a new SQLite
file: the wall time of each whole command (start, every table, the count checks) as events/s,
and each command's peak resident memory, read from the kernel for that process alone.

Memory is the point of the two sizes: a copy holds one batch at a time, so its peak should not
grow with the store (the SQLite target's own page cache aside, which is bounded).

PostgreSQL as for ``bench/postgres.py``: ``LLMTAP_BENCH_POSTGRES_URL`` or a throwaway cluster;
none here: skipped, and said. Run: ``python -m bench.migrate``, or in ``make bench``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._harness import Figure, NoPostgres, figure, postgres_admin, run_cli
from .postgres import _database
from .query import cached_store


def _migrate(source: str, target: str) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one ``llmtap migrate-store`` process."""
    return run_cli(["migrate-store", "--from", source, "--to", target, "--no-progress"])


def _one_size(admin: str, n: int, folder: Path) -> dict[str, Any]:
    source, _ = cached_store(n)
    url = _database(admin)
    to_pg_s, to_pg_rss = _migrate(str(source), url)
    back = folder / f"back-{n}.db"
    to_sqlite_s, to_sqlite_rss = _migrate(url, str(back))
    return {
        "events": n,
        "to_pg_s": round(to_pg_s, 1),
        "to_pg_rate": round(n / to_pg_s),
        "to_pg_peak_mib": round(to_pg_rss),
        "to_sqlite_s": round(to_sqlite_s, 1),
        "to_sqlite_rate": round(n / to_sqlite_s),
        "to_sqlite_peak_mib": round(to_sqlite_rss),
    }


def run(quick: bool = False) -> dict[str, Any]:
    sizes = (5_000, 50_000) if quick else (100_000, 1_000_000)
    try:
        with postgres_admin() as admin, tempfile.TemporaryDirectory() as tmp:
            runs = [_one_size(admin, n, Path(tmp)) for n in sizes]
    except NoPostgres as e:
        return {"skipped": str(e)}
    small, large = runs
    return {
        "runs": runs,
        "load": os.getloadavg(),
        "peak_growth_to_pg": round(large["to_pg_peak_mib"] / small["to_pg_peak_mib"], 2),
        "peak_growth_to_sqlite": round(
            large["to_sqlite_peak_mib"] / small["to_sqlite_peak_mib"], 2
        ),
    }


def report(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"migrate-store: skipped: {r['skipped']}"
    lines = [f"migrate-store (load {r['load'][0]:.1f}), whole command, events/s and peak RSS:"]
    for run in r["runs"]:
        lines.append(
            f"  {run['events']:>9,} events: SQLite -> PostgreSQL {run['to_pg_s']} s "
            f"({run['to_pg_rate']:,}/s, {run['to_pg_peak_mib']} MiB); PostgreSQL -> SQLite "
            f"{run['to_sqlite_s']} s ({run['to_sqlite_rate']:,}/s, "
            f"{run['to_sqlite_peak_mib']} MiB)"
        )
    lines.append(
        f"  peak memory, largest / smallest store: {r['peak_growth_to_pg']}x into PostgreSQL, "
        f"{r['peak_growth_to_sqlite']}x into SQLite (flat: 1.0)"
    )
    return "\n".join(lines)


def summary(r: dict[str, Any]) -> list[Figure]:
    # The rates have no target (the issue asks for them): they are in the report above.
    if "skipped" in r:
        return []
    small, large = (f"{run['events']:,}" for run in r["runs"])
    name = f"migrate-store peak memory, {large} against {small} events, into"
    return [
        figure(f"{name} PostgreSQL", r["peak_growth_to_pg"], "<=", 1.2, "x"),
        figure(f"{name} SQLite", r["peak_growth_to_sqlite"], "<=", 1.2, "x"),
    ]


if __name__ == "__main__":
    result = run(quick="--quick" in sys.argv)
    print(report(result))
