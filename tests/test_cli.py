"""The ``llmtap`` command, run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from .conftest import LLMTAP, Project, Server
from .test_server import event, post_events


def llmtap_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LLMTAP, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )


def test_keys_create_prints_the_key_alone_and_works_while_serving(server: Server) -> None:
    result = llmtap_cli(
        "keys",
        "create",
        "--project",
        f"cli-{uuid.uuid4().hex[:6]}",
        "--env",
        "prod",
        "--db",
        str(server.db),
        "--scope",
        "read",
    )
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert result.stdout == key + "\n" and key.startswith("lt_")
    # The running server knows it at once, and the store holds only its hash.
    response = server.get("/api/v1/events", key)
    assert response.status_code == 200
    assert key.encode() not in Path(server.db).read_bytes()


def test_keys_revoke_stops_a_key_on_the_running_server(server: Server) -> None:
    project = f"cli-{uuid.uuid4().hex[:6]}"
    db = ["--db", str(server.db)]
    key = llmtap_cli("keys", "create", "--project", project, "--scope", "read", *db).stdout.strip()
    assert server.get("/api/v1/events", key).status_code == 200
    refused = llmtap_cli("keys", "revoke", "lt_", *db)
    assert refused.returncode == 2 and "first 6 characters" in refused.stderr
    revoked = llmtap_cli("keys", "revoke", key[:10] + "…", "--project", project, *db)
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked {key[:10]}… of {project} (dev)" in revoked.stderr
    deadline = time.monotonic() + 5  # servers look for revoked keys every second
    while server.get("/api/v1/events", key).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.get("/api/v1/events", key).status_code == 401
    again = llmtap_cli("keys", "revoke", key, *db)
    assert again.returncode == 1 and "no active key starts with" in again.stderr
    listed = llmtap_cli("keys", "list", "--project", project, *db).stdout
    assert f"{key[:10]}…" in listed and "revoked" in listed


def test_keys_create_uses_llmtap_db(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    result = llmtap_cli("keys", "create", "--project", "p", LLMTAP_DB=str(db))
    assert result.returncode == 0, result.stderr
    assert db.exists()


@pytest.mark.parametrize(
    ("option", "name"),
    [("--project", ""), ("--project", "x" * 201), ("--project", " spaced "), ("--env", "a\nb")],
)
def test_keys_create_refuses_a_name_no_page_could_show(
    tmp_path: Path, option: str, name: str
) -> None:
    """An empty project had sorted first and become every page's default; a long or
    multi-line environment was carried by each event of its key."""
    db = tmp_path / "names.db"
    args = ["--project", "p", "--env", "dev"]
    args[args.index(option) + 1] = name
    result = llmtap_cli("keys", "create", *args, LLMTAP_DB=str(db))
    assert result.returncode == 2, result.stderr
    assert "is named with 1 to 200" in result.stderr or "name is printable" in result.stderr
    assert not result.stdout


def test_events_table_and_json(project: Project) -> None:
    post_events(
        project,
        [
            event(model="alpha", output_text="the answer", latency_ms=12.0),
            event(
                model="beta",
                status="error",
                error={"type": "RateLimitError", "message": "slow down"},
            ),
        ],
    )
    env = {"LLMTAP_URL": project.server.url, "LLMTAP_API_KEY": project.key}
    table = llmtap_cli("events", **env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["started", "(UTC)", "model"]
    assert "alpha" in table.stdout and "the answer" in table.stdout
    assert "slow down" in table.stdout

    as_json = llmtap_cli("events", "--json", "--status", "error", **env)
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [e["model"] for e in events] == ["beta"]


def test_events_without_key_is_a_clear_error(project: Project) -> None:
    result = llmtap_cli("events", "--url", project.server.url)
    assert result.returncode != 0
    assert "API key" in result.stderr
    wrong = llmtap_cli("events", "--url", project.server.url, "--api-key", "lt_nope")
    assert wrong.returncode != 0 and "invalid API key" in wrong.stderr


def test_a_db_that_is_no_sqlite_store_is_one_line(tmp_path: Path) -> None:
    """Not a database, a folder, a place no folder can be made: one line, exit 1."""
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    runs = [("keys", "list", "--db", str(db)) for db in (text, tmp_path, "/proc/no-such/x.db")]
    runs.append(("migrate-store", "--from", str(text), "--to", str(tmp_path / "new.db")))
    for args in runs:
        done = llmtap_cli(*args)
        assert done.returncode == 1 and "cannot open the SQLite store" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "new.db").exists()


def test_serve_refuses_a_bad_server_setting_before_it_listens(tmp_path: Path) -> None:
    for env in (
        {"LLMTAP_MAX_BODY_BYTES": "lots"},
        {"LLMTAP_REDACT_FIELDS": "notjson"},
        {"LLMTAP_RETENTION_INTERVAL": "hourly"},
        {"LLMTAP_RETENTION_KEEP_STATS": "maybe"},
    ):
        done = llmtap_cli("serve", "--db", str(tmp_path / "x.db"), "--port", "1", **env)
        (name,) = env
        assert done.returncode == 2 and name in done.stderr, done.stderr
        assert "listening" not in done.stderr and "Traceback" not in done.stderr


def test_a_key_or_url_that_cannot_be_sent_is_a_usage_error() -> None:
    for env, words in (
        ({"LLMTAP_API_KEY": "clé", "LLMTAP_URL": "http://127.0.0.1:1"}, "is not an llmtap key"),
        ({"LLMTAP_API_KEY": "k", "LLMTAP_URL": "http://[::1"}, "LLMTAP_URL"),
    ):
        for args in (["events"], ["testsets", "list"], ["prices", "list"]):
            done = llmtap_cli(*args, **env)
            assert done.returncode == 2 and words in done.stderr, (args, done.stderr)
            assert "Traceback" not in done.stderr


def test_demo_says_when_the_server_refused_its_events(server: Server, tmp_path: Path) -> None:
    """A wrong key: the server keeps none of the demo's calls, and the command says so (exit
    1); a bad SDK setting is a usage error naming it."""
    env = {"LLMTAP_URL": server.url, "XDG_CACHE_HOME": str(tmp_path), "HOME": str(tmp_path)}
    wrong = llmtap_cli("demo", "-n", "3", LLMTAP_API_KEY="not-a-key", **env)
    assert wrong.returncode == 1 and "refused" in wrong.stderr and "is the key" in wrong.stderr
    junk = llmtap_cli("demo", "-n", "3", LLMTAP_API_KEY="k", LLMTAP_BATCH_SIZE="lots", **env)
    assert junk.returncode == 2 and "LLMTAP_BATCH_SIZE" in junk.stderr
    assert "Traceback" not in wrong.stderr + junk.stderr
