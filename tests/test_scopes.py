"""Key scopes against a real ``llmtap serve``: an ingest key (what every monitored app carries,
and so what leaks) sends and reads nothing; read keys may be held to their environment; only
admin keys change the project; keys made before scopes keep what they could do."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import httpx2
import pytest

from llmtap.server.auth import create_key, hash_key
from llmtap.store import open_store
from llmtap.store._migrations import SQLITE_MIGRATIONS, migrate_sqlite

from .conftest import LLMTAP, Project, Server
from .test_dashboard_http import csrf_of, login
from .test_server import assert_error_shape, event, post_events

READS = [
    ("/api/v1/events", {}),
    ("/api/v1/stats", {"group_by": "model"}),
    ("/api/v1/templates", {}),
    ("/api/v1/prices", {}),
]


def test_an_ingest_key_sends_but_reads_nothing(server: Server) -> None:
    key = server.new_key(scopes=("ingest",))
    ingest = Project(key, server)
    sent = event(model="secret-model")
    assert post_events(ingest, [sent]).status_code == 200
    feedback = {"feedback_key": "fk-1", "rating": 1.0}
    assert server.post("/api/v1/feedback", key, json=feedback).status_code == 200
    for path, params in [*READS, (f"/api/v1/events/{sent['id']}", {})]:
        body = assert_error_shape(server.get(path, key, **params), 403)
        assert "'read' scope" in body["error"] and "it has: ingest" in body["error"]
        assert body["errors"] == [{"missing_scope": "read", "scopes": ["ingest"]}]
        assert "secret-model" not in str(body)
    price = {"model": "m", "input_per_mtok": 1, "output_per_mtok": 2}
    body = assert_error_shape(server.post("/api/v1/prices", key, json=price), 403)
    assert "'admin' scope" in body["error"]


def test_a_read_key_reads_but_neither_sends_nor_changes(server: Server, project: Project) -> None:
    post_events(project, [event(model="visible")])
    name = project.events()[0]["project"]
    reader = server.new_key(name, "dev", scopes=("read",))
    assert [e["model"] for e in Project(reader, server).events()] == ["visible"]
    for path, params in READS:
        assert server.get(path, reader, **params).status_code == 200, path
    assert_error_shape(post_events(Project(reader, server), [event()]), 403)
    price = {"model": "m", "input_per_mtok": 1, "output_per_mtok": 2}
    assert_error_shape(server.post("/api/v1/prices", reader, json=price), 403)
    admin = server.new_key(name, "dev", scopes=("admin",))
    assert server.post("/api/v1/prices", admin, json=price).status_code == 200
    assert server.get("/api/v1/events", admin).status_code == 200  # admin implies read


def test_an_env_only_key_sees_its_environment_alone(server: Server) -> None:
    name = f"envs-{hash_key(str(id(server)))[:6]}"
    for env in ("prod", "dev"):
        post_events(Project(server.new_key(name, env), server), [event(model=f"m-{env}")])
    reader = server.new_key(name, "dev", scopes=("read",), env_only=True)
    events = server.get("/api/v1/events", reader).json()["events"]
    assert [e["model"] for e in events] == ["m-dev"]
    stats = server.get("/api/v1/stats", reader, group_by="environment").json()
    assert [g["key"]["environment"] for g in stats["groups"]] == ["dev"]
    assert_error_shape(server.get("/api/v1/events", reader, environment="prod"), 403)
    assert_error_shape(server.get("/api/v1/templates", reader), 403)
    everything = server.new_key(name, "dev", scopes=("read",))
    prod_id = next(
        e["id"] for e in Project(everything, server).events() if e["environment"] == "prod"
    )
    assert server.get(f"/api/v1/events/{prod_id}", everything).status_code == 200
    assert_error_shape(server.get(f"/api/v1/events/{prod_id}", reader), 404)
    # Test sets, runs and board links span the project's environments: refused to such a
    # key, even one that may change the project (a set made from all the feedback would
    # show prod's calls; a link is read with no key at all).
    keeper = server.new_key(name, "dev", scopes=("read", "admin"), env_only=True)
    made = {"name": "leak", "source": "feedback"}
    assert_error_shape(server.post("/api/v1/testsets", keeper, json=made), 403)
    assert_error_shape(server.get("/api/v1/testsets", reader), 403)
    assert_error_shape(server.get("/api/v1/runs", reader), 403)
    assert_error_shape(server.get("/api/v1/runs/abc", reader), 403)
    admin = server.new_key(name, "dev", scopes=("read", "admin"))
    assert server.post("/api/v1/testsets", admin, json=made).status_code == 201
    made_board = server.post("/api/v1/boards", keeper, json={"template": "openai-monitor"})
    assert made_board.status_code == 201, made_board.text
    board_id = made_board.json()["id"]
    link = server.post(f"/api/v1/boards/{board_id}/shares", keeper, json={})
    assert_error_shape(link, 403)
    assert server.post(f"/api/v1/boards/{board_id}/shares", admin, json={}).status_code == 201
    # Prices: the models nobody priced are every environment's, and an override reprices
    # every environment's calls.
    price = {"model": "m-prod", "input_per_mtok": 1, "output_per_mtok": 2}
    assert_error_shape(server.get("/api/v1/prices", reader), 403)
    assert_error_shape(server.post("/api/v1/prices", keeper, json=price), 403)
    removed = httpx2.delete(
        server.url + "/api/v1/prices",
        params={"model": "m-prod"},
        headers={"authorization": f"Bearer {keeper}"},
    )
    assert_error_shape(removed, 403)
    assert server.post("/api/v1/prices", admin, json=price).status_code == 200
    assert server.get("/api/v1/prices", admin).json()["overrides"][0]["model"] == "m-prod"


def test_keys_create_takes_scopes_and_defaults_to_ingest(tmp_path: Path) -> None:
    db = str(tmp_path / "k.db")

    def create(*args: str) -> str:
        out = subprocess.run(
            [*LLMTAP, "keys", "create", "--project", "p", "--db", db, *args],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    plain, both = create(), create("--scope", "read", "--scope", "admin", "--env-only")
    store = open_store(db)
    try:
        first, second = store.key_by_hash(hash_key(plain)), store.key_by_hash(hash_key(both))
    finally:
        store.close()
    assert first and first.scopes == {"ingest"} and not first.env_only
    assert second and second.scopes == {"read", "admin"} and second.env_only
    refused = subprocess.run(
        [*LLMTAP, "keys", "create", "--project", "p", "--db", db, "--scope", "root"],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "root" in refused.stderr
    listed = subprocess.run(
        [*LLMTAP, "keys", "list", "--db", db], capture_output=True, text=True, check=True
    ).stdout
    assert "\tingest\tactive" in listed and "read,admin (own env only)" in listed


def test_keys_made_before_scopes_keep_what_they_could_do(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    before = [name for name, _ in SQLITE_MIGRATIONS].index("m007_key_scopes")
    migrate_sqlite(conn, SQLITE_MIGRATIONS[:before])
    conn.execute("INSERT INTO projects (name, created_at) VALUES ('old', '2026-01-01')")
    conn.execute(
        "INSERT INTO api_keys (project_id, environment, key_hash, prefix, created_at)"
        " VALUES (1, 'prod', ?, 'lt_old', '2026-01-01')",
        (hash_key("lt_old-key"),),
    )
    conn.close()
    store = open_store(str(db))
    try:
        old = store.key_by_hash(hash_key("lt_old-key"))
        new = store.key_by_hash(hash_key(create_key(store, "old", "prod")))
    finally:
        store.close()
    assert old and old.scopes == {"ingest", "read", "admin"}
    assert new and new.scopes == {"ingest"}


def test_the_settings_page_shows_and_changes_scopes(server: Server) -> None:
    name = f"scoped-{hash_key(str(id(login)))[:6]}"
    key = server.new_key(name, "dev", scopes=("ingest",))
    assert_error_shape(server.get("/api/v1/events", key), 403)
    with login(server) as browser:
        page = browser.get("/settings")
        key_id = _key_id(server, key)
        assert f'action="/settings/keys/{key_id}/scopes"' in page.text
        changed = browser.post(
            f"/settings/keys/{key_id}/scopes",
            data={"csrf_token": csrf_of(page.text), "project": name, "scope": ["ingest", "read"]},
        )
        assert changed.status_code == 303
        refused = browser.post(
            f"/settings/keys/{key_id}/scopes",
            data={"csrf_token": csrf_of(page.text), "project": name, "scope": ["sudo"]},
        )
        assert refused.status_code == 400
        made = browser.post(
            "/settings/keys",
            data={"csrf_token": csrf_of(page.text), "project": name, "scope": ["read"]},
        )
    store = open_store(str(server.db))
    try:
        changed_key = store.key_by_hash(hash_key(key))
        made_key = made.text.split("data-copy>")[1].split("<")[0]
        assert (made_info := store.key_by_hash(hash_key(made_key)))
    finally:
        store.close()
    assert changed_key and changed_key.scopes == {"ingest", "read"}
    assert made_info.scopes == {"read"}


def _key_id(server: Server, key: str) -> int:
    store = open_store(str(server.db))
    try:
        info = store.key_by_hash(hash_key(key))
    finally:
        store.close()
    assert info
    return info.key_id


@pytest.mark.parametrize("scope", ["ingest", "read", "admin"])
def test_a_missing_key_is_401_whatever_the_scope(server: Server, scope: str) -> None:
    path, method = {
        "ingest": ("/api/v1/events", "post"),
        "read": ("/api/v1/events", "get"),
        "admin": ("/api/v1/prices", "post"),
    }[scope]
    response = (
        server.post(path, "lt_nope", json={}) if method == "post" else server.get(path, "lt_nope")
    )
    assert_error_shape(response, 401)
