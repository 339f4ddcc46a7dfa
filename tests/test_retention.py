"""Retention against a real ``llmtap serve``: its purge runs on a schedule, drops events older
than the server's retention (or the project's own, set on the settings page), keeps their
stats by default, and the settings page shows the oldest event kept and the next purge."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from llmtap.server.retention import NEXT_PURGE, Purger
from llmtap.store import KeyInfo, Store, open_store

from ._stores import STORE_BACKENDS
from .conftest import Project, Server, error_message, start_server, stop_server
from .test_cli import llmtap_cli
from .test_dashboard_http import csrf_of, login
from .test_retention_store import cut, dated
from .test_server import event, post_events


@pytest.fixture
def purging(tmp_path: Path) -> Iterator[Server]:
    """A server keeping 30 days of raw events, purging twice a second."""
    srv = start_server(
        tmp_path, env={"LLMTAP_RETENTION_DAYS": "30", "LLMTAP_RETENTION_INTERVAL": "0.5"}
    )
    yield srv
    stop_server(srv)


@pytest.fixture(params=STORE_BACKENDS)
def purging_on_each_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """``purging``, on each store backend."""
    db = None
    if request.param == "postgresql":
        db = request.getfixturevalue("postgres").fresh_database()
    env = {"LLMTAP_RETENTION_DAYS": "30", "LLMTAP_RETENTION_INTERVAL": "0.5"}
    srv = start_server(tmp_path, env=env, db=db)
    yield srv
    stop_server(srv)


def ago(days: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days)).isoformat()


def wait_until_listed(project: Project, n: int, timeout: float = 30.0) -> list[str]:
    """The project's events once exactly ``n`` are listed (the purge runs on its own)."""
    deadline = time.monotonic() + timeout
    while True:
        listed = [e["started_at"] for e in project.events(limit=100)]
        if len(listed) == n or time.monotonic() > deadline:
            return listed
        time.sleep(0.2)


def set_retention(server: Server, project: str, days: str) -> int:
    with login(server) as browser:
        token = csrf_of(browser.get("/settings").text)
        response = browser.post(
            "/settings/retention", data={"csrf_token": token, "project": project, "days": days}
        )
        if response.status_code >= 400:
            assert "retention" in error_message(response)
        return response.status_code


def test_old_events_are_purged_the_stats_stay_and_a_project_setting_wins(
    purging_on_each_backend: Server,
) -> None:
    purging = purging_on_each_backend
    a = Project(purging.new_key("keep-30"), purging)
    b = Project(purging.new_key("keep-5"), purging)
    assert set_retention(purging, "keep-5", "5") == 303
    secret = {"messages": [{"role": "user", "content": "my SSN is 078-05-1120"}]}
    recent = {"messages": [{"role": "user", "content": "what is new?"}]}
    for project in (a, b):
        events = [
            event(started_at=ago(60), feedback_key=f"fk-{project.key[-6:]}", request=secret),
            event(started_at=ago(10)),
            event(started_at=ago(0.01), request=recent),
        ]
        assert post_events(project, events).status_code == 200
    assert len(wait_until_listed(a, 2)) == 2  # the 60-day-old one went
    assert len(wait_until_listed(b, 1)) == 1  # its own 5 days win over the server's 30
    # Stats outlive the raw events by default: a year of stats past 30 days of events.
    stats = purging.get("/api/v1/stats", a.key).json()
    assert stats["groups"][0]["count"] == 3
    # A plain call is filed under its own prompt as its template: that text goes with the
    # call (the name and counts stay); a call still kept keeps its prompt.
    templates = purging.get("/api/v1/templates", a.key).text
    assert "078-05-1120" not in templates and "what is new?" in templates

    with login(purging) as browser:
        page = browser.get("/settings").text
    kept = re.search(r"Oldest event kept: ([0-9-]+ [0-9:]+)", page)
    assert kept and kept.group(1)[:10] == ago(10)[:10]
    assert re.search(r"Next purge: [0-9-]+ [0-9:]+", page) and "overdue" not in page
    assert "5 days" in page and "30 days" in page


def test_a_purge_planned_and_not_done_is_shown_overdue(server: Server) -> None:
    """No server purges (all stopped, or their interval at 0): the last purge planned is in
    the past, and the page says so rather than showing it as the next one."""
    server.new_key("p")
    store = open_store(str(server.db))
    try:
        store.set_meta(NEXT_PURGE, str(int((time.time() - 7200) * 1_000_000)))
    finally:
        store.close()
    with login(server) as browser:
        page = browser.get("/settings").text
    assert "(overdue: no server is purging now)" in page


@pytest.mark.parametrize("days", ["-1", "abc", "9" * 40, "1.5", "\uff11\uff12"])
def test_a_bad_retention_is_refused_with_a_clear_error(purging: Server, days: str) -> None:
    purging.new_key("p")
    assert set_retention(purging, "p", days) == 400


def test_with_stats_not_kept_purged_events_leave_the_stats(tmp_path: Path) -> None:
    env = {
        "LLMTAP_RETENTION_DAYS": "7",
        "LLMTAP_RETENTION_INTERVAL": "0.5",
        "LLMTAP_RETENTION_KEEP_STATS": "0",
    }
    server = start_server(tmp_path, env=env)
    try:
        project = Project(server.new_key("p"), server)
        post_events(project, [event(started_at=ago(8)), event(started_at=ago(1))])
        assert len(wait_until_listed(project, 1)) == 1
        assert server.get("/api/v1/stats", project.key).json()["groups"][0]["count"] == 1
    finally:
        stop_server(server)


def test_one_process_purges_at_a_time_and_tells_when_next(store: Store) -> None:
    """Two servers' purgers on one database: the lease's holder purges, the other waits; the
    time of the next purge is in the store for any process's dashboard."""
    pid = store.ensure_project("p")
    store.insert_events(dated(KeyInfo(1, pid, "p", "dev"), [0, 40]))
    now = cut(60)  # 60 days after the first event, 20 after the second
    first = Purger(store, days=30, interval=60, clock=lambda: now / 1_000_000)
    second = Purger(store, days=30, interval=60, clock=lambda: now / 1_000_000)
    assert first.run_once() == {"p": 1}
    assert second.run_once() is None
    assert store.get_meta(NEXT_PURGE) == str(now + 60_000_000)
    first.close()  # gives the lease up: the other takes over
    assert second.run_once() == {}
    second.close()


def test_a_project_whose_purge_fails_does_not_keep_the_others_events(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A purge that raises for one project (its store trouble, a bug) is logged, and the
    others' events still go; the next purge's time is still set."""
    a, b = store.ensure_project("a"), store.ensure_project("b")
    for pid, name in ((a, "a"), (b, "b")):
        store.insert_events(dated(KeyInfo(1, pid, name, "dev"), [0]))
    real = store.purge_before

    def purge_before(project_id: int, *args: Any) -> int:
        if project_id == a:
            raise RuntimeError("the disk is gone")
        return real(project_id, *args)

    monkeypatch.setattr(store, "purge_before", purge_before)
    now = cut(60)
    purger = Purger(store, days=30, interval=60, clock=lambda: now / 1_000_000)
    assert purger.run_once() == {"b": 1}
    assert store.get_meta(NEXT_PURGE) == str(now + 60_000_000)
    assert "the purge of 'a' failed" in caplog.text and "the disk is gone" in caplog.text
    purger.close()


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--retention-days", "-1"], {}),
        (["--retention-days", "ten"], {}),
        ([], {"LLMTAP_RETENTION_DAYS": "-5"}),
        ([], {"LLMTAP_RETENTION_DAYS": "1e3"}),
    ],
)
def test_a_bad_retention_stops_serve_with_a_usage_error(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    result = llmtap_cli("serve", "--db", str(tmp_path / "x.db"), *args, **env)
    assert result.returncode == 2
    assert "retention-days" in result.stderr
    assert "Traceback" not in result.stderr
