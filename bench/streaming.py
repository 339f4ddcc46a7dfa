"""Issues 3 and 21: what llmtap adds to a streamed chat call, and to a plain call next to its
peers.

Side by side in one run, with a real llmtap server receiving the events. Streams: first
canned ones (no network, ``_canned.py``), for the caller-thread CPU llmtap adds; then from the
fake provider in its own process, chunks back to back and then 2 ms apart, for the time to
first and to last chunk through ``llmtap.Client`` over the same through ``openai.OpenAI``. The
two clients alternate stream by stream (ABBA); each figure is the median over parts of a
ratio (or difference) of the medians of one-stream samples. Then the added wall time per
non-streaming call of llmtap and of the peers whose packages import here (``langfuse.openai``
with no server, OpenInference's OpenAI instrumentor with an OpenTelemetry batch span processor
exporting to a dead endpoint), each against plain ``openai`` in ABBA rounds. Peers are optional
(``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import openai

from ._canned import CHUNKS, canned_pair
from ._harness import (
    Figure,
    abba,
    client_pair,
    fake_provider,
    figure,
    free_port,
    llmtap_server,
    median,
    spread,
)

MESSAGES = [{"role": "user", "content": "one two three four five six seven [[chunks:6]]"}]


# What llmtap asks for on every stream, asked by the caller of plain openai the way llmtap
# asks: the usage chunk, in the raw body (as the stream_options argument, openai would convert
# it against its type first, which costs more than the chunk).
USAGE: dict[str, Any] = {"extra_body": {"stream_options": {"include_usage": True}}}


def _one_stream(
    client: openai.OpenAI, extra: dict[str, Any] | None = None
) -> tuple[float, float, float, int]:
    """(seconds to first chunk, seconds to last chunk, caller-thread CPU seconds, chunks seen)
    of one streamed call. CPU is this thread's alone (``thread_time``): what the caller pays,
    not what llmtap's background threads spend."""
    cpu0, t0 = time.thread_time(), time.perf_counter()
    stream = client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, **(extra or {})
    )
    t_first, chunks = None, 0
    for _chunk in stream:
        chunks += 1
        if t_first is None:
            t_first = time.perf_counter()
    t_end = time.perf_counter()
    return (t_first or t_end) - t0, t_end - t0, time.thread_time() - cpu0, chunks


def _streams(base_url: str, server: Any, parts: int, per_part: int) -> dict[str, Any]:
    """llmtap.Client against openai.OpenAI on one provider, alternating stream by stream
    (ABBA): per part, the ratios of the medians of time to first and to last chunk, and the
    difference of the medians of caller-thread CPU. Medians of one-stream samples, taken
    side by side: a loaded machine only ever adds to a sample, and hits both clients alike.
    A third client, plain openai asking for the usage chunk itself, says how much of what
    llmtap adds is that chunk's reading, which any caller asking for usage pays."""
    plain, tapped = client_pair(base_url, server)
    clients = {"openai": (plain, None), "llmtap": (tapped, None), "openai+usage": (plain, USAGE)}
    for client, extra in clients.values():
        for _ in range(20):
            _one_stream(client, extra)
    first, last, cpu, plain_ms, usage_first, usage_cpu = [], [], [], [], [], []
    for _ in range(parts):
        rows = abba(per_part, clients, lambda client, _n: _one_stream(*client), 1)
        m = {name: [median([r[name][i] for r in rows]) for i in range(3)] for name in clients}
        first.append(m["llmtap"][0] / m["openai"][0])
        last.append(m["llmtap"][1] / m["openai"][1])
        cpu.append((m["llmtap"][2] - m["openai"][2]) * 1e6)
        plain_ms.append(m["openai"])
        usage_first.append(m["llmtap"][0] / m["openai+usage"][0])
        usage_cpu.append((m["llmtap"][2] - m["openai+usage"][2]) * 1e6)
    out = {
        "streams_per_client": parts * per_part,
        "chunks_per_stream": rows[0]["openai"][3],
        "plain_ttfc_ms": round(median([p[0] for p in plain_ms]) * 1e3, 3),
        "plain_ttlc_ms": round(median([p[1] for p in plain_ms]) * 1e3, 3),
        "plain_cpu_us": round(median([p[2] for p in plain_ms]) * 1e6, 1),
        "ttfc_ratio": round(median(first), 4),
        "ttfc_ratio_spread": spread(first),
        "ttlc_ratio": round(median(last), 4),
        "ttlc_ratio_spread": spread(last),
        "cpu_added_us": round(median(cpu), 1),
        "cpu_added_us_spread": f"{median(cpu):.1f} ({min(cpu):.1f} to {max(cpu):.1f})",
        "vs_usage_ttfc_ratio": round(median(usage_first), 4),
        "vs_usage_cpu_added_us": round(median(usage_cpu), 1),
        "vs_usage_cpu_added_us_spread": (
            f"{median(usage_cpu):.1f} ({min(usage_cpu):.1f} to {max(usage_cpu):.1f})"
        ),
        "all_delivered": tapped.flush(30),
    }
    tapped.close()
    return out


def _plain_block(client: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        client.chat.completions.create(model="m", messages=MESSAGES)
    return (time.perf_counter() - t0) / n


def _peers(base_url: str) -> dict[str, Any]:
    """The peers' clients that can be built here; a peer that does not import is skipped."""
    # Their exporters retry against a dead endpoint: keep their complaints off the report.
    for name in ("opentelemetry", "langfuse"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    peers: dict[str, Any] = {}
    dead = f"http://127.0.0.1:{free_port()}"
    try:
        os.environ.setdefault("LANGFUSE_PUBLIC_KEY", "pk-lf-bench")
        os.environ.setdefault("LANGFUSE_SECRET_KEY", "sk-lf-bench")
        os.environ.setdefault("LANGFUSE_HOST", dead)
        from langfuse.openai import openai as langfuse_openai

        peers["langfuse.openai"] = langfuse_openai.OpenAI(
            api_key="sk", base_url=base_url, max_retries=0
        )
    except Exception as exc:  # optional: report and go on
        peers["langfuse.openai"] = f"skipped: {exc!r}"
    return peers


def _openinference(base_url: str) -> Any:
    """An openai client instrumented by OpenInference (which patches openai globally: so it is
    measured last, after every other client)."""
    try:
        from openinference.instrumentation.openai import OpenAIInstrumentor
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except Exception as exc:
        return f"skipped: {exc!r}"
    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{free_port()}/v1/traces", timeout=1)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    return openai.OpenAI(api_key="sk", base_url=base_url, max_retries=0)


def _one_stream_cpu(client: openai.OpenAI) -> float:
    """Caller-thread CPU seconds of one canned stream, read to its end."""
    cpu0 = time.thread_time()
    for _chunk in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
        pass
    return time.thread_time() - cpu0


def _canned_cpu(server: Any, parts: int, per_part: int) -> dict[str, Any]:
    """The caller-thread CPU llmtap adds per stream, on canned streams (no network, see
    ``_canned.py``). The two clients alternate stream by stream (ABBA), so a burst of load
    hits both alike; per part, the difference of the medians of the two clients' streams.
    Medians of many one-stream samples: a loaded machine only ever adds to a sample."""
    plain, tapped = canned_pair(server)
    clients = {"openai": plain, "llmtap": tapped}
    for client in clients.values():
        for _ in range(50):
            _one_stream_cpu(client)
    added, plain_us = [], []
    for _ in range(parts):
        rows = abba(per_part, clients, lambda client, _n: _one_stream_cpu(client), 1)
        a = median([r["openai"] for r in rows]) * 1e6
        added.append(median([r["llmtap"] for r in rows]) * 1e6 - a)
        plain_us.append(a)
    out = {
        "streams_per_client": parts * per_part,
        "chunks_per_stream": CHUNKS,
        "plain_cpu_us": round(median(plain_us), 1),
        "cpu_added_us": round(median(added), 1),
        "cpu_added_us_spread": f"{median(added):.1f} ({min(added):.1f} to {max(added):.1f})",
        "all_delivered": tapped.flush(30),
    }
    tapped.close()
    return out


def run(quick: bool = False) -> dict[str, Any]:
    rounds, per_round = (4, 10) if quick else (24, 20)
    parts, per_part = (3, 40) if quick else (5, 400)
    result: dict[str, Any] = {}
    with llmtap_server() as server:
        result["canned"] = _canned_cpu(server, 5, 100 if quick else 600)
        # Chunks back to back (a fast or cached model): no gap hides llmtap's work.
        with fake_provider(chunk_delay=0.0) as base_url:
            result["back_to_back"] = _streams(base_url, server, parts, per_part)
        with fake_provider(chunk_delay=0.002) as base_url:
            result["gaps"] = _streams(base_url, server, parts, per_part)
            plain, tapped = client_pair(base_url, server)

            # Non-streaming, added time per call: llmtap and its peers against plain openai.
            clients: dict[str, Any] = {"openai": plain, "llmtap": tapped}
            skipped = {}
            for name, peer in _peers(base_url).items():
                if isinstance(peer, str):
                    skipped[name] = peer
                else:
                    clients[name] = peer
            n_plain = 4 * per_round
            for client in clients.values():
                _plain_block(client, 20)
            rows = abba(rounds, clients, _plain_block, n_plain)
            oi = _openinference(base_url)
            if isinstance(oi, str):
                skipped["openinference"] = oi
            else:
                _plain_block(oi, 20)
                # openai is patched for good now: its baseline is the earlier rounds' plain figure.
                for row in rows:
                    row["openinference"] = _plain_block(oi, n_plain)
            added = {
                name: round(median([(r[name] - r["openai"]) * 1e6 for r in rows]), 1)
                for name in rows[0]
                if name != "openai"
            }
            result["plain_ms_per_call"] = round(median([r["openai"] for r in rows]) * 1e3, 3)
            result["nonstream_wall_ratio"] = round(
                median([r["llmtap"] / r["openai"] for r in rows]), 4
            )
            result["added_us_per_call"] = added
            result["peers_skipped"] = skipped
            result["all_delivered"] = tapped.flush(30) and all(
                result[k]["all_delivered"] for k in ("canned", "back_to_back", "gaps")
            )
            tapped.close()
    return result


def _stream_lines(title: str, r: dict[str, Any]) -> list[str]:
    return [
        f"Streaming chat.completions.create, {title}, {r['chunks_per_stream']} chunks seen: "
        f"llmtap.Client vs openai.OpenAI ({r['streams_per_client']} streams each, alternating; "
        f"plain: first chunk {r['plain_ttfc_ms']} ms, last {r['plain_ttlc_ms']} ms, caller CPU "
        f"{r['plain_cpu_us']} us)",
        f"  time to first chunk ratio: {r['ttfc_ratio']}  (parts: {r['ttfc_ratio_spread']})"
        "   target <= 1.02",
        f"  time to last chunk ratio:  {r['ttlc_ratio']}  (parts: {r['ttlc_ratio_spread']})"
        "   target <= 1.03",
        f"  caller-thread CPU added per stream: {r['cpu_added_us_spread']} us"
        f"   target <= {_cpu_bound(r)} us",
        "  against plain openai asking for the usage chunk itself: first chunk ratio "
        f"{r['vs_usage_ttfc_ratio']}, caller CPU added {r['vs_usage_cpu_added_us_spread']} us",
    ]


def _cpu_bound(r: dict[str, Any]) -> float:
    """Issue 21: 30 µs per stream and 2 µs per chunk."""
    return 30.0 + 2.0 * r["chunks_per_stream"]


def report(r: dict[str, Any]) -> str:
    c = r["canned"]
    lines = [
        f"Canned streams, no network ({c['chunks_per_stream']} chunks, {c['streams_per_client']}"
        f" each, alternating; plain openai: {c['plain_cpu_us']} us caller CPU per stream)",
        f"  caller-thread CPU llmtap adds per stream: {c['cpu_added_us_spread']} us"
        f"   target <= {_cpu_bound(c)} us",
        *_stream_lines("chunks back to back", r["back_to_back"]),
        *_stream_lines("chunks 2 ms apart", r["gaps"]),
        f"Non-streaming, same run (plain call {r['plain_ms_per_call']} ms): wall ratio "
        f"llmtap/openai {r['nonstream_wall_ratio']}   target <= 1.03",
        "  added wall time per call over plain openai (median of rounds):",
    ]
    for name, us in sorted(r["added_us_per_call"].items(), key=lambda kv: kv[1]):
        lines.append(f"    {name:<18} {us:>9.1f} us")
    for name, why in r["peers_skipped"].items():
        lines.append(f"    {name:<18} {why}")
    lines.append(f"  every llmtap event delivered: {r['all_delivered']}")
    return "\n".join(lines)


def summary(r: dict[str, Any]) -> list[Figure]:
    def cpu(title: str, scenario: dict[str, Any]) -> Figure:
        bound = _cpu_bound(scenario)
        return figure(
            f"stream, {title}: caller CPU added", scenario["cpu_added_us"], "<=", bound, " µs"
        )

    b2b, gaps = r["back_to_back"], r["gaps"]
    bound = _cpu_bound(b2b)
    return [
        cpu("canned", r["canned"]),
        figure("stream, back to back: first chunk, llmtap/openai", b2b["ttfc_ratio"], "<=", 1.02),
        figure("stream, back to back: last chunk, llmtap/openai", b2b["ttlc_ratio"], "<=", 1.03),
        cpu("back to back", b2b),
        figure(
            "stream, back to back: first chunk, llmtap/openai asking for usage",
            b2b["vs_usage_ttfc_ratio"],
            "<=",
            1.02,
        ),
        figure(
            "stream, back to back: caller CPU added over openai asking for usage",
            b2b["vs_usage_cpu_added_us"],
            "<=",
            bound,
            " µs",
        ),
        figure("stream, 2 ms gaps: first chunk, llmtap/openai", gaps["ttfc_ratio"], "<=", 1.02),
        figure("stream, 2 ms gaps: last chunk, llmtap/openai", gaps["ttlc_ratio"], "<=", 1.03),
        cpu("2 ms gaps", gaps),
    ]
