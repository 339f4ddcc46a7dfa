"""The mutation score per package and per file, and the surviving mutants, from mutmut's
results in mutants/ (``make mutation`` runs it after ``mutmut run``).

Usage: python scripts/mutation_report.py [--diff] [--sampled] [PATTERN ...]
       python scripts/mutation_report.py --sample N [--seed S]

- PATTERN (fnmatch, e.g. ``llmtap.sdk._stats.*``) limits the report to those mutants;
- ``--diff`` prints each survivor's diff (``mutmut show``);
- ``--sample N`` prints the names of N mutants per package (sdk, server, store), drawn
  uniformly at random (seed S, default 0) from all mutmut generated: what ``make
  mutation-sample`` runs, there being some 20,000;
- ``--sampled`` adds each package's score with its 95% interval (Wilson's), for a sample.

Score: killed / checked, where a mutant is checked once mutmut ran it or found no test that
reaches it ("no tests" counts against the score: nothing would catch that change). A timeout
counts as killed (the mutant broke the code badly enough to hang a test). Mutants never run
(other files, or a run cut short) are left out.
"""

from __future__ import annotations

import fnmatch
import json
import math
import random
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

MUTANTS = Path("mutants")
# mutmut's exit codes (mutmut/stats.py); anything else is "suspicious".
STATUS = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    36: "timeout",
    37: "killed",  # caught by the type checker
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
}
CAUGHT = {"killed", "timeout"}
LEFT_OUT = {"not checked", "skipped"}


def status(code: int | None) -> str:
    return "not checked" if code is None else STATUS.get(code, "suspicious")


def results(patterns: list[str]) -> dict[str, dict[str, str]]:
    """``{module: {mutant: status}}`` of the mutants checked (and matching ``patterns``)."""
    by_module: dict[str, dict[str, str]] = defaultdict(dict)
    for meta in sorted(MUTANTS.glob("src/**/*.py.meta")):
        module = ".".join(meta.relative_to(MUTANTS / "src").with_suffix("").with_suffix("").parts)
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in codes.items():
            if patterns and not any(fnmatch.fnmatch(name, p) for p in patterns):
                continue
            if (s := status(code)) not in LEFT_OUT:
                by_module[module][name] = s
    return by_module


def sample(per_package: int, seed: int) -> list[str]:
    """``per_package`` mutant names of each of sdk, server and store, at random."""
    names: dict[str, list[str]] = defaultdict(list)
    for meta in sorted(MUTANTS.glob("src/llmtap/*/**/*.py.meta")):
        package = meta.relative_to(MUTANTS / "src/llmtap").parts[0]
        names[package] += sorted(json.loads(meta.read_text())["exit_code_by_key"])
    rng = random.Random(seed)
    picked = []
    for package in ("sdk", "server", "store"):
        picked += rng.sample(names[package], min(per_package, len(names[package])))
    return picked


def interval(caught: int, checked: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95% interval for the share ``caught``/``checked`` of a random sample."""
    share = caught / checked
    centre = (share + z * z / (2 * checked)) / (1 + z * z / checked)
    half = z * math.sqrt(share * (1 - share) / checked + z * z / (4 * checked * checked))
    return centre - half / (1 + z * z / checked), centre + half / (1 + z * z / checked)


def line(label: str, counts: Counter[str]) -> str:
    checked = sum(counts.values())
    caught = sum(counts[s] for s in CAUGHT)
    missed = ("survived", "no tests", "suspicious")
    rest = ", ".join(f"{counts[s]} {s}" for s in missed if counts[s])
    return f"{label:<34} {100 * caught / checked:5.1f}%  {caught:>4}/{checked:<4} {rest}"


def main(argv: list[str]) -> int:
    if not MUTANTS.is_dir():
        print("no mutants/ folder: run `make mutation` first", file=sys.stderr)
        return 1
    if "--sample" in argv:
        at = argv.index("--sample")
        seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0
        print("\n".join(sample(int(argv[at + 1]), seed)))
        return 0
    diff, sampled = "--diff" in argv, "--sampled" in argv
    patterns = [a for a in argv if a not in ("--diff", "--sampled")]
    by_module = results(patterns)
    if not by_module:
        print("no checked mutants (match the patterns?)", file=sys.stderr)
        return 1
    by_package: dict[str, Counter[str]] = defaultdict(Counter)
    print("score by file (killed/checked)")
    for module, mutants in sorted(by_module.items()):
        counts = Counter(mutants.values())
        by_package[module.rsplit(".", 1)[0]] += counts
        print("  " + line(module, counts))
    print("score by package")
    for package, counts in sorted(by_package.items()):
        print("  " + line(package, counts))
    print("  " + line("all", sum(by_package.values(), Counter())))
    if sampled:
        print("sampled score by package, with its 95% interval")
        for top in ("sdk", "server", "store"):
            counts = sum(
                (c for p, c in by_package.items() if p.split(".")[:2] == ["llmtap", top]),
                Counter(),
            )
            if checked := sum(counts.values()):
                caught = sum(counts[s] for s in CAUGHT)
                low, high = interval(caught, checked)
                print(f"  {line('llmtap.' + top, counts)}  ({100 * low:.0f}% to {100 * high:.0f}%)")
    print("not caught (survived, no tests, suspicious)")
    for mutants in by_module.values():
        for name, s in sorted(mutants.items()):
            if s in CAUGHT:
                continue
            print(f"  {s:<10} {name}")
            if diff:
                shown = subprocess.run(
                    [str(Path(sys.executable).parent / "mutmut"), "show", name],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                print("    " + shown.stdout.strip().replace("\n", "\n    "))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
