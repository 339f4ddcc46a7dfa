"""Deleting events against a real ``llmtap serve``: by id, by filter and by chat, through the API,
the CLI and the dashboard. The oracle is a second server that was only ever sent the events
that remain: after a delete, stats, templates, feedback and the events list must answer what
it answers."""

from __future__ import annotations

import math
import os
import random
import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import pytest

from llmtap.server.auth import create_key
from llmtap.store import open_store

from .conftest import (
    LLMTAP,
    Project,
    Server,
    error_message,
    free_port,
    start_server,
    stop_server,
    wait_for,
)
from .test_cli import llmtap_cli
from .test_dashboard_http import csrf_of, login
from .test_server import T0, assert_error_shape, event, post_events

USERS = [f"u{i}" for i in range(5)]
TEMPLATES = {
    "greet": ["Say hello to {name}", "Say hi to {name}", "Greet {name} warmly"],
    "sum": ["Summarise: {text}"],
}


def traffic(n: int, seed: int) -> list[dict[str, Any]]:
    """Events that differ in everything stats group by: model (priced or not), status, time
    (three days, many hours and minutes), latency, TTFT, tokens, attributes, chat, template
    and revision, and words to search."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name = rng.choice(list(TEMPLATES))
        template = rng.choice(TEMPLATES[name])
        word = rng.choice(["zebra", "okapi", "lemur"])
        model = rng.choice(["gpt-4o-mini", "gpt-4o", "house-model"])
        started = T0 + timedelta(
            days=rng.randrange(3), hours=rng.randrange(5), minutes=rng.randrange(4), seconds=i
        )
        out.append(
            event(
                model=model,
                provider="openai",
                status=rng.choice(["ok", "ok", "ok", "error"]),
                started_at=started.isoformat(),
                latency_ms=rng.uniform(5, 4000),
                ttft_ms=rng.choice([None, rng.uniform(1, 300)]),
                usage={"input_tokens": rng.randrange(1, 900), "output_tokens": rng.randrange(60)},
                request={"messages": [{"role": "user", "content": f"tell me about the {word}"}]},
                output_text=f"the {word} answer {i}",
                attributes={"user": rng.choice(USERS), "tier": rng.choice(["free", "pro"])},
                chat_id=f"chat-{rng.randrange(6)}",
                prompt_template_name=name,
                template_text=template,
                template_params={"name": "x", "text": "y"},
                feedback_key=f"fk-{uuid.uuid4().hex}",
            )
        )
    return out


def ratings_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Feedback for every third event, some rated low."""
    return [
        {"feedback_key": e["feedback_key"], "rating": (i % 10) / 10, "better_response": f"b{i}"}
        for i, e in enumerate(events)
        if i % 3 == 0
    ]


def send(project: Project, events: list[dict[str, Any]], feedback: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 500):
        answer = post_events(project, events[start : start + 500])
        assert answer.status_code == 200 and answer.json()["ok"], answer.text
    for item in feedback:
        sent = project.server.post("/api/v1/feedback", project.key, json=item)
        assert sent.status_code == 200, sent.text


def delete(project: Project, path: str = "/api/v1/events", **params: Any) -> httpx2.Response:
    return httpx2.delete(
        project.server.url + path,
        params=params,
        headers={"authorization": f"Bearer {project.key}"},
        timeout=60,
    )


def deleted(project: Project, **params: Any) -> int:
    response = delete(project, **params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    return int(body["deleted"])


def same(a: Any, b: Any, where: str = "") -> None:
    """Equal, floats within rounding (a sum that had values taken out may differ from one
    that never had them in the last bits)."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), (where, a, b)
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (where, a, b)
    elif isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), (where, sorted(a), sorted(b))
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), (where, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second server: it is sent only what should remain."""
    srv = start_server(tmp_path_factory.mktemp("oracle"))
    yield srv
    stop_server(srv)


def project_name(project: Project) -> str:
    return str(project.events(limit=1)[0]["project"])


STATS = [
    {"group_by": "model"},
    {"group_by": "attributes.user"},
    {"group_by": "hour,status"},
    {"group_by": "day,model"},
    {"group_by": "minute,prompt_template_name"},
    {"group_by": "prompt_template_name,template_revision"},
    {"group_by": "environment"},
    {},
    # An unaligned range: minutes, hours and days of the aggregates, and seconds of the events.
    {
        "group_by": "model",
        "from": (T0 + timedelta(hours=1, seconds=17)).isoformat(),
        "to": (T0 + timedelta(days=2, hours=2, minutes=1, seconds=5)).isoformat(),
    },
    {"group_by": "day", "attributes.tier": "pro"},
    {"group_by": "model", "q": "okapi"},
]


def assert_holds_the_same(server: Server, mine: Project, theirs: Project) -> None:
    for params in STATS:
        got = mine.server.get("/api/v1/stats", mine.key, **params)
        want = theirs.server.get("/api/v1/stats", theirs.key, **params)
        assert got.status_code == want.status_code == 200, got.text
        same(got.json(), want.json(), f"stats {params}")
    templates = [
        p.server.get("/api/v1/templates", p.key).json()["templates"] for p in (mine, theirs)
    ]
    same(templates[0], templates[1], "templates")
    listed = [
        [{k: v for k, v in e.items() if k != "project"} for e in p.events(limit=1000)]
        for p in (mine, theirs)
    ]
    same(listed[0], listed[1], "events")
    for p in (mine, theirs):
        assert p.server.get("/api/v1/prices", p.key).status_code == 200
    unpriced = [
        p.server.get("/api/v1/prices", p.key).json()["unpriced_models"] for p in (mine, theirs)
    ]
    same(unpriced[0], unpriced[1], "unpriced")
    pages = []
    for p in (mine, theirs):
        with login(p.server) as browser:
            page = browser.get("/feedback", params={"project": project_name(p), "format": "json"})
            assert page.status_code == 200, page.text
        pages.append(
            sorted(
                (f["feedback_key"], f["rating"], f["better_response"], (f["event"] or {}).get("id"))
                for f in page.json()["feedback"]
            )
        )
    assert pages[0] == pages[1]


def test_delete_by_id_filter_and_chat_leaves_what_a_fresh_server_holds(
    server: Server, oracle: Server
) -> None:
    mine = Project(server.new_key(), server)
    events = traffic(400, seed=1)
    # Two events share a feedback key: deleting one keeps the rating, which is the other's too.
    shared = events[4]
    shared["feedback_key"] = events[3]["feedback_key"]  # rated 0.3, by ratings_of
    shared.update(status="ok", chat_id="chat-0", model="gpt-4o-mini", started_at=T0.isoformat())
    shared["attributes"]["user"] = "u0"
    feedback = ratings_of(events)
    send(mine, events, feedback)
    gone: set[str] = set()

    def expect(selected: list[dict[str, Any]]) -> int:
        new = {e["id"] for e in selected} - gone
        gone.update(new)
        return len(new)

    # By id, then the same id again.
    one = events[3]
    response = delete(mine, f"/api/v1/events/{one['id']}")
    assert response.status_code == 200 and response.json() == {"ok": True, "deleted": 1}
    expect([one])
    assert_error_shape(delete(mine, f"/api/v1/events/{one['id']}"), 404)
    # By an attribute, by chat, by words and status, by rating, by a time range.
    assert deleted(mine, **{"attributes.user": "u1"}) == expect(
        [e for e in events if e["attributes"]["user"] == "u1"]
    )
    assert deleted(mine, chat_id="chat-2") == expect(
        [e for e in events if e["chat_id"] == "chat-2"]
    )
    assert deleted(mine, q="zebra", status="error") == expect(
        [e for e in events if "zebra" in e["output_text"] and e["status"] == "error"]
    )
    low = {f["feedback_key"] for f in feedback if f["rating"] <= 0.2}
    assert deleted(mine, rating_max="0.2") == expect(
        [e for e in events if e["feedback_key"] in low and e["id"] not in gone]
    )
    start, end = T0 + timedelta(days=1, hours=2), T0 + timedelta(days=1, hours=3, minutes=2)
    assert deleted(mine, **{"from": start.isoformat(), "to": end.isoformat()}) == expect(
        [e for e in events if start.isoformat() <= e["started_at"] < end.isoformat()]
    )
    assert deleted(mine, model="gpt-4o", prompt_template_name="greet") == expect(
        [e for e in events if e["model"] == "gpt-4o" and e["prompt_template_name"] == "greet"]
    )
    remaining = [e for e in events if e["id"] not in gone]
    assert 50 < len(remaining) < 300, len(remaining)
    keys = {e["feedback_key"] for e in remaining}
    theirs = Project(oracle.new_key(), oracle)
    send(theirs, remaining, [f for f in feedback if f["feedback_key"] in keys])
    assert_holds_the_same(server, mine, theirs)
    # The event that shared its feedback key kept the rating.
    kept = [mine.event(shared["id"])["feedback"], theirs.event(shared["id"])["feedback"]]
    assert [[f["rating"] for f in k] for k in kept] == [[0.3], [0.3]]


def test_deleting_during_ingest_loses_nothing_else_and_counts_nothing_twice(
    server: Server,
) -> None:
    mine = Project(server.new_key(), server)
    doomed = traffic(2500, seed=2)  # five chunks of the store's delete
    for e in doomed:
        e["attributes"]["kind"] = "doomed"
    send(mine, doomed, [])
    kept = traffic(1000, seed=3)
    for e in kept:
        e["attributes"]["kind"] = "kept"
    failures: list[str] = []

    def ingest() -> None:
        for start in range(0, len(kept), 25):
            answer = post_events(mine, kept[start : start + 25])
            if answer.status_code != 200 or answer.json()["stored"] != 25:
                failures.append(answer.text)

    thread = threading.Thread(target=ingest)
    thread.start()
    count = deleted(mine, **{"attributes.kind": "doomed"})
    thread.join(120)
    assert not failures
    assert count == len(doomed)
    by_kind = mine.server.get("/api/v1/stats", mine.key, group_by="attributes.kind").json()
    assert [(g["key"]["attributes.kind"], g["count"]) for g in by_kind["groups"]] == [
        ("kept", len(kept))
    ]
    total = mine.server.get("/api/v1/stats", mine.key).json()["groups"]
    assert [g["count"] for g in total] == [len(kept)]
    assert {e["id"] for e in mine.events(limit=1000)} == {e["id"] for e in kept}
    assert mine.events(q="zebra", limit=1000) == mine.events(
        q="zebra", limit=1000, **{"attributes.kind": "kept"}
    )


def test_a_deleted_id_sent_again_is_stored_again_and_freed_seqs_carry_nothing_over(
    server: Server,
) -> None:
    mine = Project(server.new_key(), server)
    first = event(
        request={"messages": [{"role": "user", "content": "quagga"}]}, attributes={"a": "1"}
    )
    assert post_events(mine, [first]).json()["stored"] == 1
    assert [e["id"] for e in mine.events(q="quagga")] == [first["id"]]
    # The newest event of the whole store: the next one takes its seq.
    assert deleted(mine, **{"attributes.a": "1"}) == 1
    other = event(request={"messages": [{"role": "user", "content": "walrus"}]})
    assert post_events(mine, [other]).json()["stored"] == 1
    assert mine.events(q="quagga") == [] and mine.events(**{"attributes.a": "1"}) == []
    assert [e["id"] for e in mine.events(q="walrus")] == [other["id"]]
    stats = mine.server.get("/api/v1/stats", mine.key, group_by="attributes.a").json()
    assert stats["groups"] == []  # as on a fresh server: no event has the attribute
    # Forgetting forgets the id too: a copy resent (from a spool, say) is stored as new.
    again = post_events(mine, [first]).json()
    assert (again["stored"], again["duplicates"]) == (1, 0)
    assert [e["id"] for e in mine.events(q="quagga")] == [first["id"]]
    assert sum(g["count"] for g in mine.server.get("/api/v1/stats", mine.key).json()["groups"]) == 2


def test_deletes_need_an_admin_key(server: Server, project: Project) -> None:
    sent = event()
    post_events(project, [sent])
    name = project_name(project)
    for scopes in [("ingest",), ("read",), ("ingest", "read")]:
        weak = Project(server.new_key(name, "dev", scopes=scopes), server)
        for path, params in [
            (f"/api/v1/events/{sent['id']}", {}),
            ("/api/v1/events", {"all": "true"}),
        ]:
            body = assert_error_shape(delete(weak, path, **params), 403)
            assert "'admin' scope" in body["error"]
    assert [e["id"] for e in project.events()] == [sent["id"]]
    # A read key held to its environment, with admin: deletes only there.
    prod = Project(server.new_key(name, "prod", scopes=("admin",), env_only=True), server)
    assert deleted(prod, all="true") == 0
    assert_error_shape(delete(prod, f"/api/v1/events/{sent['id']}"), 404)
    assert_error_shape(delete(prod, environment="dev"), 403)
    assert [e["id"] for e in project.events()] == [sent["id"]]


ALL = {"all": "true"}
HOSTILE: list[dict[str, str]] = [
    {},
    {"all": "false"},
    {"all": "maybe"},
    {"limit": "10"},
    {"sort": "-latency_ms", "model": "m"},
    {"cursor": "x", "model": "m"},
    {"from": "yesterday"},
    {"rating_min": "7"},
    {"has_feedback": "perhaps"},
    {"unknown": "1"},
    {"q": '" OR * NEAR( -- ;DROP TABLE events'},
    {"attributes.": "x"},
    {"attributes.\u0000": "\u0000"},
    {"chat_id": "x" * 100_00},
    {"q": "!!!"},
    {"model": "'; DELETE FROM events; --"},
]


def test_an_empty_filter_is_refused_and_hostile_ones_break_nothing(project: Project) -> None:
    kept = event(model="survivor")
    post_events(project, [kept])
    answers = [delete(project, **params) for params in HOSTILE]
    ids = ["..%2F..%2Fetc", "%00", "x" * 2000, "' OR 1=1 --", "\u202e\u0000", "*"]
    answers += [delete(project, f"/api/v1/events/{quote(i, safe='')}") for i in ids]
    assert all(a.status_code < 500 for a in answers), [a.text for a in answers]
    for response in answers[:4]:
        assert_error_shape(response, 400)
    assert "all=true" in answers[0].json()["error"]
    assert [e["id"] for e in project.events()] == [kept["id"]]
    assert deleted(project, all="true") == 1
    assert project.events() == []


def test_cli_delete_asks_first_and_deletes(server: Server, project: Project) -> None:
    events = [event(chat_id="cli-chat") for _ in range(3)] + [event(model="cli-other")]
    post_events(project, events)
    name = project_name(project)
    env = {"LLMTAP_URL": server.url, "LLMTAP_API_KEY": project.key}
    refused = llmtap_cli("events", "delete", **env)
    assert refused.returncode != 0 and "--all" in refused.stderr

    def answering(reply: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*LLMTAP, "events", "delete", "--chat-id", "cli-chat"],
            input=reply,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **env},
        )

    no = answering("n\n")
    assert no.returncode == 1 and "Delete 3 event(s)" in no.stdout, no.stdout + no.stderr
    assert len(project.events()) == 4
    yes = answering("y\n")
    assert yes.returncode == 0 and "3 event(s) deleted" in yes.stdout, yes.stderr
    by_id = llmtap_cli("events", "delete", "--id", events[3]["id"], "--id", "nope", "--yes", **env)
    assert by_id.returncode == 0 and "1 event(s) deleted" in by_id.stdout, by_id.stderr
    assert "no event 'nope'" in by_id.stderr
    assert project.events() == []
    # Listing still works as before, and a read key may not delete.
    assert llmtap_cli("events", **env).returncode == 0
    reader = server.new_key(name, "dev", scopes=("read",))
    weak = llmtap_cli("events", "delete", "--all", "--yes", **{**env, "LLMTAP_API_KEY": reader})
    assert weak.returncode == 1 and "'admin' scope" in weak.stderr


def test_dashboard_buttons_delete_with_csrf_and_refuse_without(
    server: Server, project: Project
) -> None:
    one, *chat = [event(chat_id="dash-chat", model="m-chat") for _ in range(3)]
    filtered = [event(model="m-filtered") for _ in range(4)]
    post_events(project, [one, *chat, *filtered])
    name = project_name(project)
    with login(server) as browser:
        page = browser.get(f"/events/{one['id']}", params={"project": name})
        assert 'action="/events/delete"' in page.text and "data-confirm" in page.text
        form = {"csrf_token": csrf_of(page.text), "project": name, "id": one["id"]}
        forged = browser.post("/events/delete", data={**form, "csrf_token": "forged"})
        assert forged.status_code == 403 and "CSRF" in error_message(forged)
        without = {k: v for k, v in form.items() if k != "csrf_token"}
        refused = browser.post("/events/delete", data=without)
        assert refused.status_code == 403 and "CSRF" in error_message(refused)
        done = browser.post("/events/delete", data=form)
        assert done.status_code == 303 and "deleted=1" in done.headers["location"]
        assert "Deleted 1 event(s)" in browser.get(done.headers["location"]).text
        chat_page = browser.get("/chats/dash-chat", params={"project": name})
        assert "Delete this conversation" in chat_page.text
        csrf = csrf_of(chat_page.text)
        done = browser.post(
            "/events/delete", data={"csrf_token": csrf, "project": name, "chat_id": "dash-chat"}
        )
        assert done.status_code == 303 and "deleted=2" in done.headers["location"]
        listing = browser.get("/events", params={"project": name, "model": "m-filtered"})
        assert "Delete the matching events" in listing.text
        assert "matching events" not in browser.get("/events", params={"project": name}).text
        # Nothing selected: the dashboard never wipes a project.
        nothing = browser.post("/events/delete", data={"csrf_token": csrf, "project": name})
        assert nothing.status_code == 400 and error_message(nothing)
        done = browser.post(
            "/events/delete", data={"csrf_token": csrf, "project": name, "model": "m-filtered"}
        )
        assert "deleted=4" in done.headers["location"]
    assert project.events() == []
    # Logged out: refused.
    outside = httpx2.post(server.url + "/events/delete", data={"project": name, "all": "true"})
    assert outside.status_code == 401


def test_deletes_with_two_workers_keep_every_other_event(tmp_path: Path) -> None:
    """Worker processes hold committed, not yet derived events in memory: a delete in one that
    frees seqs must not let another count an event twice or count a deleted one."""
    port = free_port()
    db = tmp_path / "w.db"
    store = open_store(str(db))
    key = create_key(store, "workers", "dev", ("ingest", "read", "admin"))
    store.close()
    process = subprocess.Popen(
        [*LLMTAP, "serve", "--db", str(db), "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    srv = Server(f"http://127.0.0.1:{port}", db, process)
    try:
        wait_for(srv.url + "/healthz", timeout=30)
        mine = Project(key, srv)
        kept: list[dict[str, Any]] = []
        rounds = 30
        for round_ in range(rounds):
            batch = traffic(12, seed=100 + round_)
            for e in batch:
                e["attributes"]["round"] = str(round_)
            for e in batch[-4:]:  # the newest: their seqs are taken by the next batch
                e["attributes"]["doomed"] = "yes"
            send(mine, batch, [])
            # One request, so that the worker that stored the batch may well not see it.
            assert deleted(mine, **{"attributes.doomed": "yes"}) == 4
            kept += batch[:-4]
        stats = srv.get("/api/v1/stats", key, group_by="attributes.round").json()
        assert {g["key"]["attributes.round"]: g["count"] for g in stats["groups"]} == {
            str(r): 8 for r in range(rounds)
        }
        assert {e["id"] for e in mine.events(limit=1000)} == {e["id"] for e in kept}
        assert srv.get("/api/v1/stats", key, group_by="attributes.doomed").json()["groups"] == []
    finally:
        process.terminate()
        process.communicate(timeout=30)
