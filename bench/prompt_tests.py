"""Issue 15: a prompt-test run of 1,000 cases at concurrency 16 against the fake provider,
against the same 1,000 calls made directly with ``openai.AsyncOpenAI`` at the same
concurrency; and the runner's peak memory.

The fake provider and ``llmtap serve`` run in processes of their own; a client process makes
the direct calls and the runs, the order turned each round (each run a new run of the set: the
test set read, each call through ``llmtap.AsyncClient`` and recorded, results sent in batches,
the summary stored). A third variant runs the same with the calls' recording turned off
(``enabled=False``): the runner's own work (planning, scoring, results, journal) apart from
the SDK's recording and the server's ingest of 1,000 events. Its peak resident memory
(``VmHWM``) is read at the end, beside its size after the imports and a warm-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx2

from ._harness import Figure, fake_provider, figure, llmtap_server, median, spread

_CHILD = r"""
import asyncio, json, sys, time
from pathlib import Path
import openai
from llmtap.evals.api import TestsApi
from llmtap.evals.runner import Runner, RunOptions

def rss(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)

provider, url, key, testset_id, rounds, concurrency = sys.argv[1:7]
rounds, concurrency = int(rounds), int(concurrency)
api = TestsApi(url, key)
testset = api.testset(int(testset_id))
provider_args = {"api_key": "sk-bench", "base_url": provider}
runner = Runner(api, provider_args, {"url": url, "api_key": key})
quiet = Runner(api, provider_args, {"url": url, "api_key": key, "enabled": False})
# openai's default retries on both sides: a connection the loopback provider drops now and
# then (one call in tens of thousands, seen as a ReadError) is sent again, not fatal.
options = RunOptions(model="gpt-4o-mini", concurrency=concurrency, max_retries=2)

async def direct():
    client = openai.AsyncOpenAI(api_key="sk-bench", base_url=provider, max_retries=2)
    gate = asyncio.Semaphore(concurrency)
    async def one(case):
        async with gate:
            answer = await client.chat.completions.create(
                model="gpt-4o-mini", messages=case["input"]
            )
            return answer.choices[0].message.content
    await asyncio.gather(*(one(c) for c in testset["cases"]))
    await client.close()

def run_once(which):
    calls = which.plan(testset, options)
    run_id = which.start(testset, options, calls)
    outcome = which.run(testset, options, calls, run_id)
    assert outcome["summary"]["done"] == len(testset["cases"]), outcome["summary"]

asyncio.run(direct())  # warm-up: imports, connections
run_once(quiet)  # and the runner's imports (the price library)
baseline = rss("VmRSS")
times = []
variants = ["direct", "runner", "unrecorded"]
for i in range(rounds):
    order = variants[i % 3:] + variants[:i % 3]
    order = order if i % 2 == 0 else order[::-1]
    row = {}
    for name in order:
        started = time.perf_counter()
        if name == "direct":
            asyncio.run(direct())
        else:
            run_once(runner if name == "runner" else quiet)
        row[name] = time.perf_counter() - started
    times.append(row)
print(json.dumps({"times": times, "baseline_mib": baseline, "peak_mib": rss("VmHWM")}))
"""


_CLI = [sys.executable, "-m", "llmtap.cli"]
_SCOPES = ["--scope", "ingest", "--scope", "read", "--scope", "admin"]


def _admin_key(db: str) -> str:
    return subprocess.run(
        [*_CLI, "keys", "create", "--project", "bench", "--db", db, *_SCOPES],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _cases(n: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"bench-{i}",
            "prompt_template_name": "bench",
            "template_params": {"sport": f"sport {i}"},
            "input": [
                {"role": "system", "content": "You pick one emoji."},
                {"role": "user", "content": f"Show me an emoji for sport {i}"},
            ],
            "output": f"echo: Show me an emoji for sport {i}",
            "rating": 1.0,
        }
        for i in range(n)
    ]


def run(quick: bool = False) -> dict[str, Any]:
    cases, rounds, concurrency = (200, 2, 16) if quick else (1000, 10, 16)
    with fake_provider() as provider, llmtap_server() as server:
        key = _admin_key(str(server.db))
        made = httpx2.post(
            server.url + "/api/v1/testsets",
            headers={"authorization": f"Bearer {key}"},
            json={"name": "bench", "source": "cases", "cases": _cases(cases)},
            timeout=120,
        )
        made.raise_for_status()
        testset_id = made.json()["testset"]["id"]
        sizes = [str(rounds), str(concurrency)]
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, provider, server.url, key, str(testset_id), *sizes],
            capture_output=True,
            text=True,
        )
        if child.returncode != 0:  # what went wrong, not just that it did
            raise RuntimeError(f"the measuring process failed:\n{child.stderr[-3000:]}")
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    ratios = [t["runner"] / t["direct"] for t in measured["times"]]
    unrecorded = [t["unrecorded"] / t["direct"] for t in measured["times"]]
    return {
        "unrecorded_ratio": median(unrecorded),
        "unrecorded_spread": spread(unrecorded),
        "load": os.getloadavg(),
        "cases": cases,
        "concurrency": concurrency,
        "rounds": measured["times"],
        "ratio": median(ratios),
        "ratio_spread": spread(ratios),
        "runner_s": median([t["runner"] for t in measured["times"]]),
        "direct_s": median([t["direct"] for t in measured["times"]]),
        "baseline_mib": measured["baseline_mib"],
        "peak_mib": measured["peak_mib"],
    }


def report(result: dict[str, Any]) -> str:
    return (
        f"prompt tests: {result['cases']} cases at concurrency {result['concurrency']}: "
        f"runner {result['runner_s']:.2f} s, direct openai.AsyncOpenAI {result['direct_s']:.2f} s"
        f" (median of {len(result['rounds'])} rounds, order turned); runner / direct "
        f"{result['ratio_spread']}; with recording off {result['unrecorded_spread']}; "
        f"load {result['load'][0]:.1f}; client process peak RSS {result['peak_mib']:.0f} MiB "
        f"({result['baseline_mib']:.0f} MiB after imports and a warm-up)"
    )


def summary(result: dict[str, Any]) -> list[Figure]:
    return [
        figure(
            f"prompt-test run / direct AsyncOpenAI ({result['cases']} cases, c16)",
            result["ratio"],
            "<=",
            1.15,
            "x",
        )
    ]
