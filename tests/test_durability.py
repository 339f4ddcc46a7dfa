"""Nothing lost, nothing twice: the spool format, fault injection with real processes, and
the server's limits."""

from __future__ import annotations

import struct
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmtap
from llmtap.sdk._record import FeedbackItem
from llmtap.sdk._spool import KIND_EVENTS, KIND_FEEDBACK, Spool, decode, encode
from llmtap.wire import Feedback, truncate_strings

from .conftest import Project
from .faults import chaos_run

# -- the spool format -----------------------------------------------------------------------


@given(st.sampled_from([KIND_EVENTS, KIND_FEEDBACK]), st.binary(max_size=4096))
def test_spool_file_round_trips(kind: int, payload: bytes) -> None:
    assert decode(encode(kind, payload)) == (kind, payload)


@given(st.binary(min_size=1, max_size=2048), st.data())
def test_a_torn_spool_file_is_detected(payload: bytes, data: st.DataObject) -> None:
    whole = encode(KIND_EVENTS, payload)
    cut = data.draw(st.integers(0, len(whole) - 1))
    assert decode(whole[:cut]) is None


@given(st.binary(min_size=1, max_size=2048), st.data())
def test_a_damaged_spool_file_is_detected(payload: bytes, data: st.DataObject) -> None:
    whole = bytearray(encode(KIND_EVENTS, payload))
    at = data.draw(st.integers(0, len(whole) - 1))
    whole[at] ^= data.draw(st.integers(1, 255))
    assert decode(bytes(whole)) is None


def test_a_batch_whose_kind_flipped_is_not_read_as_the_other_kind() -> None:
    # Found by the property above: the CRC covered the payload alone, so events with their
    # kind byte flipped from 1 to 2 read back as feedback.
    whole = bytearray(encode(KIND_EVENTS, b'{"events":[]}'))
    whole[4] ^= KIND_EVENTS ^ KIND_FEEDBACK
    assert decode(bytes(whole)) is None


def test_a_spool_file_of_an_earlier_version_is_still_read() -> None:
    """An upgrade finds the files the previous version spooled (magic LTS1, CRC of the
    payload alone): they are delivered, not taken for damaged ones."""
    payload = b'{"events":[]}'
    earlier = struct.pack(">4sBII", b"LTS1", KIND_EVENTS, len(payload), zlib.crc32(payload))
    assert decode(earlier + payload) == (KIND_EVENTS, payload)
    assert decode(earlier + payload[:-1] + b"!") is None


# -- truncation -------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200)
@given(_json, st.integers(1, 64))
def test_truncation_bounds_every_text_and_names_it(value: object, limit: int) -> None:
    cut: list[str] = []
    out = truncate_strings(value, limit, "", cut)

    def texts(v: object) -> list[str]:
        if isinstance(v, str):
            return [v]
        if isinstance(v, dict):
            return [t for x in v.values() for t in texts(x)]
        if isinstance(v, list):
            return [t for x in v for t in texts(x)]
        return []

    assert all(len(t.encode("utf-8", "surrogatepass")) <= limit for t in texts(out))
    long = [t for t in texts(value) if len(t.encode("utf-8", "surrogatepass")) > limit]
    assert len(cut) == len(long)
    if not long:
        assert out is value


def test_a_huge_field_is_stored_cut_and_marked(project: Project) -> None:
    prompt = "x" * (20 * 1024 * 1024)
    event_id = str(uuid.uuid4())
    event = {
        "id": event_id,
        "api": "chat",
        "status": "ok",
        "started_at": "2026-01-01T00:00:00Z",
        "request": {"messages": [{"role": "user", "content": prompt}]},
        "output_text": "short",
    }
    response = project.server.post(
        "/api/v1/events", project.key, json={"events": [event]}, timeout=60
    )
    assert response.status_code == 200, response.text[:300]
    stored = project.event(event_id)
    assert stored["truncated"] == ["request.messages.0.content"]
    assert len(stored["request"]["messages"][0]["content"]) == 1024 * 1024
    assert stored["output_text"] == "short"


def test_over_the_body_limit_is_413_with_the_limit(project: Project) -> None:
    response = project.server.post(
        "/api/v1/events", project.key, content=b"x" * (33 * 1024 * 1024), timeout=60
    )
    assert response.status_code == 413
    assert str(32 * 1024 * 1024) in response.json()["error"]


# -- fault injection ------------------------------------------------------------------------


@pytest.mark.timeout(300)  # a loaded CI machine may need the flush bound it is given
def test_chaos_loses_nothing_and_stores_nothing_twice(tmp_path: Path) -> None:
    result = chaos_run(tmp_path)
    print("fault injection:", result.as_dict())
    assert result.integrity == "ok"
    assert result.missing == []
    assert result.duplicated == []
    assert result.stored == result.sent
    assert result.counted == result.sent  # derived once each, across the kills


def test_openapi_document_describes_ingest(project: Project) -> None:
    response = httpx2.get(project.server.url + "/api/v1/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert set(doc["paths"]) == {"/api/v1/events", "/api/v1/feedback"}
    assert "truncated" in doc["components"]["schemas"]["Event"]["properties"]


def test_a_retried_feedback_is_stored_once(project: Project, client: llmtap.Client) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "rate me"}]
    )
    key = completion.model_extra["llmtap_feedback_key"]
    assert client.flush()
    # What the SDK sends carries an id of its own (spooled, so retried as it was).
    sdk_body = FeedbackItem(key, 0.25, None).body
    assert Feedback.model_validate(sdk_body).id
    post = project.server.post
    first = post("/api/v1/feedback", project.key, json=sdk_body)
    again = post("/api/v1/feedback", project.key, json=sdk_body)
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    other = post("/api/v1/feedback", project.key, json={**sdk_body, "id": str(uuid.uuid4())})
    assert other.json() == {"ok": True, "duplicate": False}
    events = project.events()
    assert [f["rating"] for f in project.event(events[0]["id"])["feedback"]] == [0.25, 0.25]
    stats = project.server.get("/api/v1/stats", project.key).json()
    assert stats["groups"][0]["ratings"] == 2, stats


def test_a_dead_writers_half_written_file_is_cleaned_and_a_live_ones_kept(tmp_path: Path) -> None:
    """A batch is written to a temporary file, then renamed: a writer that died between the two
    leaves the temporary file, which the next adoption removes; one still writing keeps it."""
    spool = Spool(tmp_path / "spool", 1 << 20)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        left = spool.directory / f".tmp-{int(dead.stdout)}-abcd1234"
        writing = spool.directory / f".tmp-{live.pid}-abcd1234"
        for path in (left, writing):
            path.write_bytes(b"half a batch")
        assert spool.adopt() == []
        assert not left.exists() and writing.exists()
    finally:
        live.kill()
        live.wait()
