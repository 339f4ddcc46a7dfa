"""What a killed process leaves in the spool, the next process sends: SIGTERM while the server
is down loses nothing already spooled, and nothing is stored twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from .conftest import LLMTAP, Project, Server, free_port, stop_server, wait_for

SCRIPT = """
import sys, time, llmtap
from llmtap.fake_provider import FakeProvider
url, key, run, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
provider = FakeProvider().start()
client = llmtap.Client(api_key="sk", base_url=provider.base_url, max_retries=0,
                       llmtap={"url": url, "api_key": key, "flush_interval": 0.02})
for i in range(n):
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                   llmtap={"event_id": f"{run}-{i}", "prompt_template_name": run})
if sys.argv[5] == "wait":
    time.sleep(1.0)  # long enough for every batch to be built and spooled
    print("spooled", flush=True)
    time.sleep(3600)  # until SIGTERM
print("flushed", client.flush(30), flush=True)
"""


def run_client(
    spool: Path, url: str, key: str, run: str, n: int, mode: str
) -> subprocess.Popen[str]:
    env = {**os.environ, "LLMTAP_SPOOL_DIR": str(spool)}
    env.pop("LLMTAP_RAISE_INTERNAL_ERRORS", None)  # a user's process logs, it does not raise
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), url, key, run, str(n), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigterm_with_server_down_then_next_process_delivers(
    tmp_path: Path, project: Project
) -> None:
    spool, run = tmp_path / "spool", uuid.uuid4().hex[:8]
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # nobody listens here yet: the server is down

    down = run_client(spool, url, project.key, run, 40, "wait")
    assert down.stdout is not None
    assert down.stdout.readline().strip() == "spooled"
    down.send_signal(signal.SIGTERM)
    down.communicate(timeout=30)
    assert down.returncode == -signal.SIGTERM
    assert any(p.is_file() for p in spool.rglob("*")), "nothing was spooled"

    # The server comes up at that address (a second process on the session's store), and the
    # application starts again with the same spool.
    process = subprocess.Popen(
        [*LLMTAP, "serve", "--db", str(project.server.db), "--port", str(port)],
        stderr=subprocess.DEVNULL,
    )
    second = Server(url, project.server.db, process)
    try:
        wait_for(url + "/healthz")
        up = run_client(spool, url, project.key, f"{run}-next", 1, "flush")
        out, _ = up.communicate(timeout=60)
        assert "flushed True" in out
    finally:
        stop_server(second)
    stored = [e["id"] for e in project.events(prompt_template_name=run, limit="100")]
    assert sorted(stored) == sorted(f"{run}-{i}" for i in range(40))
    assert not [p for p in spool.rglob("*") if p.is_file()], "delivered batches stay spooled"
