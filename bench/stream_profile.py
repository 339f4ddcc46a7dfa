"""Where a recorded stream's caller-thread time goes (issue 21): ``python -m bench.stream_profile``.

Not part of ``make bench`` (a profiler slows what it measures, so its figures attribute time,
they are not the overhead). Streams with chunks back to back go through ``openai.OpenAI`` and
``llmtap.Client`` under yappi's CPU clock, which sees every thread: for the caller's thread,
llmtap's functions with their calls and CPU per stream (inclusive), grouped by when they run
(stream start, each chunk, stream end); openai's parsing of chunks into models, both clients;
and the CPU llmtap's own threads (builder, sender) spend per stream, which they take from the
caller through the GIL when both want to run. Needs ``yappi`` (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import yappi

from ._canned import canned_pair
from ._harness import llmtap_server
from .streaming import MESSAGES

# (what, yappi function name, module path fragment): the caller-thread functions worth naming.
_WATCHED = (
    ("start", "Tap.begin", "_client.py"),
    ("start", "Tap.returned", "_client.py"),
    ("chunk", "_watched", "_stream.py"),
    ("chunk", "_events", "_stream.py"),
    ("chunk", "_kept", "_stream.py"),
    ("chunk", "_tag", "_stream.py"),
    # Before issue 21: what ran for each chunk then.
    ("chunk", "_keep", "_stream.py"),
    ("chunk", "Call.chunk", "_record.py"),
    ("end", "Tap.ended", "_client.py"),
    ("end", "_Guard.__del__", "_stream.py"),
    ("openai", "._process_response_data", "_base_client.py"),
    ("openai", "construct_type", "_models.py"),
)


def _streams(client: Any, n: int) -> None:
    for _ in range(n):
        for _chunk in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
            pass


def _profile(client: Any, n: int) -> dict[str, Any]:
    yappi.clear_stats()
    yappi.set_clock_type("cpu")
    yappi.start(builtins=False, profile_threads=True)
    _streams(client, n)
    if hasattr(client, "flush"):
        client.flush(30)  # the exporter's share of these streams, inside the profile
    yappi.stop()
    main = threading.main_thread().ident
    threads = {t.id: t for t in yappi.get_thread_stats()}
    caller = next(t.id for t in threads.values() if t.tid == main)
    funcs = yappi.get_func_stats(filter={"ctx_id": caller})
    rows = []
    for when, name, module in _WATCHED:
        for f in funcs:
            if (f.name == name or (name.startswith(".") and f.name.endswith(name))) and (
                module in f.module
            ):
                rows.append((when, name, f.ncall / n, f.ttot / n * 1e6))
    names = {t.ident: t.name for t in threading.enumerate()}
    others = {
        names.get(t.tid, t.name): t.ttot / n * 1e6
        for t in threads.values()
        if t.id != caller and t.ttot > 0
    }
    return {"caller_us": threads[caller].ttot / n * 1e6, "rows": rows, "threads": others}


def _unprofiled(client: Any, n: int) -> float:
    """Caller-thread CPU µs per stream with no profiler: what the yappi figures are a
    (slowed, roughly 10x) picture of."""
    start = time.thread_time()
    _streams(client, n)
    return (time.thread_time() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=400, help="streams per client")
    args = parser.parse_args()
    with llmtap_server() as server:
        plain, tapped = canned_pair(server)
        _streams(plain, 20)
        _streams(tapped, 20)
        for label, client in (("openai.OpenAI", plain), ("llmtap.Client", tapped)):
            real = _unprofiled(client, args.n)
            r = _profile(client, args.n)
            print(
                f"{label}: caller-thread CPU per stream {real:.1f} us unprofiled,"
                f" {r['caller_us']:.1f} us under yappi"
            )
            for when, name, calls, us in r["rows"]:
                print(f"  {when:<6} {name:<40} {calls:5.1f} calls {us:8.1f} us per stream")
            for name, us in r["threads"].items():
                print(f"  thread {name:<33} {us:8.1f} us per stream")
        tapped.close()


if __name__ == "__main__":
    main()
