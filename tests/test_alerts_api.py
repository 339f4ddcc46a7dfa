"""The alerts API and ``llmtap alerts`` against a real server: hostile rule, budget and
channel JSON answered 4xx (never 500), and the command line's list, create, export, import
and test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ._receivers import Webhook
from ._stores import STORE_BACKENDS
from .conftest import Project, Server, server_on_each_backend
from .test_cli import llmtap_cli

# Every test here runs on a server of each store backend.
server = pytest.fixture(scope="module", params=STORE_BACKENDS, name="server")(
    server_on_each_backend
)

PATHS = ["/api/v1/alerts", "/api/v1/budgets", "/api/v1/alert-channels", "/api/v1/alerts/import"]
_texts = st.text(max_size=30) | st.sampled_from(["", "\ud800", "a" * 600, "attributes.", "user"])
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | _texts
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts, inner, max_size=4),
    max_leaves=12,
)
_known = {
    "name": _texts,
    "kind": st.sampled_from(["rule", "budget", "webhook", "email", "x"]) | _json,
    "measure": st.sampled_from(["requests", "error_rate", "latency_p95", "nope"]) | _json,
    "window": st.sampled_from(["1h", "30s", "31d", "7d", 59, 60, -1, "1e9m"]) | _json,
    "threshold": st.floats() | _json,
    "op": st.sampled_from(["above", "below", "over"]),
    "compare": st.sampled_from(["previous_window", "week_before", "year"]) | st.none(),
    "filters": st.dictionaries(
        st.sampled_from(["model", "user", "attributes.a", "attributes.b", "bogus", "q"]), _json
    ),
    "group_by": st.sampled_from(["model", "attributes.b", "chat_id", "day", ""]) | _json,
    "min_events": _json,
    "cooldown": _json,
    "limit_usd": st.floats() | _json,
    "notify_at": st.lists(st.floats(), max_size=12) | _json,
    "url": st.sampled_from(
        [
            "http://127.0.0.1:1/x",
            "ftp://x",
            "http://u:p@1.2.3.4/",
            "http://[::1",
            "https://1.1.1.1:99999/",
        ]
    )
    | _json,
    "to": st.lists(st.sampled_from(["a@b.c", "not mail", "x@y,z@w"]), max_size=3) | _json,
    "rules": _json,
    "budgets": _json,
}
_bodies = st.fixed_dictionaries({}, optional=_known) | _json


@pytest.fixture(scope="module")
def hostile_project(server: Server) -> Project:
    return Project(server.new_key(), server)


@given(path=st.sampled_from(PATHS), body=_bodies)
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_hostile_alert_json_is_answered_4xx_never_500(
    server: Server, hostile_project: Project, path: str, body: Any
) -> None:
    answer = server.post(path, hostile_project.key, content=json.dumps(body).encode())
    assert answer.status_code < 500, (path, body, answer.text)
    if answer.status_code >= 400:
        error = answer.json()
        assert error["ok"] is False and error["status"] == answer.status_code and error["error"]
    listed = server.get("/api/v1/alerts", hostile_project.key)
    assert listed.status_code == 200, listed.text


def test_a_read_key_lists_and_an_ingest_key_cannot(server: Server) -> None:
    reader = Project(server.new_key(scopes=("read",)), server)
    rule = {"name": "r", "measure": "cost", "window": 3600, "threshold": 1}
    refused = server.post("/api/v1/alerts", reader.key, json=rule)
    assert refused.status_code == 403 and "admin" in refused.json()["error"]
    assert server.get("/api/v1/alerts", reader.key).status_code == 200
    ingest = server.new_key(scopes=("ingest",))
    assert server.get("/api/v1/alerts", ingest).status_code == 403


def test_the_command_line_creates_lists_exports_imports_and_tests(
    server: Server, tmp_path: Path
) -> None:
    project = Project(server.new_key(), server)
    env = {"LLMTAP_URL": server.url, "LLMTAP_API_KEY": project.key}
    rule = tmp_path / "rule.json"
    rule.write_text(
        json.dumps(
            {
                "name": "slow",
                "measure": "latency_p95",
                "window": "15m",
                "threshold": 2000,
                "group_by": "model",
            }
        )
    )
    budget = tmp_path / "budget.json"
    budget.write_text(json.dumps({"kind": "budget", "name": "month", "limit_usd": 50}))
    for path in (rule, budget):
        done = llmtap_cli("alerts", "create", str(path), **env)
        assert done.returncode == 0, done.stderr
    again = llmtap_cli("alerts", "create", str(rule), **env)
    assert again.returncode == 1 and "409" in again.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "measure": "vibes", "window": "1h", "threshold": 1}))
    refused = llmtap_cli("alerts", "create", str(bad), **env)
    assert refused.returncode == 1 and "measure" in refused.stderr
    bad.write_text("[" * 5000 + "]" * 5000)  # past what Python's parser takes: no traceback
    for command in ("create", "import"):
        deep = llmtap_cli("alerts", command, str(bad), **env)
        assert deep.returncode == 2 and "nested too deeply" in deep.stderr, deep.stderr
        assert "Traceback" not in deep.stderr
    listed = llmtap_cli("alerts", "list", **env)
    assert "rule    slow: latency_p95 above 2000.0 over 900s" in listed.stdout
    assert "budget  month: $0 of $50.0 per month" in listed.stdout
    exported = tmp_path / "alerts.json"
    assert llmtap_cli("alerts", "export", "-o", str(exported), **env).returncode == 0
    assert exported.stat().st_mode & 0o777 == 0o600  # as every file a command writes
    document = json.loads(exported.read_text())
    assert [r["name"] for r in document["rules"]] == ["slow"]
    other = Project(server.new_key(), server)
    imported = llmtap_cli(
        "alerts", "import", str(exported), LLMTAP_URL=server.url, LLMTAP_API_KEY=other.key
    )
    assert "imported 1 rule(s) and 1 budget(s)" in imported.stdout, imported.stderr
    assert (
        llmtap_cli("alerts", "export", LLMTAP_URL=server.url, LLMTAP_API_KEY=other.key).stdout
        == exported.read_text()
    )
    # No channel, then a webhook this server may not reach (it allows public addresses only).
    untested = llmtap_cli("alerts", "test", "slow", **env)
    assert untested.returncode == 1 and "no channel" in untested.stderr
    hook = Webhook()
    try:
        channel = tmp_path / "channel.json"
        channel.write_text(json.dumps({"kind": "webhook", "name": "ops", "url": hook.url}))
        refused = llmtap_cli("alerts", "create", str(channel), **env)
        assert refused.returncode == 1 and "not a public address" in refused.stderr
    finally:
        hook.close()


def test_a_rule_is_replaced_read_back_and_removed(server: Server) -> None:
    project = Project(server.new_key(), server)
    auth = {"authorization": f"Bearer {project.key}"}
    rule = {"name": "slow", "measure": "latency_p95", "window": "15m", "threshold": 2000}
    with httpx2.Client(base_url=server.url, headers=auth, timeout=30) as http:
        assert http.post("/api/v1/alerts", json=rule).status_code == 201
        changed = {k: v for k, v in rule.items() if k != "name"} | {"threshold": 900}
        replaced = http.put("/api/v1/alerts/slow", json=changed)  # the path names it
        assert replaced.status_code == 200, replaced.text
        assert http.get("/api/v1/alerts/slow").json()["rule"]["threshold"] == 900
        listed = http.get("/api/v1/alerts").json()["rules"]
        assert [(r["name"], r["threshold"]) for r in listed] == [("slow", 900)]
        renamed = http.put("/api/v1/alerts/slow", json={**rule, "name": "fast"})
        assert renamed.status_code == 400 and "the path 'slow'" in renamed.text
        assert http.delete("/api/v1/alerts/slow").status_code == 200
        assert http.get("/api/v1/alerts/slow").status_code == 404
        assert http.delete("/api/v1/alerts/slow").status_code == 404


def test_a_rule_names_channels_that_exist(server: Server) -> None:
    project = Project(server.new_key(), server)
    auth = {"authorization": f"Bearer {project.key}"}
    rule = {"name": "r", "measure": "errors", "window": "5m", "threshold": 1, "channels": ["Ops"]}
    with httpx2.Client(base_url=server.url, headers=auth, timeout=30) as http:
        channel = {"kind": "webhook", "name": "ops", "url": "https://1.1.1.1/hook"}
        assert http.post("/api/v1/alert-channels", json=channel).status_code == 201
        refused = http.post("/api/v1/alerts", json=rule)
        assert refused.status_code == 400, refused.text
        assert "no channel named 'Ops'" in refused.json()["error"] and "ops" in refused.text
        assert http.post("/api/v1/alerts", json={**rule, "channels": ["ops"]}).status_code == 201
        assert http.put("/api/v1/alerts/r", json=rule).status_code == 400
        assert http.get("/api/v1/alerts/r").json()["rule"]["channels"] == ["ops"]
        # A rule named as a route of its own API could never be read by its name.
        named = http.post("/api/v1/alerts", json={**rule, "name": "export", "channels": []})
        assert named.status_code == 400 and "pick another name" in named.text
