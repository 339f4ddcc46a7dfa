"""Boards' later additions against a real server: the ``week`` bucket, grouping by ``api`` and
by ``user`` (``attributes.user``), each panel's data equal to ``/api/v1/stats`` for its query
and to what the events posted say; on each store backend."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ._stores import STORE_BACKENDS
from .conftest import Project, Server, server_on_each_backend
from .test_boards_api import BOARDS, call, ok
from .test_dashboard_http import login
from .test_server import assert_error_shape, event, post_events

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


def test_a_published_link_shows_the_events_behind_a_panel_only_when_allowed(
    project: Project,
) -> None:
    day = datetime(2026, 9, 2, tzinfo=timezone.utc)
    events = [
        event(
            model=model,
            started_at=(day + timedelta(days=i % 2, hours=i)).isoformat(),
            output_text=f"<b>answer {i}</b> of {model}",
            attributes={"team": "red"},
        )
        for i, model in enumerate(["gpt-4o", "o3"] * 3)
    ]
    ok(post_events(project, events))
    panels = [
        {"id": "models", "measures": ["requests"], "view": "table", "group_by": "model"},
        {"id": "daily", "measures": ["requests"], "view": "line"},
        {"id": "total", "measures": ["requests"], "view": "number"},
        {
            "id": "red",
            "measures": ["requests"],
            "view": "bars",
            "group_by": "attributes.team",
            "filters": {"attributes.team": "red"},
        },
    ]
    time_range = {"from": day.isoformat(), "to": (day + timedelta(days=3)).isoformat()}
    spec = {"time_range": time_range, "bucket": "day", "panels": panels}
    board = ok(call(project, "POST", BOARDS, {"name": "drill", "spec": spec}), 201)
    shares = f"{BOARDS}/{board['id']}/shares"
    closed = ok(call(project, "POST", shares, {}), 201)
    opened = ok(call(project, "POST", shares, {"allow_bodies": True}), 201)
    base = project.server.url

    def get(link: dict[str, Any], **params: str) -> Any:
        return httpx2.get(base + link["url"] + "/events", params=params)

    # Not allowed: nothing, as for a link that does not exist; the page offers no click.
    assert_error_shape(get(closed, panel="models"), 404)
    assert 'data-bodies="0"' in httpx2.get(base + closed["url"]).text
    assert 'data-bodies="1"' in httpx2.get(base + opened["url"]).text

    page = get(opened, panel="models", group="o3")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    shown = {i for i in range(6) if f"answer {i}</b>" in page.text.replace("&lt;/b&gt;", "</b>")}
    assert shown == {1, 3, 5}  # o3's, and only them
    assert "<b>answer" not in page.text and "&lt;b&gt;answer 1" in page.text  # escaped
    first_day = get(opened, panel="daily", bucket=str(int(day.timestamp()) + 3600))
    assert first_day.status_code == 200
    assert "answer 0" in first_day.text and "answer 1" not in first_day.text
    assert "answer 4" in first_day.text and "answer 5" not in first_day.text
    every = get(opened, panel="total")
    assert all(f"answer {i}" in every.text for i in range(6))

    # The request only narrows the board's own query: everything else is refused, < 500.
    hostile: list[tuple[dict[str, str], int]] = [
        ({"panel": "models", "model": "gpt-4o"}, 400),
        ({"panel": "models", "project": "x"}, 400),
        ({"panel": "models", "attributes.team": "blue"}, 400),
        ({"panel": "nope"}, 404),
        ({}, 404),
        ({"panel": "daily", "group": "o3"}, 400),  # not grouped
        ({"panel": "models", "bucket": "1"}, 400),  # not over time
        ({"panel": "daily", "bucket": "-1"}, 400),
        ({"panel": "daily", "bucket": "1e9"}, 400),
        ({"panel": "daily", "bucket": "9" * 40}, 400),
        ({"panel": "daily", "bucket": "999999999999"}, 400),  # past the year 9999
        ({"panel": "daily", "bucket": "253399622400"}, 200),  # 9999-12-01
        ({"panel": "daily", "bucket": "0" * 5000 + "1"}, 400),
        ({"panel": "daily", "bucket": ""}, 400),
        ({"panel": "daily", "bucket": "١٢"}, 400),
        ({"panel": "red", "group": "blue"}, 400),  # outside the panel's filter
        ({"panel": "models", "group": "x" * 1001}, 400),
        ({"panel": "models", "group": "<script>alert(1)</script>"}, 200),
    ]
    for params, status in hostile:
        answer = get(opened, **params)
        assert answer.status_code == status, (params, answer.text)
    twice = httpx2.get(base + opened["url"] + "/events?panel=models&panel=total")
    assert_error_shape(twice, 400)
    escaped = get(opened, panel="models", group="<script>alert(1)</script>").text
    assert "<script>alert(1)" not in escaped and "&lt;script&gt;alert(1)" in escaped
    ok(call(project, "DELETE", f"{shares}/{opened['id']}"))
    assert_error_shape(get(opened, panel="models"), 404)


@pytest.fixture(scope="module")
def drill_link(server: Server) -> str:
    """A link with events allowed to a board of a panel of each kind (its own project)."""
    project = Project(server.new_key(), server)
    ok(post_events(project, _events()))
    panels = [
        {"id": "weekly", "measures": ["requests"], "view": "area", "bucket": "week"},
        {"id": "users", "measures": ["requests"], "view": "bars", "group_by": "user"},
        {"id": "apis", "measures": ["requests"], "view": "line", "group_by": "api"},
        {"id": "n", "measures": ["requests"], "view": "number"},
    ]
    spec = {"time_range": {"last": "all"}, "panels": panels}
    board = ok(call(project, "POST", BOARDS, {"name": "fuzz", "spec": spec}), 201)
    link = ok(call(project, "POST", f"{BOARDS}/{board['id']}/shares", {"allow_bodies": True}), 201)
    return server.url + link["url"] + "/events"


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_DRILL_QUERIES = st.lists(
    st.tuples(
        st.sampled_from(["panel", "group", "bucket", "from", "to", "project", "attributes.user"])
        | _TEXT,
        st.sampled_from(["weekly", "users", "apis", "n", "ana", "chat", "0", "1788000000"])
        | _TEXT
        | st.integers(-(2**70), 2**70).map(str),
    ),
    max_size=4,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=_DRILL_QUERIES)
def test_hostile_drill_down_queries_answer_4xx_never_500(
    drill_link: str, query: list[tuple[str, str]]
) -> None:
    response = httpx2.get(drill_link, params=query, headers={"accept": "text/html"})
    assert response.status_code in (200, 400, 404), (query, response.text[:300])


def test_cached_reasoning_and_low_rating_panels_answer_the_posted_events(server: Server) -> None:
    """Issue 14's cached and reasoning tokens and issue 16's share of low ratings: panels of
    them answer what was posted and rated, and the panel editor offers them."""
    name = f"measures-{uuid.uuid4().hex[:6]}"
    project = Project(server.new_key(name), server)
    events = [
        event(
            model=model,
            started_at=(START + timedelta(minutes=i)).isoformat(),
            usage={"input_tokens": 100, "output_tokens": 40, "cached_tokens": 10 * i}
            | ({"reasoning_tokens": 7} if model == "o3" else {}),
            feedback_key=f"fk-{name}-{i}",
        )
        for i, model in enumerate(["gpt-4o", "o3", "o3", "gpt-4o"])
    ]
    ok(post_events(project, events))
    # Event 1: rated high, then low, then high again; event 3: low once.
    for i, rating in [(1, 0.9), (1, 0.2), (1, 0.95), (3, 0.1)]:
        body = {"feedback_key": events[i]["feedback_key"], "rating": rating}
        ok(project.server.post("/api/v1/feedback", project.key, json=body))
    measures = ["cached_tokens", "reasoning_tokens", "low_rating_share"]
    panel = {"id": "p", "measures": measures, "view": "table", "group_by": "model"}
    time_range = {"from": START.isoformat(), "to": (START + timedelta(hours=1)).isoformat()}
    spec = {"panels": [panel], "time_range": time_range}
    board = ok(call(project, "POST", BOARDS, {"name": "measures", "spec": spec}), 201)
    (data,) = ok(call(project, "GET", f"{BOARDS}/{board['id']}/data"))["panels"]
    got = {g["key"]["model"]: tuple(g[m] for m in measures) for g in data["stats"]["groups"]}
    assert got == {"gpt-4o": (30, 0, 1.0), "o3": (30, 14, 1 / 3)}
    with login(server) as browser:
        page = browser.get(f"/boards/{board['id']}", params={"project": name})
        assert page.status_code == 200, page.text[:300]
        choices = json.loads(page.text.split('id="board-choices">', 1)[1].split("</script>", 1)[0])
        assert set(measures) <= set(choices["measures"])


def test_a_links_panels_are_computed_once_for_its_readers_and_an_edit_shows_at_once(
    project: Project,
) -> None:
    """A link's data is kept a few seconds for everyone reading it: events posted meanwhile
    show after that; a save of the board shows at once (a new version, a new answer)."""
    day = datetime.now(timezone.utc) - timedelta(hours=1)
    ok(post_events(project, [event(started_at=day.isoformat())]))
    total = {"id": "total", "measures": ["requests"], "view": "number"}
    spec = {"time_range": {"last": "7d"}, "panels": [total]}
    board = ok(call(project, "POST", BOARDS, {"name": "kept", "spec": spec}), 201)
    link = ok(call(project, "POST", f"{BOARDS}/{board['id']}/shares", {}), 201)
    url = project.server.url + link["url"] + "/data"

    def count() -> int:
        (panel,) = ok(httpx2.get(url))["panels"]
        return sum(g["count"] for g in panel["stats"]["groups"])

    assert count() == 1
    ok(post_events(project, [event(started_at=day.isoformat())]))
    assert count() == 1  # the answer of a moment ago
    renamed = {**total, "id": "renamed"}
    ok(
        call(
            project,
            "PUT",
            f"{BOARDS}/{board['id']}",
            {"name": "kept", "spec": {**spec, "panels": [renamed]}},
        )
    )
    (panel,) = ok(httpx2.get(url))["panels"]
    assert panel["id"] == "renamed" and sum(g["count"] for g in panel["stats"]["groups"]) == 2


def test_answers_asked_for_at_once_are_made_once_and_kept_a_while() -> None:
    import threading
    import time

    from llmtap.server.dashboard.boards import Recent

    recent = Recent(seconds=0.5, most=2)
    made: list[str] = []

    def make(name: str) -> Any:
        def work() -> Any:
            made.append(name)
            time.sleep(0.2)  # the others arrive while it is made
            return {"made": name, "n": len(made)}

        return work

    answers: list[Any] = []
    readers = [
        threading.Thread(target=lambda: answers.append(recent.get("a", make("a"))))
        for _ in range(8)
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert made == ["a"] and answers == [{"made": "a", "n": 1}] * 8
    recent.get("b", make("b"))
    recent.get("c", make("c"))  # past `most`: "a", the oldest, goes
    assert recent.get("a", make("a"))["n"] == 4
    time.sleep(0.6)
    assert recent.get("c", make("c"))["n"] == 5  # and after `seconds`, made again


def test_a_project_holds_at_most_a_thousand_boards(project: Project) -> None:
    """Each board is computed when shown and every list reads them all: a key that may write
    boards cannot fill the store with them (409, saying why); deleting one makes room."""
    from llmtap.store import open_store

    made = ok(call(project, "POST", BOARDS, {"name": "first", "spec": {"panels": []}}), 201)
    store = open_store(str(project.server.db))  # 999 more, straight into the server's store
    try:
        (project_id,) = [p["id"] for p in store.list_projects() if store.board(p["id"], made["id"])]
        for i in range(999):
            assert store.create_board(project_id, f"bulk{i:04d}", f"b{i}", {"panels": []}, None)
    finally:
        store.close()
    refused = call(project, "POST", BOARDS, {"name": "one more", "spec": {"panels": []}})
    assert refused.status_code == 409 and "1000 boards" in refused.json()["error"]
    ok(call(project, "DELETE", f"{BOARDS}/{made['id']}"))
    ok(call(project, "POST", BOARDS, {"name": "one more", "spec": {"panels": []}}), 201)
