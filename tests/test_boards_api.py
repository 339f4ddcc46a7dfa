"""``/api/v1/boards`` against a real server: the life of a board (template, save, versions,
restore, duplicate, delete), its panels' data equal to ``/api/v1/stats`` for the same query,
scopes and projects kept apart, and hostile boards answered 4xx, never 500 (hypothesis)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmtap.store import LIVE_LINKS

from ._stores import STORE_BACKENDS
from .conftest import Project, Server, server_on_each_backend
from .test_dashboard_http import csrf_of, login
from .test_server import assert_error_shape, event, post_events

# Every test here runs on a server of each store backend.
server = pytest.fixture(scope="module", params=STORE_BACKENDS, name="server")(
    server_on_each_backend
)

BOARDS = "/api/v1/boards"


def call(project: Project, method: str, path: str, body: Any = None, **params: Any) -> Any:
    return httpx2.request(
        method,
        project.server.url + path,
        params=params,
        headers={"authorization": f"Bearer {project.key}"},
        content=None if body is None else json.dumps(body),
    )


def ok(response: httpx2.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def seed_variants(project: Project) -> None:
    now = datetime.now(timezone.utc)
    events = [
        event(
            model=model,
            started_at=(now - timedelta(minutes=i * 7)).isoformat(),
            latency_ms=100.0 + 37 * i,
            status="error" if i % 5 == 0 else "ok",
            prompt_template_name=f"t{i % 2}",
            usage={"input_tokens": 10 + i, "output_tokens": 3},
            attributes={"system_prompt": f"variant {i % 3}", "audience": "kids"},
        )
        for i, model in enumerate(["gpt-4o-mini", "gpt-4o", "o3"] * 7)
    ]
    ok(post_events(project, events))


def test_a_board_from_a_template_is_saved_versioned_restored_and_deleted(project: Project) -> None:
    listing = ok(call(project, "GET", BOARDS))
    assert listing["boards"] == []
    assert {"openai-monitor", "prompt-experiments"} <= {t["id"] for t in listing["templates"]}
    board = ok(call(project, "POST", BOARDS, {"template": "openai-monitor"}), 201)
    assert (board["name"], board["version"]) == ("OpenAI monitor", 1)
    spec = board["spec"]
    spec["panels"].append({"id": "mine", "measures": ["requests"], "group_by": "attributes.x"})
    saved = ok(call(project, "PUT", f"{BOARDS}/{board['id']}", {"name": "Mine", "spec": spec}))
    assert (saved["name"], saved["version"], saved["spec"]["panels"][-1]["id"]) == (
        "Mine",
        2,
        "mine",
    )
    versions = ok(call(project, "GET", f"{BOARDS}/{board['id']}/versions"))["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    first = ok(call(project, "GET", f"{BOARDS}/{board['id']}/versions/1"))
    assert first["name"] == "OpenAI monitor"
    restored = ok(call(project, "POST", f"{BOARDS}/{board['id']}/restore", {"version": 1}))
    assert (restored["name"], restored["version"]) == ("OpenAI monitor", 3)
    assert restored["spec"] == board["spec"] | {"panels": board["spec"]["panels"][:-1]}
    copy = ok(call(project, "POST", f"{BOARDS}/{board['id']}/duplicate", {}), 201)
    assert copy["name"] == "Copy of OpenAI monitor" and copy["id"] != board["id"]
    assert len(ok(call(project, "GET", BOARDS))["boards"]) == 2
    ok(call(project, "DELETE", f"{BOARDS}/{board['id']}"))
    assert_error_shape(call(project, "GET", f"{BOARDS}/{board['id']}"), 404)
    assert_error_shape(call(project, "POST", BOARDS, {"template": "nope"}), 400)


def test_panel_data_equal_the_stats_api_for_the_same_query(project: Project) -> None:
    seed_variants(project)
    experiments = ok(call(project, "POST", BOARDS, {"template": "prompt-experiments"}), 201)
    monitor = ok(call(project, "POST", BOARDS, {"template": "openai-monitor"}), 201)
    compared = 0
    for board in (experiments, monitor):
        data = ok(call(project, "GET", f"{BOARDS}/{board['id']}/data"))
        assert [p["id"] for p in data["panels"]] == [p["id"] for p in board["spec"]["panels"]]
        for panel in data["panels"]:
            stats = ok(project.server.get("/api/v1/stats", project.key, **panel["query"]))
            assert panel["stats"] == stats, panel["id"]
            compared += 1
            assert sum(g["count"] for g in stats["groups"]) == 21, panel["id"]
    assert compared == 15
    by_variant = next(
        p
        for p in ok(call(project, "GET", f"{BOARDS}/{experiments['id']}/data"))["panels"]
        if p["id"] == "variants"
    )
    assert {g["key"]["attributes.system_prompt"] for g in by_variant["stats"]["groups"]} == {
        "variant 0",
        "variant 1",
        "variant 2",
    }
    number = next(p for p in data["panels"] if p["id"] == "total")
    assert number["previous"] is not None and number["stats"]["groups"][0]["count"] == 21


def test_the_pickers_list_what_exists_with_counts(project: Project) -> None:
    seed_variants(project)
    fields = ok(call(project, "GET", f"{BOARDS}/fields"))
    assert {v["value"]: v["count"] for v in fields["model"]} == {
        "gpt-4o-mini": 7,
        "gpt-4o": 7,
        "o3": 7,
    }
    assert {a["key"] for a in fields["attributes"]} == {"system_prompt", "audience"}
    values = ok(call(project, "GET", f"{BOARDS}/fields", key="system_prompt"))["values"]
    assert sorted(v["count"] for v in values) == [7, 7, 7]


def test_scopes_and_projects_are_kept_apart(server: Server, project: Project) -> None:
    board = ok(call(project, "POST", BOARDS, {"template": "openai-monitor"}), 201)
    other = Project(server.new_key(), server)
    for path in ("", "/data", "/versions", "/shares"):
        assert_error_shape(call(other, "GET", f"{BOARDS}/{board['id']}{path}"), 404)
    assert_error_shape(call(other, "PUT", f"{BOARDS}/{board['id']}", {"name": "x"}), 404)
    assert_error_shape(call(other, "DELETE", f"{BOARDS}/{board['id']}"), 404)
    reader = Project(server.new_key(scopes=("read",)), server)
    assert_error_shape(call(reader, "POST", BOARDS, {"name": "x"}), 403)
    ingest = Project(server.new_key(scopes=("ingest",)), server)
    assert_error_shape(call(ingest, "GET", BOARDS), 403)
    assert_error_shape(httpx2.get(server.url + BOARDS), 401)


def _bad_boards() -> st.SearchStrategy[Any]:
    text = st.text(max_size=30) | st.sampled_from(["<script>x</script>", "attributes.", "from"])
    scalar = st.none() | st.booleans() | st.integers() | st.floats() | text
    anything = st.recursive(
        scalar,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
        max_leaves=12,
    )
    panel = st.fixed_dictionaries(
        {},
        optional={
            "id": anything,
            "measures": st.lists(st.sampled_from(["requests", "cost", "nope"]) | anything),
            "group_by": st.sampled_from(["model", "attributes.", "attributes.k", "day"]) | anything,
            "view": st.sampled_from(["line", "scatter", "number", "pie"]) | anything,
            "filters": st.dictionaries(text, text | anything, max_size=3),
            "time_range": st.fixed_dictionaries(
                {}, optional={"last": text, "from": text, "to": text}
            )
            | anything,
            "width": anything,
            "bucket": st.sampled_from(["auto", "week", "minute"]) | anything,
        },
    )
    spec = st.fixed_dictionaries(
        {},
        optional={
            "panels": st.lists(panel, max_size=3) | anything,
            "filters": st.dictionaries(text, text | anything, max_size=3),
            "time_range": anything,
            "bucket": anything,
        },
    )
    return anything | st.fixed_dictionaries(
        {"name": text | anything}, optional={"spec": spec, "is_template": anything}
    )


@pytest.fixture(scope="module")
def hostile_project(server: Server) -> Project:
    return Project(server.new_key(), server)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_bad_boards())
def test_hostile_boards_answer_4xx_never_500(hostile_project: Project, body: Any) -> None:
    for method, path in (("POST", BOARDS), ("POST", f"{BOARDS}/preview")):
        response = call(hostile_project, method, path, body)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert_error_shape(response, response.status_code)


def test_a_published_board_shows_that_board_only_until_revoked_or_expired(
    server: Server, project: Project
) -> None:
    seed_variants(project)
    other = Project(server.new_key(), server)
    seed_variants(other)
    mine = ok(call(project, "POST", BOARDS, {"template": "prompt-experiments"}), 201)
    theirs = ok(call(other, "POST", BOARDS, {"template": "openai-monitor"}), 201)
    link = ok(call(project, "POST", f"{BOARDS}/{mine['id']}/shares", {}), 201)
    url = server.url + link["url"]
    data = ok(httpx2.get(url + "/data"))
    assert [p["id"] for p in data["panels"]] == [p["id"] for p in mine["spec"]["panels"]]
    assert sum(g["count"] for g in data["panels"][0]["stats"]["groups"]) == 21
    # No edit of the request reaches other data: parameters are refused, other paths 404.
    for params in ({"project": "x"}, {"board_id": theirs["id"]}, {"model": "o3"}):
        assert_error_shape(httpx2.get(url + "/data", params=params), 400)
    for path in (link["url"] + "x", link["url"][:-1], f"/b/{theirs['id']}", "/b/"):
        assert httpx2.get(server.url + path + "/data").status_code == 404, path
    assert httpx2.get(url, headers={"accept": "text/html"}).status_code == 200
    # Neither the key nor a session: the board API stays shut to a link's holder.
    assert_error_shape(httpx2.get(server.url + f"{BOARDS}/{mine['id']}/data"), 401)
    listed = ok(call(project, "GET", f"{BOARDS}/{mine['id']}/shares"))["shares"]
    assert [s["id"] for s in listed] == [link["id"]] and listed[0]["last_used_at"]
    assert "token" not in listed[0] and link["token"] not in json.dumps(listed)
    # Another project cannot revoke it; its own can, and then it is gone.
    assert_error_shape(call(other, "DELETE", f"{BOARDS}/{mine['id']}/shares/{link['id']}"), 404)
    ok(call(project, "DELETE", f"{BOARDS}/{mine['id']}/shares/{link['id']}"))
    assert_error_shape(httpx2.get(url + "/data"), 404)
    assert httpx2.get(url).status_code == 404
    short = ok(
        call(project, "POST", f"{BOARDS}/{mine['id']}/shares", {"expires_in_days": 1e-5}), 201
    )
    assert httpx2.get(server.url + short["url"] + "/data").status_code in (200, 404)
    time.sleep(1.5)  # 1e-5 days is 0.86 s
    assert httpx2.get(server.url + short["url"] + "/data").status_code == 404
    for bad in ({"expires_in_days": 0}, {"expires_in_days": "1"}, {"allow_bodies": 1}, []):
        assert_error_shape(call(project, "POST", f"{BOARDS}/{mine['id']}/shares", bad), 400)


def test_a_board_with_its_most_live_links_refuses_another_with_a_409(project: Project) -> None:
    board = ok(call(project, "POST", BOARDS, {"template": "openai-monitor"}), 201)
    shares = f"{BOARDS}/{board['id']}/shares"
    links = [ok(call(project, "POST", shares, {}), 201) for _ in range(LIVE_LINKS)]
    refused = assert_error_shape(call(project, "POST", shares, {}), 409)
    assert "revoke one first" in refused["error"]
    ok(call(project, "DELETE", f"{shares}/{links[0]['id']}"))
    ok(call(project, "POST", shares, {}), 201)
    # Its links go with it (the settings page of this test server lists every link).
    ok(call(project, "DELETE", f"{BOARDS}/{board['id']}"))


def test_the_dashboard_session_reads_and_writes_with_its_csrf_token(server: Server) -> None:
    name = f"session-{uuid.uuid4().hex[:6]}"
    project = Project(server.new_key(name), server)
    board = ok(call(project, "POST", BOARDS, {"template": "openai-monitor"}), 201)
    with login(server) as browser:
        assert_error_shape(browser.get(BOARDS, params={"project": "no-such-project"}), 404)
        csrf = csrf_of(browser.get("/settings").text)
        path, here = f"{BOARDS}/{board['id']}", {"project": name}
        assert browser.get(path, params=here).json()["name"] == "OpenAI monitor"
        body = json.dumps({"name": "Renamed", "spec": board["spec"]})
        assert_error_shape(browser.put(path, params=here, content=body), 403)
        forged = browser.put(path, params=here, content=body, headers={"x-csrf-token": "x"})
        assert_error_shape(forged, 403)
        saved = browser.put(path, params=here, content=body, headers={"x-csrf-token": csrf})
        assert saved.status_code == 200 and saved.json()["version"] == 2, saved.text


def test_an_environment_only_key_sees_its_environment_in_every_panel(server: Server) -> None:
    name = f"envs-{uuid.uuid4().hex[:6]}"
    now = datetime.now(timezone.utc).isoformat()
    for env, count in (("prod", 3), ("dev", 5)):
        sender = Project(server.new_key(name, env), server)
        ok(post_events(sender, [event(started_at=now) for _ in range(count)]))
    dev = Project(server.new_key(name, "dev"), server)
    ok(post_events(dev, [event(started_at=now, attributes={"dev-secret-flag": "on"})]))
    admin = Project(server.new_key(name, "prod"), server)
    board = ok(call(admin, "POST", BOARDS, {"template": "openai-monitor"}), 201)
    prod_only = Project(server.new_key(name, "prod", scopes=("read",), env_only=True), server)
    everything = ok(call(admin, "GET", f"{BOARDS}/{board['id']}/data"))["panels"][0]
    confined = ok(call(prod_only, "GET", f"{BOARDS}/{board['id']}/data"))["panels"][0]
    assert everything["stats"]["groups"][0]["count"] == 9
    assert confined["stats"]["groups"][0]["count"] == 3
    fields = ok(call(prod_only, "GET", f"{BOARDS}/fields"))
    assert [e["value"] for e in fields["environment"]] == ["prod"]
    # The project's attribute names span its environments: not listed to this key (a key's
    # values of a name it knows are its environment's).
    assert "dev-secret-flag" not in json.dumps(fields) and fields["attributes"] == []
    assert ok(call(prod_only, "GET", f"{BOARDS}/fields", key="dev-secret-flag"))["values"] == []
    assert {a["key"] for a in ok(call(admin, "GET", f"{BOARDS}/fields"))["attributes"]} == {
        "dev-secret-flag"
    }


def test_a_key_of_one_environment_cannot_change_what_a_link_shows(server: Server) -> None:
    """A link shows its board to anyone, in every environment: a key that reads only its own
    cannot rewrite (or restore) a board that has one, else it would publish the others'
    calls through it. Boards without a link stay its to change."""
    name = f"envlink-{uuid.uuid4().hex[:6]}"
    now = datetime.now(timezone.utc).isoformat()
    for env in ("prod", "dev"):
        ok(post_events(Project(server.new_key(name, env), server), [event(started_at=now)]))
    admin = Project(server.new_key(name, "dev", scopes=("read", "admin")), server)
    keeper = Project(server.new_key(name, "dev", scopes=("read", "admin"), env_only=True), server)
    spec = {"filters": {"environment": "dev"}, "panels": [{"id": "p", "measures": ["requests"]}]}
    published = ok(call(admin, "POST", BOARDS, {"name": "dev board", "spec": spec}), 201)
    link = ok(call(admin, "POST", f"{BOARDS}/{published['id']}/shares", {}), 201)
    prod = {"name": "dev board", "spec": {**spec, "filters": {"environment": "prod"}}}
    assert_error_shape(call(keeper, "PUT", f"{BOARDS}/{published['id']}", prod), 403)
    ok(call(admin, "PUT", f"{BOARDS}/{published['id']}", {"name": "renamed", "spec": spec}))
    restored = call(keeper, "POST", f"{BOARDS}/{published['id']}/restore", {"version": 1})
    assert_error_shape(restored, 403)
    shown = ok(httpx2.get(server.url + link["url"] + "/data"))
    assert shown["panels"][0]["query"]["environment"] == "dev"
    own = ok(call(keeper, "POST", BOARDS, {"name": "mine", "spec": spec}), 201)
    ok(call(keeper, "PUT", f"{BOARDS}/{own['id']}", prod))


def test_a_link_shows_its_board_not_who_made_it(server: Server) -> None:
    project = Project(server.new_key(), server)
    spec = {"panels": [{"id": "shown-panel", "measures": ["requests"]}]}
    board = ok(call(project, "POST", BOARDS, {"name": "Linked", "spec": spec}), 201)
    link = ok(call(project, "POST", f"{BOARDS}/{board['id']}/shares", {}), 201)
    page = httpx2.get(project.server.url + link["url"], headers={"accept": "text/html"})
    assert page.status_code == 200 and board["spec"]["panels"][0]["id"] in page.text
    assert board["owner"] not in page.text and "updated_at" not in page.text
    answer = ok(
        httpx2.get(project.server.url + link["url"], headers={"accept": "application/json"})
    )
    assert set(answer["board"]) == {"id", "name", "spec"}


def test_a_range_to_the_year_10000_and_odd_group_bys(server: Server) -> None:
    """A range that ends past what a date holds (9999-12-31 at -14:00 is the year 10000 in
    UTC) still opens a link's events; a group-by of one attribute with a comma in it is
    refused, as it would be read as several, past every check."""
    project = Project(server.new_key(f"far-{uuid.uuid4().hex[:6]}"), server)
    far = {"from": "2020-01-01T00:00:00Z", "to": "9999-12-31T23:59:59-14:00"}
    panel = {"id": "p", "measures": ["requests"], "view": "table", "group_by": "model"}
    spec = {"time_range": far, "panels": [panel]}
    board = ok(call(project, "POST", BOARDS, {"name": "far", "spec": spec}), 201)
    link = ok(call(project, "POST", f"{BOARDS}/{board['id']}/shares", {"allow_bodies": True}), 201)
    events = httpx2.get(project.server.url + link["url"] + "/events", params={"panel": "p"})
    assert events.status_code == 200, events.text
    for group_by in ("attributes.a,user", "attributes.a,attributes.a", "attributes.,chat_id"):
        odd = {"name": "odd", "spec": {"panels": [{**panel, "group_by": group_by}]}}
        assert_error_shape(call(project, "POST", BOARDS, odd), 400)
    deep = "[" * 100_000
    for path in (BOARDS, f"{BOARDS}/validate", f"{BOARDS}/preview"):
        answer = httpx2.post(
            project.server.url + path,
            content=deep,
            headers={"authorization": f"Bearer {project.key}"},
        )
        assert_error_shape(answer, 400)


def test_a_board_marked_as_a_template_is_offered_to_other_projects(server: Server) -> None:
    owner, other = Project(server.new_key(), server), Project(server.new_key(), server)
    spec = {"panels": [{"id": "p", "title": "Only mine", "measures": ["cost"], "view": "number"}]}
    board = ok(call(owner, "POST", BOARDS, {"name": "Shared shape", "spec": spec}), 201)
    template = f"board:{board['id']}"
    assert template not in {t["id"] for t in ok(call(other, "GET", BOARDS))["templates"]}
    marked = {"name": board["name"], "spec": board["spec"], "is_template": True}
    ok(call(owner, "PUT", f"{BOARDS}/{board['id']}", marked))
    offered = {t["id"]: t for t in ok(call(other, "GET", BOARDS))["templates"]}
    assert offered[template] == {"id": template, "name": "Shared shape", "builtin": False}
    copy = ok(call(other, "POST", BOARDS, {"template": template}), 201)
    assert (copy["name"], copy["spec"]["panels"][0]["title"]) == ("Shared shape", "Only mine")
    assert not copy["is_template"] and copy["id"] != board["id"]
    assert_error_shape(call(other, "GET", f"{BOARDS}/{board['id']}"), 404)  # still theirs


HOSTILE_IDS = ["x" * 5000, "../../etc", "%00", "é", "<script>", "' OR 1=1 --", "1e9", "-1", " "]


def test_hostile_paths_and_bodies_answer_4xx(server: Server, project: Project) -> None:
    board = ok(call(project, "POST", BOARDS, {"template": "openai-monitor"}), 201)
    one = f"{BOARDS}/{board['id']}"
    tried = 0
    cases: list[tuple[str, str, Any]] = []
    for bad in HOSTILE_IDS:
        quoted = quote(bad, safe="")
        cases += [
            ("GET", f"{BOARDS}/{quoted}", None),
            ("PUT", f"{BOARDS}/{quoted}", {"name": "x"}),
            ("DELETE", f"{BOARDS}/{quoted}", None),
            ("GET", f"{one}/versions/{quoted}", None),
            ("POST", f"{one}/restore", {"version": bad}),
            ("DELETE", f"{one}/shares/{quoted}", None),
            ("GET", f"/b/{quoted}", None),
            ("GET", f"/b/{quoted}/data", None),
            ("GET", f"{BOARDS}/fields?key={quoted}", None),
        ]
    for body in ("{", "[]", '"x"', "null", "1" * 2_000_000):
        for method, path in (("POST", BOARDS), ("PUT", one), ("POST", f"{one}/shares")):
            cases.append((method, path, body))
    for method, path, body in cases:
        content = body if isinstance(body, str) or body is None else json.dumps(body)
        response = httpx2.request(
            method,
            server.url + path,
            headers={"authorization": f"Bearer {project.key}"},
            content=content,
        )
        tried += 1
        # Any key is a fine question for the pickers (it has no values); the rest is refused.
        lowest = 200 if "/fields?" in path else 400
        assert lowest <= response.status_code < 500, (method, path[:80], response.text[:200])
    assert tried == len(HOSTILE_IDS) * 9 + 15
    assert ok(call(project, "GET", one))["version"] == 1  # and nothing changed


def test_the_stats_answer_a_latency_histogram_from_aggregates_and_from_events(
    project: Project,
) -> None:
    now = datetime.now(timezone.utc).isoformat()
    latencies = [5.0, 10.0, 11.0, 30.0, 400.0, 40_000.0, None]
    ok(post_events(project, [event(started_at=now, latency_ms=ms) for ms in latencies]))
    wanted = {"le_10": 2, "le_25": 1, "le_50": 1, "le_500": 1, "over_30000": 1}
    for extra, source in (({}, "aggregates"), ({"has_feedback": "false"}, "events")):
        stats = ok(project.server.get("/api/v1/stats", project.key, **extra))
        assert stats["source"] == source
        bars = stats["groups"][0]["latency_histogram_ms"]
        assert {k: n for k, n in bars.items() if n} == wanted, source
        assert next(iter(bars)) == "le_10" and len(bars) == 12
    board = {
        "name": "h",
        "spec": {"panels": [{"measures": ["requests"], "view": "histogram", "group_by": "model"}]},
    }
    data = ok(call(project, "POST", f"{BOARDS}/preview", board))["panels"][0]
    assert "group_by" not in data["query"]  # one histogram of the panel's events
    assert data["stats"]["groups"][0]["latency_histogram_ms"] == bars


def _preview(project: Project, *panels: dict[str, Any], **spec: Any) -> list[dict[str, Any]]:
    board = {"name": "p", "spec": {**spec, "panels": list(panels)}}
    return ok(call(project, "POST", f"{BOARDS}/preview", board))["panels"]  # type: ignore[no-any-return]


def test_a_total_counts_its_range_not_the_whole_buckets_of_a_chart(project: Project) -> None:
    now = datetime.now(timezone.utc)
    ages = [0.5, 3, 23, 25, 30, 48, 6.5 * 24, 7 * 24 + 1, 7 * 24 + 10, 9 * 24]  # hours
    ok(
        post_events(
            project, [event(started_at=(now - timedelta(hours=h)).isoformat()) for h in ages]
        )
    )
    requests = {"measures": ["requests"]}
    week, day, hour = (
        _preview(project, {**requests, "view": "number"}, time_range={"last": last}, bucket=b)[0]
        for last, b in (("7d", "auto"), ("24h", "week"), ("1h", "day"))
    )
    assert [p["stats"]["groups"][0]["count"] for p in (week, day, hour)] == [7, 3, 1]
    # A chart keeps whole buckets: its first point is not a sliver of a day.
    (line,) = _preview(project, {**requests, "view": "line"}, time_range={"last": "7d"})
    assert sum(g["count"] for g in line["stats"]["groups"]) >= 7


def test_long_attribute_values_are_counted_by_panels_and_pickers(project: Project) -> None:
    long = "You are a careful assistant. " * 10  # 290 characters: a real system prompt
    now = datetime.now(timezone.utc).isoformat()
    events = [
        event(started_at=now, attributes={"system_prompt": p}) for p in ["brief"] * 3 + [long] * 3
    ]
    ok(post_events(project, events))
    (table,) = _preview(
        project, {"measures": ["requests"], "view": "table", "group_by": "attributes.system_prompt"}
    )
    assert sorted(g["count"] for g in table["stats"]["groups"]) == [3, 3]
    (number,) = _preview(
        project,
        {"measures": ["requests"], "view": "number", "filters": {"attributes.system_prompt": long}},
    )
    assert number["stats"]["groups"][0]["count"] == 3
    values = ok(call(project, "GET", f"{BOARDS}/fields", key="system_prompt"))["values"]
    assert {v["value"]: v["count"] for v in values} == {"brief": 3, long: 3}


def test_a_panel_shows_its_hundred_largest_groups_and_says_how_many_it_left_out(
    project: Project,
) -> None:
    now = datetime.now(timezone.utc).isoformat()
    events = [event(started_at=now, prompt_template_name=f"t{i:03d}") for i in range(130)]
    events += [event(started_at=now, prompt_template_name="t129") for _ in range(4)]
    ok(post_events(project, events))
    panel = {"measures": ["requests"], "group_by": "prompt_template_name"}
    table, line = _preview(project, {**panel, "view": "table"}, {**panel, "view": "line"})
    for shown in (table, line):
        names = {g["key"]["prompt_template_name"] for g in shown["stats"]["groups"]}
        assert len(names) == 100 and "t129" in names, len(names)
        assert shown["stats"]["groups_left_out"] == 30


def test_buckets_coarsen_past_two_thousand_and_a_range_ends_after_it_starts(
    project: Project,
) -> None:
    (panel,) = _preview(
        project,
        {"measures": ["requests"], "view": "line", "bucket": "minute"},
        time_range={"last": "90d"},
    )
    assert panel["query"]["group_by"] == "day"  # 129,600 minutes, 2,160 hours: days
    backwards = {"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}
    answer = call(
        project, "POST", f"{BOARDS}/preview", {"name": "b", "spec": {"time_range": backwards}}
    )
    assert answer.status_code == 400 and "from is not before to" in answer.text


def test_a_key_of_one_environment_is_refused_a_panel_of_another(server: Server) -> None:
    name = f"envs-{uuid.uuid4().hex[:6]}"
    now = datetime.now(timezone.utc).isoformat()
    ok(
        post_events(
            Project(server.new_key(name, "prod"), server), [event(started_at=now) for _ in range(4)]
        )
    )
    dev = Project(server.new_key(name, "dev", scopes=("read",), env_only=True), server)
    board = {
        "name": "prod",
        "spec": {
            "filters": {"environment": "prod"},
            "panels": [{"measures": ["requests"], "view": "number"}],
        },
    }
    answer = call(dev, "POST", f"{BOARDS}/preview", board)
    assert answer.status_code == 403 and "'dev'" in answer.text, answer.text


def test_a_picker_lists_the_500_most_frequent_values_and_how_many_others(
    project: Project,
) -> None:
    now = datetime.now(timezone.utc).isoformat()
    events = [event(started_at=now, model=f"m{i}", attributes={"k": f"v{i}"}) for i in range(502)]
    events += [event(started_at=now, model="m501", attributes={"k": "v501"}) for _ in range(2)]
    ok(post_events(project, events))
    fields = ok(call(project, "GET", f"{BOARDS}/fields"))
    assert len(fields["model"]) == 500 and fields["model_left_out"] == 2
    assert fields["model"][0] == {"value": "m501", "count": 3}
    values = ok(call(project, "GET", f"{BOARDS}/fields", key="k"))
    assert len(values["values"]) == 500 and values["left_out"] == 2
