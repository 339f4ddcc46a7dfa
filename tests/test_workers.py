"""Several clients and ``llmtap serve --workers 2`` on one SQLite file: no "database is
locked", nothing lost, nothing stored twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx2

from llmtap.wire import make_event

from .conftest import wait_for
from .faults import LLMTAP, audit, free_port, new_key, start_client


def _batch(run: str, thread: int, index: int, size: int) -> bytes:
    now = datetime.now(timezone.utc).isoformat()
    events = [
        make_event(
            id=f"{run}-t{thread}-{index}-{i}",
            api="chat",
            model="gpt-4o-mini",
            request={"messages": [{"role": "user", "content": f"hello {i}"}]},
            status="ok",
            started_at=now,
            latency_ms=12.5,
            usage={"input_tokens": 3, "output_tokens": 5, "total_tokens": 8},
            attributes={"thread": thread},
        )
        for i in range(size)
    ]
    return json.dumps({"events": events}).encode()


def test_two_workers_several_clients_one_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "workers.db"
    key = new_key(db, "workers")
    run = uuid.uuid4().hex[:8]
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        server = subprocess.Popen(
            [*LLMTAP, "serve", "--db", str(db), "--port", str(port), "--workers", "2"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/healthz", timeout=30)
        # SDK clients in processes of their own, as applications would be...
        clients = [
            start_client(url, key, f"{run}-c{c}", 300, 0, 0.0, "flush", tmp_path / f"spool{c}")
            for c in range(3)
        ]
        # ...and raw posts beside them, whose every answer is checked (the SDK would retry a
        # 5xx and hide it). Each batch is posted twice, to whichever worker takes it.
        failures: list[str] = []
        answers: list[dict[str, int]] = []

        def poster(thread: int) -> None:
            headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
            with httpx2.Client(timeout=60) as http:
                for index in range(15):
                    body = _batch(run, thread, index, 50)
                    for _ in range(2):
                        try:
                            r = http.post(url + "/api/v1/events", content=body, headers=headers)
                        except httpx2.HTTPError as exc:
                            failures.append(f"thread {thread}, batch {index}: {exc!r}")
                            continue
                        if r.status_code != 200:
                            failures.append(f"{r.status_code} {r.text[:200]}")
                        else:
                            answers.append(r.json())

        threads = [threading.Thread(target=poster, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for client in clients:
            out, _ = client.communicate(timeout=120)
            assert client.returncode == 0, out
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    server_log = log.read_text()
    assert failures == [], server_log  # the server's side of a failed post, if any
    assert "locked" not in server_log and "Traceback" not in server_log, server_log
    assert sum(a["stored"] for a in answers) == 4 * 15 * 50
    assert sum(a["duplicates"] for a in answers) == 4 * 15 * 50
    expected = {f"{run}-c{c}-p-{i}" for c in range(3) for i in range(300)}
    expected |= {f"{run}-t{t}-{b}-{i}" for t in range(4) for b in range(15) for i in range(50)}
    result = audit(db, expected, run)
    assert (result.sent, result.stored) == (len(expected), len(expected))
    assert result.missing == [] and result.duplicated == []
    assert result.integrity == "ok"
