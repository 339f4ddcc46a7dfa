"""What every benchmark needs: real processes on loopback, and honest statistics."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda v, b: v <= b,
    "<": lambda v, b: v < b,
    ">=": lambda v, b: v >= b,
    "==": lambda v, b: v == b,
}


@dataclass(frozen=True)
class Figure:
    """One line of `make bench`'s closing table: a measured figure against its target."""

    name: str
    value: str
    target: str
    met: bool


def figure(name: str, value: float, op: str, bound: float, unit: str = "") -> Figure:
    def show(x: float) -> str:
        if isinstance(x, float) and abs(x) < 10:
            return f"{x:.3f}{unit}"
        if isinstance(x, float) and abs(x) < 100:
            return f"{x:.1f}{unit}"
        return f"{x:,.0f}{unit}"

    return Figure(name, show(value), f"{op} {show(bound)}", _OPS[op](value, bound))


def summary_table(figures: list[Figure]) -> str:
    """The figures as a Markdown table (what BENCHMARKS.md opens with)."""
    rows = ["| figure | measured | target | met |", "|---|---|---|---|"]
    rows += [
        f"| {f.name} | {f.value} | {f.target} | {'yes' if f.met else '**no**'} |" for f in figures
    ]
    return "\n".join(rows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx2.get(url, timeout=1)
            return
        except httpx2.HTTPError:
            time.sleep(0.05)
    raise TimeoutError(url)


# The command reports its own peak memory as it exits. What ``wait4`` says of a child
# (``ru_maxrss``) is no good: Linux counts in it the memory of the process it was forked from.
_PEAK_MARK = "llmtap-bench-peak-kib"
_REPORT_PEAK = f"""
import atexit, runpy, sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print("{_PEAK_MARK}", line.split()[1], file=sys.stderr)
atexit.register(peak)
sys.argv[0] = "llmtap"
runpy.run_module("llmtap.cli", run_name="__main__")
"""


def run_cli(args: list[str]) -> tuple[float, float]:
    """(seconds, peak resident MiB) of one ``llmtap`` command; its output is discarded, its
    errors raised."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _REPORT_PEAK, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"llmtap {args[0]} failed: {done.stderr[-2000:]}")
    peaks = [line.split()[1] for line in done.stderr.splitlines() if line.startswith(_PEAK_MARK)]
    return seconds, int(peaks[-1]) / 1024


@contextmanager
def fake_provider(chunk_delay: float = 0.0) -> Iterator[str]:
    """The fake OpenAI-compatible provider in its own process (so it takes no GIL from the
    client being measured); yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmtap.fake_provider",
            "--port",
            str(port),
            "--chunk-delay",
            str(chunk_delay),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait()


@dataclass
class Server:
    url: str
    key: str
    db: Path
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far, every thread, user and system
        (Linux)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mib(self) -> float:
        """The server process's peak resident memory so far (Linux)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc: not Linux?")


class NoPostgres(Exception):
    """No PostgreSQL server for a benchmark: not installed, or it cannot start here."""


@contextmanager
def postgres_admin() -> Iterator[str]:
    """A superuser's URL of a PostgreSQL server: ``LLMTAP_BENCH_POSTGRES_URL`` when set, else
    a throwaway cluster (``tests/_postgres.py``) removed afterwards. ``NoPostgres`` (before
    anything runs) when none can be started, for the benchmark to say it skipped."""
    admin = os.environ.get("LLMTAP_BENCH_POSTGRES_URL")
    if admin:
        yield admin
        return
    from tests._postgres import Cluster

    try:
        cluster = Cluster()
    except Exception as e:
        raise NoPostgres(f"no PostgreSQL ({str(e).strip().splitlines()[0]})") from None
    try:
        yield cluster.url
    finally:
        cluster.remove()


@contextmanager
def llmtap_server(env: dict[str, str] | None = None) -> Iterator[Server]:
    """A real ``llmtap serve`` on a fresh SQLite file, with a key."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        cli = [sys.executable, "-m", "llmtap.cli"]
        key = subprocess.run(
            [
                *cli,
                "keys",
                "create",
                "--project",
                "bench",
                "--db",
                str(db),
                "--scope",
                "ingest",
                "--scope",
                "read",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        port = free_port()
        proc = subprocess.Popen(
            [*cli, "serve", "--db", str(db), "--port", str(port)],
            env={**os.environ, **(env or {})},
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait(f"http://127.0.0.1:{port}/healthz")
            yield Server(f"http://127.0.0.1:{port}", key, db, proc.pid)
        finally:
            proc.terminate()
            proc.wait()


def client_pair(base_url: str, server: Server) -> tuple[Any, Any]:
    """(plain ``openai.OpenAI``, ``llmtap.Client``): the same provider, the same options, the
    second delivering to ``server``."""
    import openai

    import llmtap

    plain = openai.OpenAI(api_key="sk-bench", base_url=base_url, max_retries=0)
    tapped = llmtap.Client(
        api_key="sk-bench",
        base_url=base_url,
        max_retries=0,
        llmtap={"url": server.url, "api_key": server.key},
    )
    return plain, tapped


def abba(
    rounds: int, clients: dict[str, Any], block: Callable[[Any, int], Any], n: int
) -> list[dict[str, Any]]:
    """``rounds`` rounds of ``block(client, n)`` for every client, in ABBA order: drift and
    bursts of noise hit them alike, and a median of per-round ratios shrugs off the rounds a
    burst spoiled."""
    out = []
    names = list(clients)
    for i in range(rounds):
        order = names if i % 4 in (0, 3) else names[::-1]
        out.append({name: block(clients[name], n) for name in order})
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """'median (min to max)' of ratios, to show how noisy a figure was."""
    return f"{statistics.median(values):.3f} ({min(values):.3f} to {max(values):.3f})"
