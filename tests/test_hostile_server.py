"""What a hostile or broken client, a broken store, or a huge page can do to a real ``llmtap
serve``: none of it freezes the server, holds its connections, exposes its files, or answers
with anything but a clear error, rendered for whoever asked."""

from __future__ import annotations

import os
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


def _modes(db: Path) -> dict[str, str]:
    files = [db, *(Path(f"{db}{s}") for s in ("-wal", "-shm", "-writer"))]
    return {f.name: oct(f.stat().st_mode & 0o777) for f in files}


def test_database_files_are_private(tmp_path: Path) -> None:
    private = {f"llmtap.db{s}": "0o600" for s in ("", "-wal", "-shm", "-writer")}
    umask = os.umask(0)  # the server inherits it: files would be 0666 if left to it
    try:
        srv = start_server(tmp_path)
    finally:
        os.umask(umask)
    try:
        post_events(Project(srv.new_key(), srv), [event()])
        assert _modes(srv.db) == private
    finally:
        stop_server(srv)
    # Files an older version left readable by all are made private when opened again.
    for name in private:
        if (tmp_path / name).exists():
            (tmp_path / name).chmod(0o644)
    with sqlite3.connect(srv.db) as db:  # the -wal and -shm exist again, 0644 like the file
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("SELECT count(*) FROM events").fetchone()
        srv = start_server(tmp_path)
        try:
            assert _modes(srv.db) == private
        finally:
            stop_server(srv)
