"""What a hostile or broken client, a broken store, or a huge page can do to a real ``llmtap
serve``: none of it freezes the server, holds its connections, exposes its files, or answers
with anything but a clear error, rendered for whoever asked."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx2

from .conftest import Project, Server, start_server, stop_server
from .test_dashboard_http import login
from .test_server import assert_error_shape, event, post_events


def test_a_page_error_renders_html_for_a_browser_and_json_for_the_api(
    server: Server, project: Project
) -> None:
    with login(server) as browser:
        page = browser.get("/events", params={"project": "no-such-project"})
        as_json = browser.get("/events", params={"project": "no-such-project", "format": "json"})
        missing = browser.get("/no/such/page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "no project &#39;no-such-project&#39;" in page.text and "<html" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "no project" in assert_error_shape(as_json, 404)["error"]
    assert missing.status_code == 404 and "<html" in missing.text
    # The API answers JSON whatever the client accepts.
    api = httpx2.get(server.url + "/api/v1/events", headers={"accept": "text/html"})
    assert_error_shape(api, 401)


def test_a_500_is_logged_once(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    try:
        project = Project(srv.new_key(), srv)
        assert post_events(project, [event()]).status_code == 200
        # A store broken behind the server's back (a table gone) is a bug to report.
        with sqlite3.connect(srv.db) as db:
            db.execute("ALTER TABLE feedback RENAME TO feedback_gone")
        with login(srv) as browser:
            page = browser.get("/feedback")
            as_json = browser.get("/feedback", params={"format": "json"})
        assert page.status_code == 500 and "<html" in page.text
        assert "internal server error" in assert_error_shape(as_json, 500)["error"]
    finally:
        log = stop_server(srv)
    assert log.count("Traceback") == 2, log  # two requests, each logged once
    assert log.count("unexpected error on GET /feedback") == 2, log
