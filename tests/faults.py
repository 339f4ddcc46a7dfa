"""Fault injection with real processes on loopback, shared by the test suite and ``make bench``.

A :class:`FaultProxy` stands between the SDK and a real ``llmtap serve``: it forwards, or
answers 500 or 429, or answers slowly, or is not there at all; behind it the server can be
killed with ``kill -9`` and restarted (on a new port, the proxy follows). A client process
records a known set of event ids (a forked child records its own); :func:`audit` then reads
the SQLite file itself and counts what is missing and what is there twice.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2

from llmtap.store import EventFilter, open_store

LLMTAP = [sys.executable, "-m", "llmtap.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    target = ""
    mode = "pass"
    delay = 0.0
    requests = 0
    # One pooled client for every forwarded request: a new client per request (a new TLS
    # context and two new connections) made the proxy itself the slowest part under load.
    upstream: httpx2.Client

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client gone mid-request is part of the game here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: simple and robust
    server: _Proxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests += 1
        mode = self.server.mode
        if mode == "500":
            return self._answer(500, b'{"ok":false,"error":"injected"}')
        if mode == "429":
            return self._answer(429, b'{"ok":false,"error":"slow down"}', {"retry-after": "0"})
        if mode.isdigit():  # any other status, as a proxy in front may answer
            return self._answer(int(mode), b'{"ok":false,"error":"injected"}')
        if mode == "slow":
            time.sleep(self.server.delay)
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization",)}
        headers["content-type"] = "application/json"
        try:
            response = self.server.upstream.request(
                method, self.server.target + self.path, content=body, headers=headers
            )
        except httpx2.HTTPError:
            return self._answer(502, b'{"ok":false,"error":"server down"}')
        self._answer(response.status_code, response.content)

    def do_POST(self) -> None:
        self._forward("POST")

    def do_GET(self) -> None:
        self._forward("GET")


class FaultProxy:
    """A proxy on a fixed port, which can be absent (``start`` later), and misbehave."""

    def __init__(self, target: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.target = target
        self._server: _Proxy | None = None

    @property
    def requests(self) -> int:
        """Requests the proxy has had (0 while absent)."""
        return self._server.requests if self._server is not None else 0

    def start(self) -> FaultProxy:
        self._server = _Proxy(("127.0.0.1", self.port), _Handler)
        self._server.target = self.target
        self._server.upstream = httpx2.Client(timeout=5)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def set(self, mode: str, delay: float = 0.0, target: str | None = None) -> None:
        assert self._server is not None
        self._server.mode, self._server.delay = mode, delay
        if target is not None:
            self.target = self._server.target = target

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.upstream.close()
            self._server = None


@dataclass
class Backend:
    """A real ``llmtap serve`` on a SQLite file, which can be killed and started again."""

    db: Path
    workers: int = 1
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    kills: int = 0

    def start(self) -> str:
        port = free_port()
        workers = ["--workers", str(self.workers)] if self.workers > 1 else []
        self.process = subprocess.Popen(
            [*LLMTAP, "serve", "--db", str(self.db), "--port", str(port), *workers],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx2.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self.url
            except httpx2.HTTPError:
                time.sleep(0.05)
        raise TimeoutError("llmtap serve did not come up")

    def kill9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)  # the workers too
        self.process.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(20)


def new_key(db: Path, project: str) -> str:
    out = subprocess.run(
        [
            *LLMTAP,
            "keys",
            "create",
            "--project",
            project,
            "--db",
            str(db),
            "--scope",
            "ingest",
            "--scope",
            "read",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


CLIENT = """
import os, sys, time, llmtap
from llmtap.fake_provider import FakeProvider
url, key, run, n, n_child, pace = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), \
    int(sys.argv[5]), float(sys.argv[6])
provider = FakeProvider().start()
config = {"url": url, "api_key": key, "flush_interval": 0.05, "flush_timeout": 90,
          "batch_size": 50}
def record(client, event_id):
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": event_id}],
                                   llmtap={"event_id": event_id, "prompt_template_name": "f"})
client = llmtap.Client(api_key="sk", base_url=provider.base_url, max_retries=0, llmtap=config)
child = None
for i in range(n):
    record(client, f"{run}-p-{i}")
    if i == n // 3 and n_child:
        child = os.fork()
        if child == 0:
            client = llmtap.Client(api_key="sk", base_url=provider.base_url, max_retries=0,
                                   llmtap=config)
            for j in range(n_child):
                record(client, f"{run}-c-{j}")
                time.sleep(pace)
            ok = client.flush()
            os._exit(0 if ok else 3)
    time.sleep(pace)
print("recorded", time.time(), flush=True)
if sys.argv[7] == "flush":
    delivered = client.flush()
    if not delivered:
        print("state", client.stats(), flush=True)
        import traceback
        for tid, frame in sys._current_frames().items():
            print("".join(traceback.format_stack(frame)[-4:]), flush=True)
    code = os.waitpid(child, 0)[1] if child else 0
    print("flushed", delivered, code, time.time(), flush=True)
    sys.exit(0 if delivered and code == 0 else 1)
time.sleep(3600)  # wait to be killed
"""


def start_client(
    url: str, key: str, run: str, n: int, n_child: int, pace: float, end: str, spool: Path
) -> subprocess.Popen[str]:
    env = {**os.environ, "LLMTAP_SPOOL_DIR": str(spool)}
    env.pop("LLMTAP_RAISE_INTERNAL_ERRORS", None)  # a child process logs, like a user's would
    args = [url, key, run, str(n), str(n_child), str(pace), end]
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CLIENT), *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


@dataclass
class Audit:
    sent: int
    stored: int
    missing: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    integrity: str = ""
    counted: int = 0  # events in the stats, once the store has derived what a kill left

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "stored": self.stored,
            "missing": len(self.missing),
            "duplicated": len(self.duplicated),
            "integrity": self.integrity,
            "counted_in_stats": self.counted,
        }


def audit(db: Path, expected: set[str], run: str) -> Audit:
    """What the store holds of this run's events: read from the SQLite file itself."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT id, count(*) FROM events WHERE id LIKE ? GROUP BY id", (run + "-%",)
        ).fetchall()
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    stored = {i: c for i, c in rows}
    store = open_store(str(db))  # opening it derives whatever a kill -9 left underived
    try:
        groups = store.stats(1, EventFilter(), [])["groups"]
    finally:
        store.close()
    return Audit(
        sent=len(expected),
        stored=sum(stored.values()),
        missing=sorted(expected - stored.keys()),
        duplicated=sorted(i for i, c in stored.items() if c > 1),
        integrity=integrity,
        counted=groups[0]["count"] if groups else 0,
    )


def chaos_run(tmp: Path, n: int = 1500, n_child: int = 300, kills: int = 3) -> Audit:
    """The server absent at start, then 500s, 429s, slow answers, and ``kill -9`` restarts
    while a client (and its forked child) records ``n`` (+ ``n_child``) events."""
    db = tmp / "chaos.db"
    run = uuid.uuid4().hex[:8]
    key = new_key(db, "chaos")
    backend = Backend(db)
    proxy = FaultProxy("")
    client = start_client(proxy.url, key, run, n, n_child, 0.002, "flush", tmp / "spool")
    try:
        time.sleep(1.0)  # nobody listening
        proxy.target = backend.start()
        proxy.start()
        for mode in ("500", "429"):
            time.sleep(0.7)
            proxy.set(mode)
            time.sleep(0.7)
            proxy.set("pass")
        proxy.set("slow", delay=0.4)
        time.sleep(1.0)
        proxy.set("pass")
        for _ in range(kills):
            time.sleep(0.6)
            backend.kill9()  # during ingest: the client is still sending
            time.sleep(0.3)
            proxy.set("pass", target=backend.start())
        out, _ = client.communicate(timeout=240)
        assert client.returncode == 0, out
    finally:
        if client.poll() is None:
            client.kill()
        proxy.stop()
        backend.stop()
    expected = {f"{run}-p-{i}" for i in range(n)} | {f"{run}-c-{j}" for j in range(n_child)}
    return audit(db, expected, run)
