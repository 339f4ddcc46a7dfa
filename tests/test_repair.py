"""Values stored before the wire's bounds (issue 17): a store written by an older version, with
what no read could show, opens repaired, and every endpoint and page answers again. The older
version is played by today's server, whose rows are then given the values it stored (its
schema let them through), aggregates included."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from .conftest import start_server, stop_server
from .test_hostile_reads import World
from .test_server import T0, event

HUGE = 2**63 - 1
YEAR_10000_US = 253402318800 * 1_000_000 + 3_600_000_000  # 9999-12-31T23:00-05:00, in UTC


def _old_store(tmp: Path) -> tuple[str, str, dict[str, dict[str, Any]]]:
    """A store as an older version left it: the project's name, its key, the events by name."""
    server = start_server(tmp)
    world = World(server)
    usage = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    events = {
        name: event(usage=usage, latency_ms=100.0, feedback_key=name, attributes={"n": name})
        for name in ("good", "latency", "year", "tokens", "cached")
    }
    world.store(*events.values())
    for name, rating in (("good", 1.0), ("latency", 0.5)):
        answer = server.post(
            "/api/v1/feedback", world.key, json={"feedback_key": name, "rating": rating}
        )
        assert answer.status_code == 200, answer.text
    for model, price in (("kept", 2.0), ("infinite", 3.0)):
        prices = {"model": model, "input_per_mtok": price, "output_per_mtok": price}
        assert server.post("/api/v1/prices", world.key, json=prices).status_code == 200
    assert world.api("/api/v1/stats").status_code == 200  # derived, before the damage
    world.close()
    stop_server(server)

    conn = sqlite3.connect(server.db, isolation_level=None)
    ids = {name: e["id"] for name, e in events.items()}
    damage = [
        ("UPDATE events SET latency_ms = 1e999 WHERE id = ?", ids["latency"]),
        (f"UPDATE events SET started_us = {YEAR_10000_US} WHERE id = ?", ids["year"]),
        (
            f"UPDATE events SET input_tokens = {HUGE},"
            f" body = json_set(body, '$.usage.input_tokens', {HUGE}) WHERE id = ?",
            ids["tokens"],
        ),
        (
            f"UPDATE events SET body = json_set(body, '$.usage.cached_tokens', {HUGE})"
            " WHERE id = ?",
            ids["cached"],
        ),
        ("UPDATE feedback SET rating = 1e999 WHERE feedback_key = ?", "latency"),
        ("UPDATE price_overrides SET input_per_mtok = 1e999 WHERE model = ?", "infinite"),
    ]
    for sql, param in damage:
        assert conn.execute(sql, (param,)).rowcount == 1, sql
    # What the older version derived from them: sums past what 64 bits and floats hold.
    conn.execute(f"UPDATE agg SET input_tokens = {HUGE}, cost = 1e999, rating_sum = 1e999")
    conn.execute("DELETE FROM _llmtap_migrations WHERE name = 'm009_repair_bounds'")
    conn.close()
    return world.name, world.key, events


def test_an_older_store_opens_repaired(tmp_path: Path) -> None:
    name, key, events = _old_store(tmp_path)
    server = start_server(tmp_path)
    world = World(server, name, key)
    try:
        reads = world.assert_readable(list(events.values()))
        assert reads > 20

        def stored(which: str) -> dict[str, Any]:
            return world.api(f"/api/v1/events/{events[which]['id']}").json()  # type: ignore[no-any-return]

        assert stored("latency")["latency_ms"] is None
        assert stored("year")["started_at"][:4] not in ("9999", "1000")
        assert stored("year")["started_at"][:4] >= str(T0.year)  # when it was received
        assert stored("tokens")["usage"]["input_tokens"] is None
        assert stored("tokens")["usage"]["output_tokens"] == 5
        assert stored("cached")["usage"]["cached_tokens"] is None
        assert stored("good") == {**stored("good"), "latency_ms": 100.0}

        # Derived again from the repaired events: the sums are exact, not the damaged ones.
        (totals,) = world.api("/api/v1/stats").json()["groups"]
        assert (totals["count"], totals["input_tokens"], totals["output_tokens"]) == (5, 40, 25)
        assert (totals["avg_rating"], totals["ratings"]) == (1.0, 1)  # the infinite one: gone
        costs = [stored(which)["cost_usd"] for which in events]
        assert totals["cost_usd"] == pytest.approx(sum(costs)) and sum(costs) > 0
        # Four latencies of 100 ms (histogram buckets: within a few percent); none infinite.
        assert 95 <= totals["latency_ms"]["p99"] <= 105
        prices = world.api("/api/v1/prices").json()
        assert [o["model"] for o in prices["overrides"]] == ["kept"]
        log = stop_server(server)
        assert "repaired values stored before the wire's bounds: 4 events, 1 ratings" in log
    finally:
        world.close()
        if server.process.poll() is None:
            stop_server(server)
