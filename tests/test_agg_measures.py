"""The aggregates' cached and reasoning tokens and low ratings (issues 14, 16), on every
backend: the stats answer what was posted, from the aggregates and from the events alike,
while ratings come and go (a high rating, then a low one, then a high one again; feedback
before its event; the event deleted), and a store upgraded from before these columns gets
them filled from its events and feedback."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import psycopg

from llmtap.server.ingest import prepare
from llmtap.store import EventFilter, KeyInfo, Store
from llmtap.wire import Event, make_event

from ._stores import StoreBackend

T0 = "2026-05-01T12:00:30+00:00"  # half a minute in: stats read the edges from the events


def _row(key: KeyInfo, i: int, feedback_key: str, **usage: int) -> tuple[Any, ...]:
    event = Event.model_validate(
        make_event(
            id=str(uuid.uuid4()),
            api="chat",
            provider="openai",
            model="gpt-4o-mini" if i % 2 else "gpt-4o",
            request={"messages": [{"role": "user", "content": f"question {i}"}]},
            output_text="an answer",
            status="ok",
            started_at=T0,
            latency_ms=100.0 + i,
            usage={"input_tokens": 100, "output_tokens": 50, **usage},
            feedback_key=feedback_key,
            attributes={"user": f"u{i % 2}"},
        )
    )
    return prepare(event, key, 0, None)


def _answers(store: Store, project_id: int, group_by: list[str]) -> list[dict[str, Any]]:
    """The stats of the whole range from the aggregates, then the same from the events (a
    text filter every event matches makes the store read the events)."""
    whole = EventFilter()
    from_events = EventFilter(q="answer")
    out = []
    for f in (whole, from_events):
        answer = store.stats(project_id, f, group_by)
        out.append(answer)
    assert [a["source"] for a in out] == ["aggregates", "events"]
    return out


def _totals(store: Store, project_id: int, group_by: list[str] | None = None) -> dict[Any, Any]:
    """Per group: (cached, reasoning, ratings, low, share), the same from both sources."""
    group_by = group_by or []
    seen = []
    for answer in _answers(store, project_id, group_by):
        seen.append(
            {
                tuple(g["key"][k] for k in group_by): (
                    g["cached_tokens"],
                    g["reasoning_tokens"],
                    g["ratings"],
                    g["low_ratings"],
                    g["low_rating_share"],
                )
                for g in answer["groups"]
            }
        )
    assert seen[0] == seen[1]
    return seen[0]


def test_measures_follow_events_and_ratings(store_backend: StoreBackend) -> None:
    store = store_backend.new()
    project_id = store.ensure_project("p")
    key = KeyInfo(1, project_id, "p", "dev")
    early = "fk-early"
    store.insert_feedback(project_id, early, 0.1, None)  # before its event: low
    store.insert_events(
        [
            _row(key, 0, "fk-0", cached_tokens=40, reasoning_tokens=7),
            _row(key, 1, "fk-1", cached_tokens=5),
            _row(key, 2, early, reasoning_tokens=11),
            _row(key, 3, "fk-3"),
        ]
    )
    assert _totals(store, project_id) == {(): (45, 18, 1, 1, 1.0)}
    assert _totals(store, project_id, ["attributes.user"]) == {
        ("u0",): (40, 18, 1, 1, 1.0),
        ("u1",): (5, 0, 0, 0, None),
    }
    # A high rating, then a low one, then a high one again: each is a rating (as the average
    # counts them); the low count follows.
    store.insert_feedback(project_id, "fk-1", 0.9, None)
    assert _totals(store, project_id, ["model"])[("gpt-4o-mini",)] == (5, 0, 1, 0, 0.0)
    store.insert_feedback(project_id, "fk-1", 0.2, None)
    assert _totals(store, project_id, ["model"])[("gpt-4o-mini",)] == (5, 0, 2, 1, 0.5)
    store.insert_feedback(project_id, "fk-1", 0.7, None)  # the cut itself is not low
    assert _totals(store, project_id, ["model"])[("gpt-4o-mini",)] == (5, 0, 3, 1, 1 / 3)
    assert _totals(store, project_id) == {(): (45, 18, 4, 2, 0.5)}
    # Deleting the event with the low early rating takes its tokens and ratings out.
    events = store.list_events(project_id, EventFilter())[0]
    (early_id,) = [e["id"] for e in events if e["feedback_key"] == early]
    assert store.delete_events(project_id, ids=[early_id]) == 1
    assert _totals(store, project_id) == {(): (45, 7, 3, 1, 1 / 3)}
    assert _totals(store, project_id, ["attributes.user"]) == {
        ("u0",): (40, 7, 0, 0, None),
        ("u1",): (5, 0, 3, 1, 1 / 3),
    }


def _forget_the_columns(store_backend: StoreBackend, db: str) -> None:
    """Put the database back to before the step that added the columns: the columns gone,
    the step not recorded (what a store written by the previous version looks like)."""
    drop = [f"ALTER TABLE agg DROP COLUMN {c}" for c in ("cached_tokens", "reasoning_tokens")]
    drop.append("ALTER TABLE agg DROP COLUMN rating_low")
    if store_backend.name == "sqlite":
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            for sql in drop:
                conn.execute(sql)
            conn.execute("DELETE FROM _llmtap_migrations WHERE name = 'm016_agg_measures'")
        finally:
            conn.close()
        return
    with psycopg.connect(db, autocommit=True) as pg:
        for sql in drop:
            pg.execute(sql)
        pg.execute("DELETE FROM _llmtap_migrations WHERE name = 'pg010_agg_measures'")


def test_an_upgraded_store_gets_the_measures_of_its_events(store_backend: StoreBackend) -> None:
    db = store_backend.fresh_db()
    store = store_backend.open(db)
    project_id = store.ensure_project("p")
    key = KeyInfo(1, project_id, "p", "dev")
    store.insert_events(
        [_row(key, i, f"fk-{i % 5}", cached_tokens=i, reasoning_tokens=2 * i) for i in range(30)]
    )
    for i, rating in enumerate([0.1, 0.9, 0.5, 0.69, 1.0, 0.0]):
        store.insert_feedback(project_id, f"fk-{i % 5}", rating, None)
    groupings = [[], ["model"], ["attributes.user"], ["minute"], ["day", "model"]]
    before = {tuple(g): _totals(store, project_id, g) for g in groupings}
    assert before[()] == {(): (435, 870, 36, 24, 24 / 36)}
    store_backend.close(store)
    _forget_the_columns(store_backend, db)
    store = store_backend.open(db)
    assert {tuple(g): _totals(store, project_id, g) for g in groupings} == before
