"""One schema: what the real SDK sends is what the server's validator accepts."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

import llmtap
from llmtap.fake_provider import FakeProvider
from llmtap.server.ingest import prepare
from llmtap.store import KeyInfo
from llmtap.store._common import EVENT_COLUMNS
from llmtap.wire import (
    WIRE_VERSION,
    Event,
    Feedback,
    make_event,
    new_feedback_key,
    new_id,
    random_bytes,
    template_revision,
)


class _Capture(BaseHTTPRequestHandler):
    bodies: list[tuple[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.bodies.append((self.path, json.loads(body)))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def capture() -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    """A server that keeps what the exporter posts, as sent."""
    _Capture.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Capture.bodies
    server.shutdown()
    server.server_close()


def test_sdk_output_passes_the_server_validator(provider: FakeProvider, capture: Any) -> None:
    url, bodies = capture
    client = llmtap.Client(
        api_key="sk",
        base_url=provider.base_url,
        max_retries=0,
        llmtap={"url": url, "api_key": "k", "flush_interval": 0.01},
    )
    out = client.chat.completions.create(
        model="m",
        messages=llmtap.TemplateChat([{"role": "user", "content": "hi {x}"}], {"x": object()}),
        llmtap={"chain_id": "c", "attributes": {"n": 1.5, "nested": {"a": [1]}}},
    )
    client.completions.create(model="m", prompt="plain")
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "[[status:503]]"}]
        )
    client.send_feedback(feedback_key=out.model_extra["llmtap_feedback_key"], rating=1)
    assert client.flush(5)

    events = [e for path, body in bodies if path == "/api/v1/events" for e in body["events"]]
    assert len(events) == 3
    for raw in events:
        event = Event.model_validate(raw)
        assert event.wire_version == WIRE_VERSION
    assert {e["status"] for e in events} == {"ok", "error"}
    feedback = [body for path, body in bodies if path == "/api/v1/feedback"]
    assert [Feedback.model_validate(f).rating for f in feedback] == [1]


def test_template_revision_is_stable_and_content_sensitive() -> None:
    chat = [{"role": "user", "content": "hi {name}"}]
    assert template_revision(chat) == template_revision([dict(reversed(chat[0].items()))])
    assert template_revision(chat) != template_revision([{"role": "user", "content": "yo {name}"}])
    assert template_revision("a") != template_revision("b")
    assert template_revision(None) is None


def test_long_templates_that_differ_past_the_field_limit_are_two_revisions() -> None:
    """The revision is of the template as sent, taken before a long text is cut."""
    key = KeyInfo(1, 1, "p", "dev")
    revisions = set()
    for language in ("English", "French"):
        event = Event.model_validate(
            make_event(
                id=f"e-{language}",
                api="completion",
                status="ok",
                started_at="2026-05-01T12:00:00+00:00",
                template_text="You are a helpful assistant. " * 100
                + f"Answer in {language}: {{q}}",
                template_params={"q": "hi"},
            )
        )
        row = prepare(event, key, 0, 2000)
        assert event.truncated == ["template_text"]  # cut, as before
        revisions.add(row[EVENT_COLUMNS.index("template_revision")])
    assert len(revisions) == 2


def test_validator_names_the_bad_field() -> None:
    with pytest.raises(ValueError, match="latency_ms"):
        Event.model_validate(
            {
                "id": "x",
                "api": "chat",
                "status": "ok",
                "started_at": "2026-01-01T00:00:00Z",
                "latency_ms": -1,
            }
        )
    with pytest.raises(ValueError, match="surprise"):
        Event.model_validate(
            {
                "id": "x",
                "api": "chat",
                "status": "ok",
                "started_at": "2026-01-01T00:00:00Z",
                "surprise": 1,
            }
        )


def test_model_and_template_names_are_bounded_in_bytes() -> None:
    """512 characters, and 1,024 bytes of UTF-8: the two name an aggregate's dimensions in one
    PostgreSQL index row (2,704 bytes at most)."""
    base = {"id": "x", "api": "chat", "status": "ok", "started_at": "2026-01-01T00:00:00Z"}
    for field in ("model", "prompt_template_name"):
        for fits in ("m" * 512, "😀" * 256, "é" * 512):
            assert getattr(Event.model_validate({**base, field: fits}), field) == fits
        with pytest.raises(ValueError, match=f"{field}(.|\n)*1028 bytes in UTF-8: 1024 at most"):
            Event.model_validate({**base, field: "😀" * 257})


def test_new_ids_are_uuid7_and_sort_by_time() -> None:
    before = time.time_ns() // 1_000_000
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    after = time.time_ns() // 1_000_000
    for made in (first, second):
        assert made.version == 7
        assert made.variant == "specified in RFC 4122"
        assert before <= made.int >> 80 <= after
    assert str(first) < str(second)
    assert len({new_id() for _ in range(10_000)}) == 10_000
    at = 1_767_225_600.123  # 2026-01-01T00:00:00.123Z: an event's start, when given
    assert new_id(at).int >> 80 == 1_767_225_600_123


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_random_bytes_never_repeat_across_threads_or_a_fork() -> None:
    """The bytes come from a buffer of ``os.urandom``: no two takers, and not a forked child
    and its parent, may ever be handed the same slice."""
    taken: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: taken.extend(random_bytes(16) for _ in range(2_000)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(taken)) == len(taken) == 8_000

    random_bytes(16)  # the buffer holds unread bytes now, which the child must not reuse
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: hand its next bytes to the parent, and leave at once
        os.write(write, random_bytes(16))
        os._exit(0)
    os.close(write)
    child = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 16
    assert child != random_bytes(16)


def test_feedback_keys_are_secret_hex_that_sort_by_time() -> None:
    early, late = new_feedback_key(1_767_225_600.0), new_feedback_key(1_767_225_601.0)
    assert re.fullmatch("[0-9a-f]{32}", early) and re.fullmatch("[0-9a-f]{32}", late)
    assert early < late  # the store's index of keys grows at its end
    assert int(early[:12], 16) == 1_767_225_600_000
    same_moment = {new_feedback_key(1_767_225_600.0)[12:] for _ in range(10_000)}
    assert len(same_moment) == 10_000  # 80 random bits each, never repeated
