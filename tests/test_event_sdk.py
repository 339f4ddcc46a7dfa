"""What sent each event (the ``sdk`` column): the llmtap SDK, an OpenTelemetry instrumentation
(its scope), or nothing said. The events list, its page and the stats filter and
group by it, on each store backend; a store made before the column has it filled in from the
bodies it already holds."""

from __future__ import annotations

import html
import re
import sqlite3
import uuid
from typing import Any

import pytest

from llmtap.server.ingest import prepare
from llmtap.store import EventFilter, KeyInfo
from llmtap.wire import SDK_NAME, Event, make_event

from ._stores import STORE_BACKENDS, StoreBackend
from .conftest import Project, server_on_each_backend
from .test_dashboard_http import login
from .test_otlp_hostile import LEGACY, _answer, _body, _post, _spans
from .test_server import event, post_events

server = pytest.fixture(scope="module", params=STORE_BACKENDS, name="server")(
    server_on_each_backend
)

OTHER = {"name": "acme-tracer", "version": "0.9"}


def test_filter_and_group_by_what_sent_the_events(project: Project) -> None:
    ours = [event(sdk={"name": SDK_NAME, "version": "1.0"}) for _ in range(3)]
    theirs = [event(sdk=OTHER) for _ in range(2)]
    unsaid = [event()]
    assert post_events(project, [*ours, *theirs, *unsaid]).json()["stored"] == 6
    otlp_answer = _answer(_post(project, _body(_spans({"_name": "llm", **LEGACY}))))
    assert otlp_answer.partial_success.rejected_spans == 0

    listed = {e["id"] for e in project.events(sdk=SDK_NAME)}
    assert listed == {e["id"] for e in ours}
    assert {e["id"] for e in project.events(sdk="acme-tracer")} == {e["id"] for e in theirs}
    otlp = project.events(sdk="hand.made")  # the scope of the test's tracer
    assert len(otlp) == 1 and otlp[0]["sdk"] == {"name": "hand.made", "version": "1.2.3"}
    assert project.events(sdk="nobody") == []

    stats = project.server.get("/api/v1/stats", project.key, group_by="sdk").json()
    counts = {g["key"]["sdk"]: g["count"] for g in stats["groups"]}
    assert counts == {SDK_NAME: 3, "acme-tracer": 2, "hand.made": 1, None: 1}
    only = project.server.get("/api/v1/stats", project.key, sdk="acme-tracer").json()
    assert only["groups"][0]["count"] == 2


def test_the_event_page_links_to_the_events_of_its_sender(project: Project) -> None:
    theirs = [event(sdk=OTHER) for _ in range(2)]
    mine = event(sdk={"name": SDK_NAME, "version": "1.0"})
    post_events(project, [*theirs, mine])
    name = project.events()[0]["project"]
    with login(project.server) as browser:
        page = browser.get(f"/events/{theirs[0]['id']}", params={"project": name})
        assert page.status_code == 200, page.text
        link = re.search(r'<a class="badge"[^>]* href="([^"]+)">acme-tracer 0.9</a>', page.text)
        assert link, page.text
        listed = browser.get(html.unescape(link.group(1)))
        assert listed.status_code == 200
        assert 'name="sdk" value="acme-tracer"' in listed.text
        assert theirs[1]["id"] in listed.text and mine["id"] not in listed.text


def _rows(key: KeyInfo, sdk: dict[str, str] | None, n: int) -> list[tuple[Any, ...]]:
    fields = {"sdk": sdk} if sdk else {}
    return [
        prepare(
            Event.model_validate(
                make_event(
                    id=str(uuid.uuid4()),
                    api="chat",
                    status="ok",
                    model="m",
                    started_at="2026-05-01T12:00:00+00:00",
                    request={"messages": []},
                    **fields,
                )
            ),
            key,
            0,
            None,
        )
        for _ in range(n)
    ]


def test_a_store_made_before_the_column_gets_it_from_the_bodies(
    store_backend: StoreBackend,
) -> None:
    db = store_backend.fresh_db()
    store = store_backend.open(db)
    project_id = store.ensure_project("p")
    key = KeyInfo(1, project_id, "p", "dev", frozenset({"ingest"}), False)
    # A NUL in a body (escaped in its JSON) must not stop the upgrade: PostgreSQL's json
    # cannot hand such a text out.
    hostile = {"name": "bad\x00name", "version": "1"}
    store.insert_events([*_rows(key, OTHER, 2), *_rows(key, None, 1), *_rows(key, hostile, 1)])
    store_backend.close(store)
    # Back to the schema before the column: drop it, and forget the step that made it.
    step = "m014_event_sdk" if store_backend.name == "sqlite" else "pg008_event_sdk"
    _raw(store_backend.name, db, "ALTER TABLE events DROP COLUMN sdk")
    _raw(store_backend.name, db, f"DELETE FROM _llmtap_migrations WHERE name = '{step}'")

    again = store_backend.open(db)
    assert [e["sdk"] for e in again.list_events(project_id, EventFilter(sdk="acme-tracer"))[0]] == [
        OTHER,
        OTHER,
    ]
    made = make_event()["sdk"]["name"]
    assert again.list_events(project_id, EventFilter(sdk=made))[0] != []


def _raw(backend: str, db: str, sql: str) -> None:
    if backend == "sqlite":
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute(sql)
        conn.close()
    else:
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(sql)
