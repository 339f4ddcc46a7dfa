"""OTLP log records held for their span. Instrumentations send a call's messages as log
records (the GenAI conventions' events: ``gen_ai.user.message``, ``gen_ai.choice``,
``gen_ai.client.inference.operation.details``) on a pipeline of their own, which usually
delivers them before the call's span. They wait here, keyed by the event id their span will
have, until the span comes and its event is built with them (then they go); those whose span
never comes expire.

Plain functions on a store (its ``_reader``/``_write``), in portable SQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["existing_event_ids", "expire_held", "forget_held", "held_records", "hold_records"]

# Ids in one statement: far below SQLite's limit on a statement's parameters.
_CHUNK = 500


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for at in range(0, len(ids), _CHUNK):
        yield ids[at : at + _CHUNK]


def hold_records(store: Any, project_id: int, rows: Sequence[tuple[str, str, int, str]]) -> int:
    """Hold records ``(event_id, record_id, received_us, record_json)``; one held already
    (same event and record id: a batch sent again) is kept as it is. How many were new."""
    if not rows:
        return 0
    cursors = store._write(
        [
            (
                "INSERT INTO otlp_held (project_id, event_id, record_id, received_us, record)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, event_id, record_id) DO NOTHING",
                (project_id, *row),
            )
            for row in rows
        ]
    )
    return sum(max(cursor.rowcount, 0) for cursor in cursors)


def held_records(store: Any, project_id: int, event_ids: Sequence[str]) -> dict[str, list[str]]:
    """The records held for each of ``event_ids`` (those that have any), in the order they
    were held. One query when the project holds none."""
    reader = store._reader()
    if (
        not event_ids
        or not reader.execute(
            "SELECT 1 FROM otlp_held WHERE project_id = ? LIMIT 1", (project_id,)
        ).fetchone()
    ):
        return {}
    out: dict[str, list[str]] = {}
    for chunk in _chunks(list(dict.fromkeys(event_ids))):
        marks = ", ".join("?" * len(chunk))
        rows = reader.execute(
            "SELECT event_id, record FROM otlp_held WHERE project_id = ?"
            f" AND event_id IN ({marks}) ORDER BY event_id, received_us, record_id",
            (project_id, *chunk),
        ).fetchall()
        for event_id, record in rows:
            out.setdefault(event_id, []).append(record)
    return out


def forget_held(store: Any, project_id: int, event_ids: Sequence[str]) -> None:
    """Drop the records held for ``event_ids``: their events are built."""
    statements = [
        (
            "DELETE FROM otlp_held WHERE project_id = ?"
            f" AND event_id IN ({', '.join('?' * len(chunk))})",
            (project_id, *chunk),
        )
        for chunk in _chunks(list(dict.fromkeys(event_ids)))
    ]
    if statements:
        store._write(statements)


def expire_held(store: Any, before_us: int) -> int:
    """Drop the records held since before ``before_us`` (their span never came); how many."""
    (cursor,) = store._write([("DELETE FROM otlp_held WHERE received_us < ?", (before_us,))])
    return max(cursor.rowcount, 0)


def existing_event_ids(store: Any, project_id: int, event_ids: Sequence[str]) -> set[str]:
    """Which of ``event_ids`` the project has stored."""
    found: set[str] = set()
    reader = store._reader()
    for chunk in _chunks(list(dict.fromkeys(event_ids))):
        marks = ", ".join("?" * len(chunk))
        rows = reader.execute(
            f"SELECT id FROM events WHERE project_id = ? AND id IN ({marks})",
            (project_id, *chunk),
        ).fetchall()
        found.update(row[0] for row in rows)
    return found
