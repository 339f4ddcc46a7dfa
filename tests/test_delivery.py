"""Delivery never hurts the caller: no server, a server that never answers, exit, fork; and
retries do not come in step."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

import llmtap
from llmtap.fake_provider import FakeProvider

from .conftest import Project, free_port


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def timed_call(client: openai.OpenAI, text: str) -> tuple[float, str]:
    start = time.perf_counter()
    out = client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
    return time.perf_counter() - start, out.choices[0].message.content or ""


@pytest.mark.parametrize("where", ["closed port", "black hole"])
def test_call_unchanged_and_fast_without_a_server(
    provider: FakeProvider, black_hole: str, where: str
) -> None:
    url = black_hole if where == "black hole" else f"http://127.0.0.1:{free_port()}"
    plain = openai.OpenAI(api_key="sk", base_url=provider.base_url)
    tapped = llmtap.Client(
        api_key="sk",
        base_url=provider.base_url,
        llmtap={"url": url, "api_key": "k", "flush_interval": 0.01, "flush_timeout": 0.1},
    )
    timed_call(plain, "warm up")
    timed_call(tapped, "warm up")
    for i in range(20):
        plain_time, plain_text = timed_call(plain, f"hello {i}")
        tapped_time, tapped_text = timed_call(tapped, f"hello {i}")
        assert tapped_text == plain_text
        # Generous: a blocked exporter would cost seconds (connect and read time-outs).
        assert tapped_time < plain_time + 0.25
    assert tapped.flush(0.1) is False  # undeliverable, and flush says so within its bound


EXIT_SCRIPT = """
import sys, time, llmtap
from llmtap.fake_provider import FakeProvider
provider = FakeProvider().start()
url, key = sys.argv[1], sys.argv[2]
flush_timeout, flush_interval = float(sys.argv[3]), float(sys.argv[4])
client = llmtap.Client(api_key="sk", base_url=provider.base_url,
    llmtap={"url": url, "api_key": key, "flush_timeout": flush_timeout,
            "flush_interval": flush_interval})
for i in range(int(sys.argv[5])):
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"n{i}"}],
                                   llmtap={"prompt_template_name": "at-exit"})
print(time.time(), flush=True)
"""


def run_script(*args: object) -> tuple[float, float]:
    """Run EXIT_SCRIPT; (seconds from its last call to its exit, its exit code)."""
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(EXIT_SCRIPT), *map(str, args)],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    last_call = float(process.stdout.readline())
    code = process.wait(30)
    process.stdout.close()
    return time.time() - last_call, code


@pytest.mark.parametrize("flush_timeout", [0.3, 1.5])
def test_exit_waits_no_longer_than_the_flush_bound(black_hole: str, flush_timeout: float) -> None:
    elapsed, code = run_script(black_hole, "k", flush_timeout, 0.01, 3)
    assert code == 0
    # It did wait for the undeliverable events, and not past the bound (plus interpreter exit).
    assert flush_timeout - 0.1 <= elapsed <= flush_timeout + 1.0


def test_events_queued_at_exit_are_delivered(project: Project) -> None:
    # A long flush interval: nothing would be sent before exit but for the exit flush.
    elapsed, code = run_script(project.server.url, project.key, 5.0, 60.0, 7)
    assert code == 0
    assert elapsed < 5.0
    assert len(project.events(prompt_template_name="at-exit")) == 7


FORK_SCRIPT = """
import os, sys, llmtap
from llmtap.fake_provider import FakeProvider
provider = FakeProvider().start()
client = llmtap.Client(api_key="sk", base_url=provider.base_url,
    llmtap={"url": sys.argv[1], "api_key": sys.argv[2], "flush_interval": 0.05})
def call(name):
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": name}],
                                   llmtap={"prompt_template_name": name})
call("parent-before")
pid = os.fork()
if pid == 0:
    # A fresh openai client (its connection pool is the parent's), the same llmtap exporter.
    client = llmtap.Client(api_key="sk", base_url=provider.base_url,
        llmtap={"url": sys.argv[1], "api_key": sys.argv[2], "flush_interval": 0.05})
    call("child")
    client.flush()
    os._exit(0)
call("parent-after")
os.waitpid(pid, 0)
"""


def test_fork_child_gets_its_own_exporter(project: Project) -> None:
    subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, project.server.url, project.key], check=True, timeout=30
    )
    names = sorted(e["prompt_template_name"] for e in project.events())
    assert names == ["child", "parent-after", "parent-before"]


class _Busy(BaseHTTPRequestHandler):
    """Answers every POST 503, noting when and with which key."""

    server: Any

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.seen.append((time.monotonic(), self.headers.get("authorization")))
        body = b'{"ok": false, "error": "busy", "errors": [], "status": 503}'
        self.send_response(503)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_retries_back_off_with_jitter(provider: FakeProvider) -> None:
    busy = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    busy.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=busy.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{busy.server_address[1]}"
    keys = ["k-one", "k-two"]  # two exporters, as two processes would have
    clients = [
        llmtap.Client(
            api_key="sk",
            base_url=provider.base_url,
            llmtap={
                "url": url,
                "api_key": k,
                "spool_max_bytes": 0,
                "flush_interval": 0.01,
                "flush_timeout": 0.1,
            },
        )
        for k in keys
    ]
    try:
        for client in clients:
            timed_call(client, "retry me")
        deadline = time.monotonic() + 20
        while min(sum(a == f"Bearer {k}" for _, a in busy.seen) for k in keys) < 4:
            assert time.monotonic() < deadline, busy.seen
            time.sleep(0.05)
    finally:
        for client in clients:
            client.close()
        busy.shutdown()
        busy.server_close()
    backoffs = [0.25, 0.5, 1.0]  # doubled after each failure
    excess = []
    for k in keys:
        times = [t for t, a in busy.seen if a == f"Bearer {k}"][:4]
        waits = [b - a for a, b in itertools.pairwise(times)]
        # Each wait is its back-off times 1 to 2 (plus a loaded machine's lateness).
        for wait, backoff in zip(waits, backoffs, strict=True):
            assert backoff - 0.01 <= wait <= 2 * backoff + 0.5, (waits, backoff)
        excess.append(sum(w - b for w, b in zip(waits, backoffs, strict=True)))
    # Without jitter both would wait exactly the back-offs, in step; with it, the odds that
    # one exporter's three random parts add up to under 0.1 s are about 1 in 800.
    assert max(excess) > 0.1, excess
