"""Issue 6: the dashboard on a store of 1,000,000 events (the query benchmark's, generated once
and cached under bench/.cache/): the server time of each page, and the weight of the overview
with everything it loads."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2

from llmtap.server.auth import create_key
from llmtap.store import open_store

from . import query
from ._harness import Figure, _wait, figure, free_port

TOKEN = "bench-admin-token"
USER, PASSWORD = "bench", "bench-password"


def _login(http: httpx2.Client) -> None:
    """Log in as the bench's user: made with the admin token the first time (the store is
    cached between runs), then with its password."""
    page = http.get("/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    form = {"csrf_token": csrf.group(1), "name": USER, "password": PASSWORD, "next": "/"}
    if 'name="token"' in page:
        form["token"] = TOKEN
    assert http.post("/login", data=form).status_code == 303


def _time(http: httpx2.Client, path: str, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = http.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return times


def _weight(http: httpx2.Client, path: str) -> int:
    """Bytes of the page and of every stylesheet and script it loads."""
    page = http.get(path)
    total = len(page.content)
    for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text):
        total += len(http.get(asset).content)
    return total


@contextmanager
def serving(n: int, scopes: tuple[str, ...] = ("ingest", "read")) -> Iterator[tuple[str, str]]:
    """(url, key): a real ``llmtap serve`` on the query benchmark's store of ``n`` events
    (generated whole when missing), and a key of its project with ``scopes``."""
    db, _ = query.cached_store(n)
    store = open_store(str(db))
    key = create_key(store, "bench", "prod", scopes)
    store.close()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "llmtap.cli", "serve", "--db", str(db), "--port", str(port)],
        env={**os.environ, "LLMTAP_ADMIN_TOKEN": TOKEN},
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url + "/healthz", timeout=120)
        yield url, key
    finally:
        server.terminate()
        server.wait()


def run(quick: bool = False) -> dict[str, Any]:
    n = 50_000 if quick else 1_000_000
    with serving(n) as (url, _):
        http = httpx2.Client(base_url=url, timeout=120, headers={"accept": "text/html"})
        _login(http)
        events = http.get("/events?project=bench&format=json").json()["events"]
        some = events[0]
        template = some["prompt_template_name"]
        pages = {
            "overview, 24 hours": "/?project=bench&range=24h",
            "overview, 30 days": "/?project=bench&range=30d",
            "overview, all time": "/?project=bench&range=all",
            "events": "/events?project=bench",
            "events, model + status": "/events?project=bench&model=gpt-4o&status=error",
            "events, attribute + text": "/events?project=bench&attr=team%3Dgold&q=refund",
            "events, slowest first": "/events?project=bench&sort=-latency_ms",
            "event": f"/events/{some['id']}?project=bench",
            "group by model, all time": "/groups?project=bench&by=model&range=all",
            "group by attribute, all time": "/groups?project=bench&by=attributes.team&range=all",
            "templates": "/templates?project=bench",
            "template and diff": f"/templates/{template}?project=bench",
            "feedback": "/feedback?project=bench",
            "settings": "/settings",
        }
        rounds = 3 if quick else 10
        for path in pages.values():
            _time(http, path, 1)  # warm the page cache
        timings = {name: _time(http, path, rounds) for name, path in pages.items()}
        weight = _weight(http, pages["overview, 30 days"])
    return {
        "events": n,
        "pages_ms": {
            name: {"p50": round(statistics.median(t), 1), "max": round(max(t), 1)}
            for name, t in timings.items()
        },
        "overview_weight_bytes": weight,
        "db": f"events-{n}.db",
    }


def report(r: dict[str, Any]) -> str:
    lines = [f"Dashboard pages on {r['events']:,} events (server time, loopback; target < 300 ms)"]
    for name, t in r["pages_ms"].items():
        lines.append(f"  {name:32} p50 {t['p50']:7.1f} ms   max {t['max']:7.1f} ms")
    lines.append(
        f"  overview page weight with its CSS and JS: {r['overview_weight_bytes']:,} bytes"
        "   target < 1 MB"
    )
    return "\n".join(lines)


def summary(r: dict[str, Any]) -> list[Figure]:
    slowest = max(t["max"] for t in r["pages_ms"].values())
    return [
        figure("dashboard: slowest page, max", slowest, "<", 300, " ms"),
        figure("dashboard: overview weight", r["overview_weight_bytes"] / 1e6, "<", 1, " MB"),
    ]
