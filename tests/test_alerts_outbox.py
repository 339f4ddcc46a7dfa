"""A notification survives its process (issue 16): the state change and the notification are
saved together, so a ``llmtap serve`` killed (SIGKILL) after saving a firing state and before
its webhook took the notification leaves it in the database, and the next process delivers it,
once. The window is made wide honestly: the receiver is down when the rule fires, so the first
attempt fails and the next one waits for the retry delay; the process is killed in that wait.
On every backend."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ._receivers import Webhook, wait_until
from ._stores import STORE_BACKENDS
from .conftest import Project, start_server, stop_server
from .test_alerts import ago, create, events_of, send
from .test_server import event

ENV = {
    "LLMTAP_ALERT_INTERVAL": "0.5",
    "LLMTAP_ALERT_DELAY": "0",
    "LLMTAP_ALERT_ALLOW_NETWORKS": "127.0.0.0/8",
    # The wait before the second attempt: 3 to 6 s, time enough to kill the process in it.
    "LLMTAP_ALERT_RETRY_DELAY": "3",
    "LLMTAP_ALERT_TIMEOUT": "1",
}


@pytest.mark.parametrize("backend", STORE_BACKENDS)
def test_a_process_killed_before_sending_leaves_the_notification_to_the_next(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = None
    if backend == "postgresql":
        db = request.getfixturevalue("postgres").fresh_database()
    down = Webhook()
    down.close()  # nobody listens on its port for now
    first = start_server(tmp_path, ENV, db)
    second = None
    back = None
    try:
        project = Project(first.new_key(), first)
        channel = {"kind": "webhook", "name": "ops", "url": down.url}
        create(project, "/api/v1/alert-channels", channel)
        rule = {"name": "any", "measure": "requests", "window": "1h", "threshold": 0}
        create(project, "/api/v1/alerts", rule)
        send(project, [event(started_at=ago(minutes=5))])

        def history() -> list[dict[str, Any]]:
            answer = project.server.get("/api/v1/alerts/any", project.key)
            return answer.json()["history"]  # type: ignore[no-any-return]

        wait_until(lambda: [h for h in history() if h["event"] == "failed"], what="attempt 1")
        first.process.kill()  # SIGKILL: no shutdown of any kind
        first.process.wait()
        back = Webhook(down.port)
        second = start_server(tmp_path, ENV, str(first.db))
        project = Project(project.key, second)
        wait_until(lambda: events_of(back, "any", "firing"), timeout=40, what="the delivery")
        time.sleep(3)  # more cycles of the second process: nothing is sent again
        (body,) = [b for b in back.bodies() if b["name"] == "any"]
        entries = list(reversed(history()))  # oldest first
        assert [(h["event"], h["detail"].get("attempt")) for h in entries] == [
            ("firing", None),
            ("failed", 1),
            ("sent", 2),
        ]
        assert body["id"] == entries[0]["detail"]["id"] and body["event"] == "firing"
        assert "refused" in entries[1]["detail"]["said"].lower()
    finally:
        for server in (first, second):
            if server is not None and server.process.poll() is None:
                stop_server(server)
        if back is not None:
            back.close()
