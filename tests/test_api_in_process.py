"""The read API's keys and query parameters, on the real app served in this process.

The same app ``llmtap serve`` runs (routes, middleware, a real SQLite file), only without
uvicorn: served here, the code behind each answer runs in the test's own process, where
``make mutation`` sees which test reaches it (it cannot look inside a server subprocess).
What these pin: who may read what (401 and 403, scopes, ``env_only``) and how each query
parameter is checked (the bounds are inclusive; anything else is a 400 naming it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from llmtap.server import create_app
from llmtap.server.auth import create_key, hash_key
from llmtap.store import SQLiteStore, open_store
from llmtap.wire import make_event


@dataclass
class Api:
    http: TestClient
    store: SQLiteStore
    project: str

    def key(self, environment: str = "dev", scopes: tuple[str, ...] = ("read",), **kw: Any) -> str:
        return create_key(self.store, self.project, environment, scopes, **kw)

    def get(self, path: str, key: str | None, **params: Any) -> Any:
        headers = {"authorization": f"Bearer {key}"} if key is not None else {}
        return self.http.get(path, params=params, headers=headers)

    def send(self, key: str, *started_at: str) -> list[str]:
        """Events started at those times; their ids."""
        ids = [str(uuid.uuid4()) for _ in started_at]
        events = [
            make_event(
                id=i,
                api="chat",
                status="ok",
                started_at=t,
                output_text=f"answer {n}",
                feedback_key=i,
            )
            for n, (i, t) in enumerate(zip(ids, started_at, strict=True))
        ]
        answer = self.http.post(
            "/api/v1/events", json={"events": events}, headers={"authorization": f"Bearer {key}"}
        )
        assert answer.status_code == 200, answer.text
        return ids


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    store = open_store(str(tmp_path / "llmtap.db"))
    assert isinstance(store, SQLiteStore)
    try:
        with TestClient(create_app(store, admin_token="in-process-admin-token")) as http:
            yield Api(http, store, f"p-{uuid.uuid4().hex[:8]}")
    finally:
        store.close()


def error(answer: Any, status: int) -> dict[str, Any]:
    """The error body, checked to have the one error shape and ``status``."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["ok"] is False and body["status"] == status, body
    return body  # type: ignore[no-any-return]


# --- keys -------------------------------------------------------------------------------


def test_the_header_must_carry_a_bearer_key(api: Api) -> None:
    key = api.key()
    for header in ({}, {"authorization": f"Basic {key}"}, {"authorization": "Bearer   "}):
        body = error(api.http.get("/api/v1/events", headers=header), 401)
        assert "missing API key" in body["error"], header
    # The scheme in any case, the key with blanks around it (as some clients send it).
    for header in (f"bearer {key}", f"BEARER  {key} "):
        assert api.http.get("/api/v1/events", headers={"authorization": header}).status_code == 200
    assert error(api.get("/api/v1/events", key + "x"), 401)["error"] == "invalid API key"


def test_a_key_lacking_a_scope_is_told_which_and_what_it_has(api: Api) -> None:
    body = error(api.get("/api/v1/events", api.key(scopes=("ingest",))), 403)
    assert body["errors"] == [{"missing_scope": "read", "scopes": ["ingest"]}]
    assert "may not read this project" in body["error"]
    assert "llmtap keys create --scope read" in body["error"]

    reader = api.key(scopes=("read", "ingest"))
    body = error(
        api.http.delete("/api/v1/events/x", headers={"authorization": f"Bearer {reader}"}), 403
    )
    assert body["errors"] == [{"missing_scope": "admin", "scopes": ["ingest", "read"]}]
    assert "may not change this project" in body["error"]

    body = error(
        api.http.post(
            "/api/v1/events", json={"events": []}, headers={"authorization": f"Bearer {api.key()}"}
        ),
        403,
    )
    assert body["errors"] == [{"missing_scope": "ingest", "scopes": ["read"]}]
    assert "may not send events" in body["error"]


def test_admin_implies_read_and_nothing_else(api: Api) -> None:
    admin = api.key(scopes=("admin",))
    assert api.get("/api/v1/events", admin).status_code == 200
    error(
        api.http.post(
            "/api/v1/events", json={"events": []}, headers={"authorization": f"Bearer {admin}"}
        ),
        403,
    )


def test_a_key_reads_its_own_project_only(api: Api) -> None:
    mine = api.send(api.key(scopes=("ingest",)), "2026-05-01T12:00:00+00:00")
    other = Api(api.http, api.store, "someone-else")
    theirs = other.send(other.key(scopes=("ingest",)), "2026-05-01T12:00:00+00:00")
    events = api.get("/api/v1/events", api.key()).json()["events"]
    assert [e["id"] for e in events] == mine
    assert events[0]["project"] == api.project
    body = error(api.get(f"/api/v1/events/{theirs[0]}", api.key()), 404)
    assert body["error"] == f"no event {theirs[0]!r} in project {api.project!r}"
    one = api.get(f"/api/v1/events/{mine[0]}", api.key()).json()
    assert (one["id"], one["project"], one["output_text"]) == (mine[0], api.project, "answer 0")


def test_an_env_only_key_reads_its_environment_alone(api: Api) -> None:
    (dev,) = api.send(api.key("dev", ("ingest",)), "2026-05-01T12:00:00+00:00")
    (prod,) = api.send(api.key("prod", ("ingest",)), "2026-05-01T12:00:00+00:00")
    confined = api.key("prod", env_only=True)
    assert [e["id"] for e in api.get("/api/v1/events", confined).json()["events"]] == [prod]
    assert [
        e["id"] for e in api.get("/api/v1/events", confined, environment="prod").json()["events"]
    ] == [prod]
    body = error(api.get("/api/v1/events", confined, environment="dev"), 403)
    assert body["error"] == "this key reads only the environment 'prod'"
    error(api.get(f"/api/v1/events/{dev}", confined), 404)
    assert api.get(f"/api/v1/events/{prod}", confined).status_code == 200
    # A key without env_only reads both, and filters by environment when asked.
    both = api.key("prod")
    assert {e["id"] for e in api.get("/api/v1/events", both).json()["events"]} == {dev, prod}
    assert [
        e["id"] for e in api.get("/api/v1/events", both, environment="dev").json()["events"]
    ] == [dev]
    assert api.get(f"/api/v1/events/{dev}", both).status_code == 200


def test_a_key_revoked_or_rescoped_elsewhere_is_refused_within_a_second(api: Api) -> None:
    """Revoked by another process (here: straight in the store), a key a running server has
    cached is refused once that server has looked for changes (every second; it had kept
    working for its cache's 30 s); a change of scopes alike."""
    key, rescoped = api.key(), api.key()
    for each in (key, rescoped):
        assert api.get("/api/v1/events", each).status_code == 200
    info = api.store.key_by_hash(hash_key(key))
    assert info is not None
    ids = {k["prefix"]: k["id"] for k in api.store.list_keys(info.project_id)}
    assert api.store.revoke_key(info.project_id, ids[key[:10]])
    assert api.store.set_key_scopes(info.project_id, ids[rescoped[:10]], ["ingest"], False)
    deadline = time.monotonic() + 5
    while api.get("/api/v1/events", key).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert error(api.get("/api/v1/events", key), 401)["error"] == "invalid API key"
    error(api.get("/api/v1/events", rescoped), 403)


# --- query parameters -------------------------------------------------------------------


def test_an_unknown_parameter_is_named_with_those_known(api: Api) -> None:
    body = error(api.get("/api/v1/events", api.key(), bogus="1", limit="5", zz="2"), 400)
    assert body["error"] == "unknown query parameter(s): bogus, zz"
    assert [e["parameter"] for e in body["errors"]] == ["bogus", "zz"]
    known = body["errors"][0]["known"]
    assert {"limit", "cursor", "sort", "from", "to", "q", "rating_min"} <= set(known)
    assert known[-1] == "attributes.KEY" and known[:-1] == sorted(known[:-1])
    assert api.get("/api/v1/events", api.key(), **{"attributes.team": "blue"}).status_code == 200


def test_limit_is_a_whole_number_from_1_to_1000(api: Api) -> None:
    key = api.key()
    api.send(api.key(scopes=("ingest",)), *["2026-05-01T12:00:00+00:00"] * 3)
    assert len(api.get("/api/v1/events", key, limit="1").json()["events"]) == 1
    assert len(api.get("/api/v1/events", key, limit="2").json()["events"]) == 2
    assert len(api.get("/api/v1/events", key, limit="1000").json()["events"]) == 3
    for bad in ("0", "1001", "-1", "1.5", "x", ""):
        body = error(api.get("/api/v1/events", key, limit=bad), 400)
        assert body["error"] == "limit: expected a whole number from 1 to 1000", bad


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone 5h30 ahead of UTC (a server is not always on UTC)."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_from_and_to_take_iso_times_utc_when_no_zone_is_given(api: Api, far_from_utc: None) -> None:
    key = api.key()
    early, late = api.send(
        api.key(scopes=("ingest",)), "2026-05-01T10:00:00+00:00", "2026-05-01T14:00:00+00:00"
    )

    def ids(**params: str) -> set[str]:
        answer = api.get("/api/v1/events", key, **params)
        assert answer.status_code == 200, answer.text
        return {e["id"] for e in answer.json()["events"]}

    assert ids(**{"from": "2026-05-01T12:00:00Z"}) == {late}
    assert ids(to="2026-05-01T12:00:00") == {early}  # no zone: UTC
    assert ids(to="2026-05-01T13:00:00+02:00") == {early}  # 11:00 UTC
    assert ids(**{"from": "2026-05-01T09:00:00-02:00"}) == {late}  # 11:00 UTC
    assert ids(**{"from": "2026-05-01T09:00:00"}, to="2026-05-01T15:00:00Z") == {early, late}
    for name in ("from", "to"):
        body = error(api.get("/api/v1/events", key, **{name: "yesterday"}), 400)
        assert body["error"] == f"{name}: expected an ISO 8601 time, got 'yesterday'"


def test_ratings_are_from_0_to_1_inclusive(api: Api) -> None:
    key = api.key()
    for name in ("rating_min", "rating_max"):
        for good in ("0", "1", "0.5"):
            assert api.get("/api/v1/events", key, **{name: good}).status_code == 200, (name, good)
        for bad in ("-0.1", "1.01", "x", "nan"):
            body = error(api.get("/api/v1/events", key, **{name: bad}), 400)
            assert body["error"] == f"{name}: expected a number from 0 to 1, got {bad!r}"


def test_has_feedback_is_true_or_false(api: Api) -> None:
    key = api.key()
    for good in ("true", "TRUE", "1", "false", "0"):
        assert api.get("/api/v1/events", key, has_feedback=good).status_code == 200, good
    for bad in ("yes", "", "2"):
        body = error(api.get("/api/v1/events", key, has_feedback=bad), 400)
        assert body["error"] == "has_feedback: expected true or false"


def test_text_and_feedback_filters_select(api: Api) -> None:
    key = api.key()
    ingest = api.key(scopes=("ingest",))
    first, second = api.send(ingest, *["2026-05-01T12:00:00+00:00"] * 2)
    answer = api.http.post(
        "/api/v1/feedback",
        json={"feedback_key": first, "rating": 0.9},
        headers={"authorization": f"Bearer {ingest}"},
    )
    assert answer.status_code == 200, answer.text

    def ids(**params: str) -> set[str]:
        return {e["id"] for e in api.get("/api/v1/events", key, **params).json()["events"]}

    assert ids(q="answer 1") == {second}
    assert ids(has_feedback="true") == ids(has_feedback="1") == {first}
    assert ids(has_feedback="FALSE") == ids(has_feedback="0") == {second}
    assert ids(rating_min="0.9") == ids(rating_max="1") == {first}
    assert ids(rating_max="0.5") == set()


def test_sort_and_cursor_are_checked(api: Api) -> None:
    key = api.key()
    body = error(api.get("/api/v1/events", key, sort="random"), 400)
    assert body["error"].startswith("sort: expected one of ")
    body = error(api.get("/api/v1/events", key, cursor="not-a-cursor"), 400)
    assert body["error"] == "not a valid cursor for sort=-started_at: 'not-a-cursor'"


@pytest.mark.parametrize("sort", ["-started_at", "started_at", "latency_ms"])
def test_pages_follow_their_cursor_under_their_sort(api: Api, sort: str) -> None:
    key = api.key()
    sent = set(
        api.send(api.key(scopes=("ingest",)), *[f"2026-05-01T1{i}:00:00Z" for i in range(3)])
    )
    seen: list[str] = []
    params = {"limit": "1", "sort": sort}
    while True:
        page = api.get("/api/v1/events", key, **params).json()
        seen += [e["id"] for e in page["events"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
        assert len(seen) <= 3, seen
    assert sorted(seen) == sorted(sent) and len(seen) == 3
    # A cursor belongs to the sort it was made under.
    first = api.get("/api/v1/events", key, limit="1", sort="latency_ms").json()["next_cursor"]
    body = error(api.get("/api/v1/events", key, cursor=first, sort="started_at"), 400)
    assert body["error"].startswith("not a valid cursor for sort=started_at")
    # And the default order's cursor (the newest first) under another sort.
    newest = api.get("/api/v1/events", key, limit="1").json()["next_cursor"]
    body = error(api.get("/api/v1/events", key, cursor=newest, sort="latency_ms"), 400)
    assert body["error"].startswith("not a valid cursor for sort=latency_ms")


def test_attributes_filter_by_their_key(api: Api) -> None:
    ingest = api.key(scopes=("ingest",))
    events = [
        make_event(
            id=f"e{team}",
            api="chat",
            status="ok",
            started_at="2026-05-01T12:00:00Z",
            attributes={"team": team},
        )
        for team in ("red", "blue")
    ]
    answer = api.http.post(
        "/api/v1/events", json={"events": events}, headers={"authorization": f"Bearer {ingest}"}
    )
    assert answer.status_code == 200, answer.text
    found = api.get("/api/v1/events", api.key(), **{"attributes.team": "blue"}).json()["events"]
    assert [e["id"] for e in found] == ["eblue"]
