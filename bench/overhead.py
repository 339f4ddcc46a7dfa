"""Issue 2: what llmtap adds to a non-streaming chat call.

Side by side in one run, against the same fake provider (its own process) with a real llmtap
server receiving the events: wall time per call through ``llmtap.Client`` over the same through
``openai.OpenAI``, in alternating rounds so drift hits both; and the CPU time the caller's
thread spends in llmtap, measured two ways (the difference of thread CPU per call, and the
recording path alone on a canned response).
"""

from __future__ import annotations

import time
from typing import Any

import openai
from openai.types.chat import ChatCompletion

import llmtap

from ._harness import (
    Figure,
    abba,
    client_pair,
    fake_provider,
    figure,
    llmtap_server,
    median,
    spread,
)

MESSAGES = [
    {"role": "system", "content": "You pick emoji."},
    {"role": "user", "content": "Show me an emoji for soccer"},
]


def _block(client: openai.OpenAI, n: int) -> tuple[float, float]:
    """(wall seconds per call, caller-thread CPU seconds per call) over n calls."""
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    for _ in range(n):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0)
    return (time.perf_counter() - wall0) / n, (time.thread_time() - cpu0) / n


def _record_path_cpu(client: llmtap.Client, n: int) -> float:
    """Caller-thread CPU per call of llmtap's own work alone: begin, then done, on a canned
    response (what the wrapper does around the real call)."""
    canned = ChatCompletion.model_validate(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "⚽"},
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
        }
    )
    tap = client._llmtap
    start = time.thread_time()
    for _ in range(n):
        kwargs: dict[str, Any] = {
            "model": "gpt-4o-mini",
            "messages": MESSAGES,
            "temperature": 0,
            "llmtap": {"prompt_template_name": "sport-emoji"},
        }
        call = tap.begin("chat", kwargs)
        assert call is not None
        tap.succeeded(call, canned)
    return (time.thread_time() - start) / n


def run(quick: bool = False) -> dict[str, Any]:
    rounds, per_round = (12, 100) if quick else (60, 100)  # many short rounds
    with fake_provider() as base_url, llmtap_server() as server:
        plain, tapped = client_pair(base_url, server)
        _block(plain, 100)
        _block(tapped, 100)
        rows = abba(rounds, {"p": plain, "t": tapped}, _block, per_round)
        wall_ratios = [r["t"][0] / r["p"][0] for r in rows]
        cpu_added = [(r["t"][1] - r["p"][1]) * 1e6 for r in rows]
        plain_ms = [r["p"][0] * 1e3 for r in rows]
        record_us = []
        for _ in range(5):
            record_us.append(_record_path_cpu(tapped, 2000) * 1e6)
            tapped.flush(30)
        delivered = tapped.flush(30)
        tapped.close()
    return {
        "calls_per_client": rounds * per_round,
        "plain_ms_per_call": round(median(plain_ms), 3),
        "wall_ratio": round(median(wall_ratios), 4),
        "wall_ratio_spread": spread(wall_ratios),
        "caller_cpu_added_us_by_difference": round(median(cpu_added), 1),
        "caller_cpu_us_record_path": round(median(record_us), 1),
        "all_delivered": delivered,
    }


def report(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            "Non-streaming chat.completions.create, llmtap.Client vs openai.OpenAI "
            f"({r['calls_per_client']} calls each, alternating rounds; plain call "
            f"{r['plain_ms_per_call']} ms on loopback)",
            f"  wall time ratio llmtap/openai: {r['wall_ratio']}  (per round: "
            f"{r['wall_ratio_spread']})   target <= 1.05",
            f"  caller-thread CPU in llmtap per call: {r['caller_cpu_us_record_path']} us "
            f"(recording path alone); {r['caller_cpu_added_us_by_difference']} us "
            "(difference of thread CPU per call)   target < 50 us",
            f"  every event delivered: {r['all_delivered']}",
        ]
    )


def summary(r: dict[str, Any]) -> list[Figure]:
    return [
        figure("SDK overhead: wall time llmtap/openai", r["wall_ratio"], "<=", 1.05),
        figure("SDK caller-thread CPU per call", r["caller_cpu_us_record_path"], "<", 50, " µs"),
    ]
