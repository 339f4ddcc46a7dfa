"""``make bench``: every benchmark, side by side, in one run. ``--quick`` for a smoke run."""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any

from . import (
    alerts,
    boards,
    dashboard,
    faults,
    ingest,
    migrate,
    otlp,
    overhead,
    partitions,
    pg_derive,
    pii,
    postgres,
    prompt_tests,
    query,
    sdk_memory,
    streaming,
)
from ._harness import Figure, summary_table

BENCHMARKS = {
    "overhead": overhead,
    "streaming": streaming,
    "ingest": ingest,
    "postgres": postgres,
    "partitions": partitions,
    "pg_derive": pg_derive,
    "otlp": otlp,
    "sdk_memory": sdk_memory,
    "faults": faults,
    "pii": pii,
    "query": query,
    "dashboard": dashboard,
    "alerts": alerts,
    "boards": boards,
    "prompt_tests": prompt_tests,
    "migrate": migrate,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="default: all")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": platform.platform(),
    }
    figures: list[Figure] = []
    for name in args.names or BENCHMARKS:
        module = BENCHMARKS[name]
        result = module.run(quick=args.quick)
        results[name] = result
        print(module.report(result), flush=True)
        print()
        if hasattr(module, "summary"):
            figures += module.summary(result)
    results["summary"] = [dataclasses.asdict(f) for f in figures]
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    met = sum(f.met for f in figures)
    print(
        f"Summary: {met} of {len(figures)} figures meet their target"
        + (" (--quick)" if args.quick else "")
    )
    print(summary_table(figures))
    print(f"\nresults written to {out / 'latest.json'}")


if __name__ == "__main__":
    main()
