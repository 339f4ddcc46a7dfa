"""Fixtures: the real parts, on loopback.

- ``provider``: the fake OpenAI-compatible server (the one thing faked);
- ``server``: a real ``llmtap serve`` process on a temporary SQLite file;
- ``project``: a fresh project with its own key, so tests never see each other's events;
- ``client``: an ``llmtap.Client`` wired to both;
- ``store``, ``store_backend``: a fresh store of each backend in turn (``tests/_stores.py``).
"""

from __future__ import annotations

import atexit
import html
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

# llmtap's own errors are raised, not logged, in its test suite: bugs must not hide.
os.environ["LLMTAP_RAISE_INTERNAL_ERRORS"] = "1"
# Spooled batches of the suite go to a folder of its own, never the user's cache.
os.environ["LLMTAP_SPOOL_DIR"] = _SPOOL = tempfile.mkdtemp(prefix="llmtap-test-spool-")
# Registered before llmtap is imported, so it runs after llmtap's own exit flush (atexit runs
# last-registered first): the suite leaves no spool behind.
atexit.register(shutil.rmtree, _SPOOL, ignore_errors=True)
for name in ("LLMTAP_URL", "LLMTAP_API_KEY", "LLMTAP_ENABLED", "OPENAI_API_KEY"):
    os.environ.pop(name, None)

import llmtap  # noqa: E402
from llmtap.fake_provider import FakeProvider  # noqa: E402
from llmtap.server.auth import create_key  # noqa: E402
from llmtap.store import open_store  # noqa: E402

if TYPE_CHECKING:  # a plugin (below): imported by pytest, so its asserts are rewritten
    from ._postgres import Postgres

LLMTAP = [sys.executable, "-m", "llmtap.cli"]
ADMIN_TOKEN = "test-admin-token"
# The dashboard's first admin (the owner) in the suite's servers: made with ADMIN_TOKEN by the
# first login (tests/test_dashboard_http.login, tests/browser.log_in).
ADMIN_USER, ADMIN_PASSWORD = "admin", "test-admin-password"

# ``tapped``: each SDK test against both the sync and the async client; ``store`` and
# ``store_backend``: each store test against every store backend (tests/_stores.py).
pytest_plugins = ["pytester", "tests._clients", "tests._postgres", "tests._stores"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx2.get(url, timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not come up")


@dataclass
class Server:
    url: str
    db: Path | str  # a SQLite file's path, or a PostgreSQL URL
    process: subprocess.Popen[bytes]
    # Its stderr: a file, not a pipe nobody reads while it runs (a server logging many
    # tracebacks would fill the pipe and hang, and a test would see a mere read timeout).
    log: Path | None = None

    def new_key(
        self,
        project: str | None = None,
        environment: str = "dev",
        scopes: tuple[str, ...] = ("ingest", "read", "admin"),
        env_only: bool = False,
    ) -> str:
        """A key of ``project`` (a new one by default). The suite's keys may do everything
        unless a test asks for less (tests/test_scopes.py does)."""
        store = open_store(str(self.db))
        try:
            project = project or f"p-{uuid.uuid4().hex[:8]}"
            return create_key(store, project, environment, scopes, env_only)
        finally:
            store.close()

    def get(self, path: str, key: str, **params: Any) -> httpx2.Response:
        return httpx2.get(
            self.url + path, params=params, headers={"authorization": f"Bearer {key}"}
        )

    def post(
        self, path: str, key: str | None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx2.Response:
        headers = {**(headers or {}), **({"authorization": f"Bearer {key}"} if key else {})}
        return httpx2.post(self.url + path, headers=headers, **kwargs)


def error_message(response: httpx2.Response) -> str:
    """The error a response carries: the JSON shape's ``error``, or, on a dashboard error page
    (what a browser is answered), the message the page shows."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return str(response.json()["error"])
    match = re.search(r'<p class="error" role="alert">(.*?)</p>', response.text, re.S)
    assert match, response.text[:500]
    return html.unescape(match.group(1))


def start_server(
    tmp: Path, env: dict[str, str] | None = None, db: str | None = None, args: tuple[str, ...] = ()
) -> Server:
    """A real ``llmtap serve`` on ``db`` (a SQLite file in ``tmp`` by default), with more
    command line ``args``."""
    port = free_port()
    where: Path | str = db or tmp / "llmtap.db"
    log = tmp / f"serve-{port}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*LLMTAP, "serve", "--db", str(where), "--port", str(port), *args],
            env={**os.environ, "LLMTAP_ADMIN_TOKEN": ADMIN_TOKEN, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    server = Server(f"http://127.0.0.1:{port}", where, process, log)
    try:
        wait_for(server.url + "/healthz")
    except TimeoutError:
        process.kill()
        process.wait()
        raise RuntimeError(log.read_text()) from None
    return server


def stop_server(server: Server) -> str:
    """Stop the server; what it wrote on stderr."""
    server.process.terminate()
    server.process.wait(timeout=10)
    return server.log.read_text() if server.log else ""


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("server"))
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def postgresql_server(
    tmp_path_factory: pytest.TempPathFactory, postgres: Postgres
) -> Iterator[Server]:
    """A real ``llmtap serve`` on a database of the suite's PostgreSQL server."""
    srv = start_server(tmp_path_factory.mktemp("pg-server"), db=postgres.fresh_database())
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def server(sqlite_server: Server) -> Server:
    """The suite's server, on SQLite. A module whose tests should hold on every store backend
    takes ``server_on_each_backend`` as its ``server`` (see there)."""
    return sqlite_server


def server_on_each_backend(request: pytest.FixtureRequest) -> Server:
    """The server of each store backend in turn. A module makes it its ``server`` with
    ``server = pytest.fixture(scope="module", params=STORE_BACKENDS, name="server")(...)``:
    every test there (and its ``project``, ``client``) runs as ``test_x[sqlite]`` and
    ``test_x[postgresql]``."""
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@dataclass
class Project:
    key: str
    server: Server

    def events(self, **params: Any) -> list[dict[str, Any]]:
        response = self.server.get("/api/v1/events", self.key, **params)
        assert response.status_code == 200, response.text
        return response.json()["events"]  # type: ignore[no-any-return]

    def event(self, event_id: str) -> dict[str, Any]:
        response = self.server.get(f"/api/v1/events/{event_id}", self.key)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def project(server: Server) -> Project:
    return Project(server.new_key(), server)


def tap_config(project: Project, **overrides: Any) -> dict[str, Any]:
    return {"api_key": project.key, "url": project.server.url, "flush_interval": 0.05, **overrides}


@pytest.fixture
def client(provider: FakeProvider, project: Project) -> Iterator[llmtap.Client]:
    c = llmtap.Client(
        api_key="sk-fake", base_url=provider.base_url, max_retries=0, llmtap=tap_config(project)
    )
    yield c
    c.close()


@pytest.fixture
def seed_env(monkeypatch: pytest.MonkeyPatch, provider: FakeProvider, project: Project) -> Project:
    """The seeds' world: the provider and the llmtap server found through the environment
    variables their code relies on (``OPENAI_BASE_URL``, ``LLMTAP_URL``...)."""
    monkeypatch.setenv("OPENAI_BASE_URL", provider.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    monkeypatch.setenv("LLMTAP_URL", project.server.url)
    monkeypatch.setenv("LLMTAP_FLUSH_INTERVAL", "0.05")
    return project


@pytest.fixture(autouse=True)
def _no_llmtap_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail any test during which llmtap logged an error of its own (its exporter thread
    cannot raise into the test)."""
    caplog.set_level(logging.WARNING, logger="llmtap")
    yield
    errors = [r for r in caplog.records if r.name == "llmtap" and r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
