"""The server's HTTP API against a real ``llmtap serve``: idempotent batches, per-event
errors, keys and projects, pagination and filters, and one error shape for every failure."""

from __future__ import annotations

import gzip
import json
import socket
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ._stores import STORE_BACKENDS
from .conftest import Project, Server, server_on_each_backend, start_server, stop_server

# Every test here runs on a server of each store backend.
server = pytest.fixture(scope="module", params=STORE_BACKENDS, name="server")(
    server_on_each_backend
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def event(**fields: Any) -> dict[str, Any]:
    base = {
        "id": str(uuid.uuid4()),
        "api": "chat",
        "status": "ok",
        "model": "gpt-4o-mini",
        "started_at": T0.isoformat(),
        "request": {"messages": []},
    }
    return {**base, **fields}


def post_events(project: Project, events: list[dict[str, Any]]) -> Any:
    return project.server.post("/api/v1/events", project.key, json={"events": events})


def assert_error_shape(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False
    assert body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["errors"], list)
    return body  # type: ignore[no-any-return]


def test_retried_batch_is_stored_once(project: Project) -> None:
    batch = [event(), event()]
    first = post_events(project, batch).json()
    again = post_events(project, batch).json()
    assert (first["stored"], first["duplicates"]) == (2, 0)
    assert (again["stored"], again["duplicates"]) == (0, 2)
    assert len(project.events()) == 2


def test_a_bad_event_is_rejected_alone(project: Project) -> None:
    good = [event(), event()]
    bad = event(status="weird")
    response = post_events(project, [good[0], bad, "not an object", good[1]])
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    assert body["accepted"] == 2
    assert [e["index"] for e in body["errors"]] == [1, 2]
    assert body["errors"][0]["id"] == bad["id"]
    assert "status" in body["errors"][0]["error"]
    assert {e["id"] for e in project.events()} == {g["id"] for g in good}


def test_all_bad_batch_is_a_400(project: Project) -> None:
    body = assert_error_shape(post_events(project, [event(started_at="yesterday")]), 400)
    assert "started_at" in body["errors"][0]["error"]


def test_names_are_short_and_never_cut(project: Project) -> None:
    """A model, provider, error type, SDK or attribute name is a name: past its bound the
    event is refused, saying which (texts are cut to max_field_bytes, names are not)."""
    long = "m" * 513
    refused = [
        event(model=long),
        event(provider=long),
        event(status="error", error={"type": long}),
        event(sdk={"name": "x" * 201, "version": "1"}),
        event(attributes={"k" * 201: 1}),
        event(attributes={f"k{i}": i for i in range(1_001)}),
    ]
    body = assert_error_shape(post_events(project, refused), 400)
    assert [e["index"] for e in body["errors"]] == list(range(len(refused)))
    fine = event(model="m" * 512, attributes={"k" * 200: 1})
    assert post_events(project, [fine]).json()["stored"] == 1


def test_an_event_from_further_than_a_day_ahead_is_refused(project: Project) -> None:
    """Retention purges by an event's start: one stamped in the future would outlive it. A
    clock a few hours fast is still taken."""
    now = datetime.now(timezone.utc)
    ahead = [event(started_at=(now + timedelta(days=d)).isoformat()) for d in (1.01, 3650)]
    skewed = event(started_at=(now + timedelta(hours=20)).isoformat())
    body = post_events(project, [*ahead, skewed]).json()
    assert (body["stored"], body["rejected"]) == (1, 2)
    assert [e["id"] for e in body["errors"]] == [e["id"] for e in ahead]
    assert all("more than a day after the server's clock" in e["error"] for e in body["errors"])
    assert [e["id"] for e in project.events()] == [skewed["id"]]


def test_a_batch_of_junk_is_answered_in_proportion(project: Project) -> None:
    """A leaked ingest key's batch of empty objects: the answer counts them and lists the
    first hundred, not one error each (a 300 KB body was a 13 MB answer); past 10,000
    events a request is refused whole."""
    body = assert_error_shape(post_events(project, [{}] * 5_000), 400)
    assert body["rejected"] == 5_000 and len(body["errors"]) == 100
    assert [e["index"] for e in body["errors"]] == list(range(100))
    mixed = post_events(project, [event(), *[{}] * 300]).json()
    assert (mixed["accepted"], mixed["rejected"], len(mixed["errors"])) == (1, 300, 100)
    assert_error_shape(post_events(project, [{}] * 10_001), 413)
    assert_error_shape(post_events(project, [event() for _ in range(10_001)]), 413)


@pytest.mark.parametrize(
    "payload, fragment",
    [
        (b"{not json", "malformed JSON"),
        (b"", "empty"),
        (b'{"events": 3}', "expected"),
        (b"[1, 2]", "expected"),
        (b'"events"', "expected"),
    ],
)
def test_bad_bodies_get_a_clear_400(project: Project, payload: bytes, fragment: str) -> None:
    response = project.server.post("/api/v1/events", project.key, content=payload)
    assert fragment in assert_error_shape(response, 400)["error"]


def test_gzip_body_accepted(project: Project) -> None:
    body = gzip.compress(json.dumps({"events": [event()]}).encode())
    response = project.server.post(
        "/api/v1/events", project.key, content=body, headers={"content-encoding": "gzip"}
    )
    assert response.json()["stored"] == 1


def test_keys(server: Server, project: Project) -> None:
    assert_error_shape(server.post("/api/v1/events", None, json={"events": []}), 401)
    assert_error_shape(server.post("/api/v1/events", "lt_wrong", json={"events": []}), 401)
    assert_error_shape(server.get("/api/v1/events", "lt_wrong"), 401)

    post_events(project, [mine := event()])
    other = Project(server.new_key(), server)
    assert other.events() == []
    assert_error_shape(server.get(f"/api/v1/events/{mine['id']}", other.key), 404)
    # The same id in another project is that project's own event, not a duplicate.
    assert post_events(other, [mine]).json()["stored"] == 1


def test_key_decides_project_and_environment(server: Server) -> None:
    name = f"p-{uuid.uuid4().hex[:6]}"
    prod = Project(server.new_key(name, "prod"), server)
    dev = Project(server.new_key(name, "dev"), server)
    post_events(prod, [event(model="a")])
    post_events(dev, [event(model="b")])
    assert {(e["model"], e["environment"], e["project"]) for e in dev.events()} == {
        ("a", "prod", name),
        ("b", "dev", name),
    }
    assert [e["model"] for e in dev.events(environment="prod")] == ["a"]


def test_pagination_newest_first(project: Project) -> None:
    sent = [event(started_at=(T0 + timedelta(seconds=i)).isoformat()) for i in range(25)]
    # Two events at the same instant must still page cleanly.
    sent.append(event(started_at=(T0 + timedelta(seconds=7)).isoformat()))
    post_events(project, sent)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": "10", **({"cursor": cursor} if cursor else {})}
        body = project.server.get("/api/v1/events", project.key, **params).json()
        seen += body["events"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len({e["id"] for e in seen}) == 26
    times = [e["started_at"] for e in seen]
    assert times == sorted(times, reverse=True)


def test_filters(project: Project) -> None:
    post_events(
        project,
        [
            event(model="a", prompt_template_name="t1", chat_id="c1", attributes={"tier": "pro"}),
            event(model="b", status="error", error={"type": "E", "message": "m"}, chain_id="ch"),
            event(
                model="a", started_at=(T0 + timedelta(days=2)).isoformat(), attributes={"tier": 3}
            ),
        ],
    )

    def models(**params: str) -> list[str]:
        return sorted(e["model"] for e in project.events(**params))

    assert models(model="a") == ["a", "a"]
    assert models(status="error") == ["b"]
    assert models(prompt_template_name="t1") == ["a"]
    assert models(chat_id="c1") == ["a"]
    assert models(chain_id="ch") == ["b"]
    assert models(**{"attributes.tier": "pro"}) == ["a"]
    assert models(**{"attributes.tier": "3"}) == ["a"]
    assert models(**{"from": (T0 + timedelta(days=1)).isoformat()}) == ["a"]
    assert models(to=(T0 + timedelta(days=1)).isoformat()) == ["a", "b"]


def test_bad_query_parameters(project: Project) -> None:
    get = project.server.get
    assert (
        "modle" in assert_error_shape(get("/api/v1/events", project.key, modle="x"), 400)["error"]
    )
    assert_error_shape(get("/api/v1/events", project.key, limit="0"), 400)
    assert_error_shape(get("/api/v1/events", project.key, cursor="garbage!"), 400)
    assert_error_shape(get("/api/v1/events", project.key, **{"from": "soon"}), 400)


def test_unknown_route_and_method(server: Server, project: Project) -> None:
    assert_error_shape(server.get("/api/v1/nothing", project.key), 404)
    assert_error_shape(server.post("/healthz", None), 405)


def test_feedback_validation(project: Project) -> None:
    post = project.server.post
    assert post("/api/v1/feedback", project.key, json={"feedback_key": "k", "rating": 1}).json()[
        "ok"
    ]
    assert_error_shape(
        post("/api/v1/feedback", project.key, json={"feedback_key": "k", "rating": 1.5}), 400
    )
    assert_error_shape(post("/api/v1/feedback", project.key, json={"feedback_key": "k"}), 400)
    # Not a number, or nothing said: refused (had been stored as 1.0, 0.5 and a blank row).
    for wrong in ({"rating": True}, {"rating": "0.5"}, {"better_response": ""}):
        sent = post("/api/v1/feedback", project.key, json={"feedback_key": "k", **wrong})
        assert_error_shape(sent, 400)
    said = {"feedback_key": "k", "rating": 0, "better_response": ""}
    assert post("/api/v1/feedback", project.key, json=said).json()["ok"]


def test_an_event_reads_its_newest_feedback_within_a_bound(project: Project) -> None:
    """Anyone with the key can add feedback to an event, each up to a megabyte: its read
    shows the newest 100 (and 2 million characters at most) and counts the rest."""
    sent = event(feedback_key="much")
    post_events(project, [sent])
    post = project.server.post
    for i in range(103):
        assert post(
            "/api/v1/feedback", project.key, json={"feedback_key": "much", "rating": i / 200}
        ).json()["ok"]
    read = project.event(sent["id"])
    assert [f["rating"] for f in read["feedback"]] == [i / 200 for i in range(3, 103)]
    assert read["feedback_left_out"] == 3
    big = {"feedback_key": "much", "better_response": "b" * 900_000}
    for _ in range(3):
        assert post("/api/v1/feedback", project.key, json=big).json()["ok"]
    read = project.event(sent["id"])
    assert len(read["feedback"]) == 3 and read["feedback_left_out"] == 103
    plain = event()
    post_events(project, [plain])
    assert "feedback_left_out" not in project.event(plain["id"])


def test_healthz(server: Server) -> None:
    import httpx2

    assert httpx2.get(server.url + "/healthz").json()["ok"] is True


def test_body_limit_and_loopback_default(tmp_path: Path) -> None:
    srv = start_server(tmp_path, env={"LLMTAP_MAX_BODY_BYTES": "2000"})
    try:
        project = Project(srv.new_key(), srv)
        big = event(request={"messages": [{"role": "user", "content": "x" * 5000}]})
        assert "2000" in assert_error_shape(post_events(project, [big]), 413)["error"]
        assert post_events(project, [event()]).json()["stored"] == 1
        # Listening on 127.0.0.1 only: /proc/net/tcp lists the bound address in hex.
        port = int(srv.url.rsplit(":", 1)[1])
        listening = [
            line.split()[1]
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if line.split()[3] == "0A"
        ]
        assert f"0100007F:{port:04X}" in listening
        assert f"00000000:{port:04X}" not in listening
    finally:
        stop_server(srv)


def test_a_client_that_hangs_up_mid_body_is_no_server_error(tmp_path: Path) -> None:
    """A process that exits while sending (the SDK's exporter at exit, say) leaves a request
    with half a body: the server neither logs a traceback nor stops serving."""
    srv = start_server(tmp_path)
    try:
        project = Project(srv.new_key(), srv)
        port = int(srv.url.rsplit(":", 1)[1])
        body = json.dumps({"events": [event()]}).encode()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"POST /api/v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                + f"authorization: Bearer {project.key}\r\n".encode()
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body[: len(body) // 2]
            )
            time.sleep(0.3)  # the server is reading the body when the client goes
        time.sleep(0.3)
        assert post_events(project, [event()]).json()["stored"] == 1
    finally:
        log = stop_server(srv)
    assert "Traceback" not in log, log


def test_templates_are_found_by_revision_and_a_bad_one_is_refused(project: Project) -> None:
    sent = event(
        prompt_template_name="by-revision",
        template_text="find me {q}",
        template_params={"q": "x"},
        api="completion",
    )
    post_events(project, [sent])
    revision = project.event(sent["id"])["template_revision"]
    found = project.server.get("/api/v1/templates", project.key, revision=revision[:5]).json()
    assert [(t["name"], [r["revision"] for r in t["revisions"]]) for t in found["templates"]] == [
        ("by-revision", [revision])
    ]
    for bad in ("XYZ", "", "a" * 65):
        answer = project.server.get("/api/v1/templates", project.key, revision=bad)
        assert_error_shape(answer, 400)
