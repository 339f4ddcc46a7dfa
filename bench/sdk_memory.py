"""Issue 4: peak RSS of the SDK while the server is down and 100,000 calls are recorded.

A client process of its own records calls through ``llmtap.Client`` (the real openai SDK; the
provider is an httpx transport answering a canned completion at once, so the calls are fast,
never wait on I/O, and the recording path is the real one) with ``LLMTAP_URL`` on a closed
loopback port. Its baseline is its resident size after a few warm-up calls (imports, the
client, the exporter's threads);
its peak (``VmHWM``) is read after the calls and a flush. Events past the in-memory cap go to
the disk spool: its size is reported beside.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from ._harness import Figure, figure, free_port

_CHILD = r"""
import json, os, sys, time
from pathlib import Path
import httpx2
import llmtap

def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)

COMPLETION = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "Soccer: " + "⚽ " * 40}}],
    "usage": {"prompt_tokens": 30, "completion_tokens": 60, "total_tokens": 90},
}).encode()

def answer(request):
    time.sleep(WAIT)  # the provider's answer takes this long (a real one: 100s of ms)
    return httpx2.Response(200, content=COMPLETION, headers={"content-type": "application/json"})

n, WAIT = int(sys.argv[1]), float(sys.argv[3])
client = llmtap.Client(
    api_key="sk-fake", base_url="http://provider.invalid/v1",
    http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
    llmtap={"api_key": "lt-fake", "url": sys.argv[2]},
)
messages = llmtap.TemplateChat(
    [{"role": "system", "content": "You pick emoji and explain them at some length."},
     {"role": "user", "content": "Show me an emoji for {sport}, user {user}"}],
    {"sport": "soccer", "user": "u0"},
)
def call(i):
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=llmtap.TemplateChat(messages.template, {"sport": "soccer", "user": f"u{i}"}),
        llmtap={"prompt_template_name": "emoji", "attributes": {"user": f"u{i % 100}"}},
    )
for i in range(200):
    call(i)
time.sleep(1.0)
baseline = status("VmRSS")
start = time.perf_counter()
for i in range(n):
    call(i)
elapsed = time.perf_counter() - start
client.flush(timeout=2.0)
spool = Path(os.environ["LLMTAP_SPOOL_DIR"])
print(json.dumps({
    "calls": n,
    "seconds": elapsed,
    "baseline_bytes": baseline,
    "peak_bytes": status("VmHWM"),
    "spool_bytes": sum(p.stat().st_size for p in spool.rglob("*") if p.is_file()),
    "dropped": client.stats().dropped,
}))
"""


# How long the fake provider takes to answer. 0: the caller never waits on I/O, the hardest
# case for the exporter's threads, which then get the GIL only when the caller is made to
# hand it over (a real call waits 100s of ms on the network, and they run meanwhile).
PROVIDER_SECONDS = 0.0


def measure(calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as spool:
        url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(calls), url, str(PROVIDER_SECONDS)],
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("LLMTAP_")},
                "LLMTAP_SPOOL_DIR": spool,
            },
            check=True,
            capture_output=True,
            text=True,
        )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["above_baseline_bytes"] = result["peak_bytes"] - result["baseline_bytes"]
    return result


def run(quick: bool = False) -> dict[str, Any]:
    return measure(20_000 if quick else 100_000)


def report(result: dict[str, Any]) -> str:
    mib = 1024 * 1024
    return "\n".join(
        [
            f"sdk memory: {result['calls']:,} calls recorded with the server down "
            f"({result['calls'] / result['seconds']:,.0f} calls/s)",
            f"  peak RSS {result['peak_bytes'] / mib:.1f} MiB, baseline "
            f"{result['baseline_bytes'] / mib:.1f} MiB: "
            f"{result['above_baseline_bytes'] / mib:.1f} MiB above (target: < 50 MiB)",
            f"  on disk (spool): {result['spool_bytes'] / mib:.1f} MiB; "
            f"dropped: {result['dropped']}",
        ]
    )


def summary(r: dict[str, Any]) -> list[Figure]:
    above = r["above_baseline_bytes"] / (1024 * 1024)
    return [figure("SDK memory with the server down, above baseline", above, "<", 50, " MiB")]
