"""What a hostile or broken client, a broken store, or a huge page can do to a real ``llmtap
serve``: none of it freezes the server, holds its connections, exposes its files, or answers
with anything but a clear error, rendered for whoever asked."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest

from .conftest import Project, Server, start_server, stop_server
from .test_cli import llmtap_cli
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


# -- clients that have not said who they are: a server with short timeouts -------------------

HEADER_TIMEOUT, BODY_TIMEOUT, MAX_CONNECTIONS = 2.0, 2.0, 8
LIMITS = {
    "LLMTAP_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
    "LLMTAP_BODY_TIMEOUT": str(BODY_TIMEOUT),
    "LLMTAP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    "LLMTAP_MAX_FORM_BYTES": "4096",
}
# Slack for a loaded machine: a cut comes within the timeout plus this.
SLACK = 3.0


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("limited"), env=LIMITS)
    yield srv
    log = stop_server(srv)
    assert "Traceback" not in log, log


def _connect(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            out += chunk
    return out


def _one_answer(sock: socket.socket) -> bytes:
    """One answer, on a connection the server keeps open."""
    raw = b""
    while b"\r\n\r\n" not in raw or len(raw.split(b"\r\n\r\n", 1)[1]) < _length(raw):
        chunk = sock.recv(65536)
        if not chunk:
            break
        raw += chunk
    return raw


def _length(raw: bytes) -> int:
    found = re.search(rb"content-length: (\d+)", raw.split(b"\r\n\r\n", 1)[0], re.IGNORECASE)
    return int(found.group(1)) if found else 0


def _status(raw: bytes) -> int | None:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else None


def _trickle(sock: socket.socket, data: bytes, every: float = 0.2) -> float:
    """Send ``data`` a byte at a time until the server hangs up; seconds it took."""
    start = time.monotonic()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        for byte in data:
            sock.send(bytes([byte]))
            time.sleep(every)
    return time.monotonic() - start


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 200_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + b"x-many: a\r\n" * 20_000 + b"\r\n",
        b"GET /healthz?" + b"q=1&" * 50_000 + b" HTTP/1.1\r\nhost: x\r\n\r\n",
        # A header that never ends: cut before it is all sent.
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-endless: " + b"a" * 20_000_000,
    ],
    ids=["one-big-header", "header-flood", "long-url", "endless-header"],
)
def test_oversized_heads_are_refused(limited: Server, head: bytes) -> None:
    with _connect(limited) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        raw = _answer(sock)
    assert _status(raw) in (431, 400, None), raw[:200]
    if raw:
        assert b"byte limit" in raw or b"Invalid HTTP" in raw
    assert httpx2.get(limited.url + "/healthz").status_code == 200


def test_slow_loris_on_headers_is_cut(limited: Server) -> None:
    with _connect(limited) as sock:
        took = _trickle(sock, b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + b"x-a: b\r\n" * 100)
        raw = _answer(sock)
    assert took < HEADER_TIMEOUT + SLACK
    assert _status(raw) == 408 and b"headers took too long" in raw


def test_a_silent_connection_is_closed(limited: Server) -> None:
    start = time.monotonic()
    with _connect(limited) as sock:
        raw = _answer(sock)
    assert time.monotonic() - start < HEADER_TIMEOUT + SLACK
    assert _status(raw) == 408


def test_slow_loris_on_the_body_is_cut(limited: Server) -> None:
    body = json.dumps({"events": [event()]}).encode()
    key = limited.new_key()  # the server reads a body only once the key is known
    with _connect(limited) as sock:
        sock.sendall(
            b"POST /api/v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        )
        took = _trickle(sock, body)
        raw = _answer(sock)
    assert took < BODY_TIMEOUT + SLACK
    assert _status(raw) == 408 and b"body took too long" in raw


def test_too_many_connections_get_503_not_a_hang(limited: Server) -> None:
    idle = [_connect(limited) for _ in range(MAX_CONNECTIONS)]
    try:
        start = time.monotonic()
        refused = httpx2.get(limited.url + "/healthz", timeout=10)
        assert refused.status_code == 503
        assert time.monotonic() - start < 1.0
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    assert httpx2.get(limited.url + "/healthz").status_code == 200


def test_a_huge_login_form_is_refused_before_it_is_read(limited: Server) -> None:
    form = b"csrf_token=x&token=" + b"a" * 10_000_000
    start = time.monotonic()
    declared = httpx2.post(
        limited.url + "/login",
        content=form,
        headers={"content-type": "application/x-www-form-urlencoded", "accept": "text/html"},
    )
    assert declared.status_code == 413 and "4096 bytes" in declared.text
    assert time.monotonic() - start < 5.0
    # Without a length (chunked): refused once the limit is passed, the rest never sent.
    with _connect(limited) as sock:
        sock.sendall(
            b"POST /login HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
            b"content-type: application/x-www-form-urlencoded\r\n\r\n"
            + b"2000\r\n"
            + b"a" * 0x2000
            + b"\r\n"
        )
        sock.settimeout(5)
        raw = _one_answer(sock)
    assert _status(raw) == 413 and b"4096 bytes" in raw


def test_healthz_stays_fast_while_the_worst_diff_page_renders(
    server: Server, project: Project
) -> None:
    """Two revisions of about 1 MiB each, of similar lines (what made ``ndiff`` crawl): the
    page answers "too large to diff" and nothing else waits for it."""

    def revision(variant: int) -> str:
        lines = [f"step {i}: the quick brown fox {i * variant % 13} jumps" for i in range(24_000)]
        return "\n".join(lines)[:1_000_000]

    events = [
        event(prompt_template_name="huge", template_text=revision(v), template_params={})
        for v in (7, 11)
    ]
    for e in events:
        assert post_events(project, [e]).json()["stored"] == 1
    name = project.events()[0]["project"]
    answers: list[httpx2.Response] = []
    with login(server) as browser:
        page = threading.Thread(
            target=lambda: answers.append(
                browser.get("/templates/huge", params={"project": name}, timeout=60)
            )
        )
        page.start()
        waits = []
        while page.is_alive() or not waits:
            start = time.monotonic()
            assert httpx2.get(server.url + "/healthz", timeout=10).status_code == 200
            waits.append(time.monotonic() - start)
            time.sleep(0.02)
        page.join()
    assert answers[0].status_code == 200
    assert "too large to diff" in answers[0].text
    assert max(waits) < 0.5, waits


def test_remote_images_load_only_on_a_click(server: Server, project: Project) -> None:
    tracker = "https://tracker.example/pixel.png?who=admin"
    image = {"type": "image_url", "image_url": {"url": tracker}}
    sent = event(request={"messages": [{"role": "user", "content": [image]}]})
    post_events(project, [sent])
    name = project.events()[0]["project"]
    with login(server) as browser:
        page = browser.get(f"/events/{sent['id']}", params={"project": name})
    assert page.status_code == 200
    assert "<img" not in page.text
    link = re.search(r'<a href="([^"]+)" target="_blank" rel="([^"]+)"', page.text)
    assert link and link.group(1) == tracker.replace("&", "&amp;")
    assert "noreferrer" in link.group(2)
    policy = page.headers["content-security-policy"]
    assert "img-src 'self' data:;" in policy and "https:" not in policy


class _BadGateway(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        self.send_response(502)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize("command", [["events"], ["stats"]])
def test_a_proxy_error_page_is_a_clear_message(command: list[str]) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _BadGateway) as proxy:
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        result = llmtap_cli(*command, "--url", url, "--api-key", "lt_whatever")
        proxy.shutdown()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "502" in result.stderr and "not JSON (text/html)" in result.stderr, result.stderr


def test_lists_hold_summaries_and_pages_have_a_byte_budget(
    server: Server, project: Project
) -> None:
    big = "many words " * 90_000  # ~1 MB, under max_field_bytes
    sent = [
        event(
            request={"messages": [{"role": "user", "content": big}]},
            output_text=big,
            started_at=f"2026-01-01T00:00:{i:02d}Z",
        )
        for i in range(12)
    ]
    for e in sent:
        assert post_events(project, [e]).json()["stored"] == 1
    # The API's list: whole events, in pages of at most 8 MiB of them (a cursor for the rest).
    pages, cursor = [], None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        answer = server.get("/api/v1/events", project.key, **params).json()
        pages.append(answer["events"])
        cursor = answer["next_cursor"]
        if not cursor:
            break
    assert len(pages) > 1 and all(0 < len(p) < 12 for p in pages)
    listed = [e for p in pages for e in p]
    assert sorted(e["id"] for e in listed) == sorted(e["id"] for e in sent)
    assert all(e["output_text"] == big for e in listed)
    # The dashboard's list: one page of summaries, nothing large in it.
    name = listed[0]["project"]
    with login(server) as browser:
        as_json = browser.get("/events", params={"project": name, "format": "json"})
        page = browser.get("/events", params={"project": name})
    summaries = as_json.json()["events"]
    assert len(summaries) == 12 and len(as_json.content) < 100_000
    assert all("request" not in e and len(e["output_text"]) == 500 for e in summaries)
    assert page.status_code == 200 and len(page.content) < 100_000
