"""Boards' later additions against a real server: the ``week`` bucket, grouping by ``api`` and
by ``user`` (``attributes.user``), each panel's data equal to ``/api/v1/stats`` for its query
and to what the events posted say; on each store backend."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ._stores import STORE_BACKENDS
from .conftest import Project, server_on_each_backend
from .test_boards_api import BOARDS, call, ok
from .test_server import event, post_events

# Every test here runs on a server of each store backend.
server = pytest.fixture(scope="module", params=STORE_BACKENDS, name="server")(
    server_on_each_backend
)

# A Wednesday noon: three weeks of events from here cross two Mondays.
START = datetime(2026, 9, 2, 12, tzinfo=timezone.utc)
APIS = ["chat", "chat", "completion", "embeddings"]
USERS = ["ana", "bo", "cy"]


def _events() -> list[dict[str, Any]]:
    return [
        event(
            api=APIS[i % len(APIS)],
            started_at=(START + timedelta(hours=9 * i)).isoformat(),
            latency_ms=50.0 + 11 * i,
            attributes={"user": USERS[i % len(USERS)]} if i % 7 else {},
        )
        for i in range(56)  # 21 days
    ]


def _monday(moment: datetime) -> str:
    day = moment.date() - timedelta(days=moment.weekday())
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).isoformat()


def test_week_api_and_user_panels_equal_the_stats_api_and_the_events(project: Project) -> None:
    events = _events()
    ok(post_events(project, events))
    time_range = {"from": START.isoformat(), "to": (START + timedelta(days=30)).isoformat()}
    panels = [
        {"id": "weekly", "measures": ["requests", "latency_p50"], "view": "line", "bucket": "week"},
        {"id": "by-api", "measures": ["requests"], "view": "bars", "group_by": "api"},
        {"id": "by-user", "measures": ["requests"], "view": "table", "group_by": "user"},
        {
            "id": "embeddings",
            "measures": ["requests"],
            "view": "line",
            "filters": {"api": "embeddings"},
        },
    ]
    spec = {"time_range": time_range, "bucket": "day", "panels": panels}
    board = ok(call(project, "POST", BOARDS, {"name": "more", "spec": spec}), 201)
    data = {p["id"]: p for p in ok(call(project, "GET", f"{BOARDS}/{board['id']}/data"))["panels"]}
    for panel in data.values():
        stats = ok(project.server.get("/api/v1/stats", project.key, **panel["query"]))
        assert panel["stats"] == stats, panel["id"]

    starts = [datetime.fromisoformat(e["started_at"]) for e in events]
    weekly = data["weekly"]
    assert weekly["query"]["group_by"] == "week"
    assert {g["key"]["week"]: g["count"] for g in weekly["stats"]["groups"]} == Counter(
        _monday(s) for s in starts
    )
    assert len(weekly["stats"]["groups"]) == 4

    by_api = data["by-api"]["stats"]
    assert by_api["source"] == "events"  # the aggregates do not keep the API
    assert {g["key"]["api"]: g["count"] for g in by_api["groups"]} == Counter(
        e["api"] for e in events
    )

    by_user = data["by-user"]
    assert by_user["query"]["group_by"] == "attributes.user"
    assert {g["key"]["attributes.user"]: g["count"] for g in by_user["stats"]["groups"]} == (
        Counter(e["attributes"]["user"] for e in events if e["attributes"])
    )

    embeddings = data["embeddings"]["stats"]["groups"]
    assert sum(g["count"] for g in embeddings) == APIS.count("embeddings") * 56 // len(APIS)
    listed = ok(project.server.get("/api/v1/events", project.key, api="embeddings", limit=100))
    assert {e["id"] for e in listed["events"]} == {
        e["id"] for e in events if e["api"] == "embeddings"
    }


def test_a_week_bucket_and_api_grouping_on_the_stats_api(project: Project) -> None:
    events = _events()
    ok(post_events(project, events))
    answer = ok(project.server.get("/api/v1/stats", project.key, group_by="week,api"))
    weeks = {g["key"]["week"] for g in answer["groups"]}
    assert all(datetime.fromisoformat(w).weekday() == 0 for w in weeks)
    assert sum(g["count"] for g in answer["groups"]) == len(events)
    bad = project.server.get("/api/v1/stats", project.key, group_by="week,day")
    assert bad.status_code == 400 and "week" in bad.json()["error"]
