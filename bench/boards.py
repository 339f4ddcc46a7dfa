"""Issue 14: a board of 8 panels over the query benchmark's store (1,000,000 events, generated
once and cached under bench/.cache/): the server time for the whole board's data, p50 and p95,
and real Chromium's time from navigation until every panel has drawn."""

from __future__ import annotations

import shutil
import statistics
import time
from datetime import timedelta
from typing import Any

import httpx2

from . import query
from ._harness import Figure, figure
from .dashboard import PASSWORD, USER, _login, serving

_RANGE = {"from": query.START.isoformat(), "to": (query.START + timedelta(days=30)).isoformat()}
PANELS = [
    {"title": "Requests", "measures": ["requests"], "view": "number"},
    {"title": "Requests and errors", "measures": ["requests", "errors"], "view": "line"},
    {"title": "Cost by model", "measures": ["cost"], "view": "area", "group_by": "model"},
    {"title": "Tokens", "measures": ["input_tokens", "output_tokens"], "view": "line"},
    {"title": "Latency", "measures": ["latency_p50", "latency_p95"], "view": "line"},
    {
        "title": "By model",
        "measures": ["requests", "cost", "latency_p95"],
        "view": "table",
        "group_by": "model",
    },
    {
        "title": "By template",
        "measures": ["requests", "errors"],
        "view": "bars",
        "group_by": "prompt_template_name",
    },
    {
        "title": "By team",
        "measures": ["requests", "cost", "avg_rating"],
        "view": "table",
        "group_by": "attributes.team",
    },
]


def _browser_ms(url: str, board_path: str, rounds: int) -> list[float] | None:
    """Navigation until every panel has drawn, in Chromium; None without Playwright."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "/login")
        page.fill("input[name=name]", USER)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        for _ in range(rounds + 1):  # the first warms the caches
            start = time.perf_counter()
            page.goto(url + board_path)
            page.wait_for_selector("#board-app[data-drawn]", timeout=60_000)
            times.append((time.perf_counter() - start) * 1000)
        browser.close()
    return times[1:]


def run(quick: bool = False) -> dict[str, Any]:
    n = 50_000 if quick else 1_000_000
    rounds = 5 if quick else 20
    with serving(n, ("read", "admin")) as (url, key):
        api = httpx2.Client(base_url=url, timeout=120, headers={"authorization": f"Bearer {key}"})
        spec = {"time_range": _RANGE, "panels": PANELS}
        made = api.post("/api/v1/boards", json={"name": "bench board", "spec": spec})
        assert made.status_code == 201, made.text
        board_id = made.json()["id"]
        api.get(f"/api/v1/boards/{board_id}/data")  # warm the page cache
        server_ms = []
        for _ in range(rounds):
            start = time.perf_counter()
            answer = api.get(f"/api/v1/boards/{board_id}/data")
            server_ms.append((time.perf_counter() - start) * 1000)
            assert answer.status_code == 200, answer.text
        with httpx2.Client(base_url=url, timeout=120) as page:
            _login(page)  # makes the bench's user on a fresh store
        browser_ms = _browser_ms(url, f"/boards/{board_id}?project=bench", 3 if quick else 10)
    return {
        "events": n,
        "panels": len(PANELS),
        "server_ms": {"p50": round(statistics.median(server_ms), 1), "p95": _p95(server_ms)},
        "browser_ms": None
        if browser_ms is None
        else {"p50": round(statistics.median(browser_ms), 1), "max": round(max(browser_ms), 1)},
    }


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1)


def report(r: dict[str, Any]) -> str:
    s, b = r["server_ms"], r["browser_ms"]
    lines = [
        f"A board of {r['panels']} panels over {r['events']:,} events (loopback)",
        f"  server time, whole board   p50 {s['p50']:7.1f} ms   p95 {s['p95']:7.1f} ms"
        "   target p95 < 500 ms",
    ]
    if b is None:
        lines.append("  browser: skipped (no Playwright)")
    else:
        lines.append(
            f"  Chromium, navigation until every panel drew   p50 {b['p50']:7.1f} ms"
            f"   max {b['max']:7.1f} ms"
        )
    return "\n".join(lines)


def summary(r: dict[str, Any]) -> list[Figure]:
    return [figure("boards: 8 panels, server p95", r["server_ms"]["p95"], "<", 500, " ms")]
