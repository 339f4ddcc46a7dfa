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

__all__ = [
    "existing_event_ids",
    "expire_held",
    "forget_held",
    "held_records",
    "held_sizes",
    "hold_records",
]

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


def held_records(
    store: Any, project_id: int, event_ids: Sequence[str]
) -> dict[str, list[tuple[str, str]]]:
    """The records held for each of ``event_ids`` (those that have any), in the order they
    were held, each as ``(record id, record)``. One query when the project holds none."""
    reader = store._reader()
    if (
        not event_ids
        or not reader.execute(
            "SELECT 1 FROM otlp_held WHERE project_id = ? LIMIT 1", (project_id,)
        ).fetchone()
    ):
        return {}
    out: dict[str, list[tuple[str, str]]] = {}
    for chunk in _chunks(list(dict.fromkeys(event_ids))):
        marks = ", ".join("?" * len(chunk))
        rows = reader.execute(
            "SELECT event_id, record_id, record FROM otlp_held WHERE project_id = ?"
            f" AND event_id IN ({marks}) ORDER BY event_id, received_us, record_id",
            (project_id, *chunk),
        ).fetchall()
        for event_id, record_id, record in rows:
            out.setdefault(event_id, []).append((record_id, record))
    return out


def held_sizes(store: Any, project_id: int, event_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """For each of ``event_ids`` holding records: how many, and their characters."""
    out: dict[str, tuple[int, int]] = {}
    reader = store._reader()
    for chunk in _chunks(list(dict.fromkeys(event_ids))):
        marks = ", ".join("?" * len(chunk))
        rows = reader.execute(
            "SELECT event_id, count(*), sum(length(record)) FROM otlp_held"
            f" WHERE project_id = ? AND event_id IN ({marks}) GROUP BY event_id",
            (project_id, *chunk),
        ).fetchall()
        out.update((event_id, (int(n), int(size or 0))) for event_id, n, size in rows)
    return out


def forget_held(store: Any, project_id: int, records: Sequence[tuple[str, str]]) -> None:
    """Drop the held ``records`` (``(event id, record id)``): built into their events. Only
    those: a record held for the same event meanwhile stays, and is found as late."""
    if records:
        store._write(
            [
                (
                    "DELETE FROM otlp_held WHERE project_id = ? AND event_id = ? AND record_id = ?",
                    (project_id, event_id, record_id),
                )
                for event_id, record_id in dict.fromkeys(records)
            ]
        )


def expire_held(store: Any, before_us: int) -> int:
    """Drop the records held since before ``before_us`` (their span never came), in bounded
    transactions; how many."""
    dropped = 0
    while True:
        (cursor,) = store._write(
            [
                (
                    "DELETE FROM otlp_held WHERE (project_id, event_id, record_id) IN"
                    " (SELECT project_id, event_id, record_id FROM otlp_held"
                    f" WHERE received_us < ? LIMIT {_CHUNK})",
                    (before_us,),
                )
            ]
        )
        dropped += max(cursor.rowcount, 0)
        if cursor.rowcount < _CHUNK:
            return dropped


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
