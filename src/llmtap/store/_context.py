"""Context spans: the steps of a trace that are not model calls (tool executions, retrieval,
agent steps, HTTP requests), sent over OTLP beside the calls. They are no events (no stats,
no cost): rows of their own, read with their chain, so the chain view shows what happened
between two calls and how long it took.

Plain functions on a store (its ``_reader``/``_write``), in portable SQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["CONTEXT_BYTES", "chain_context", "forget_orphan_context", "insert_context"]

_COLUMNS = (
    "project_id, trace_id, span_id, parent_span_id, name, kind, started_us, duration_ms,"
    " status, attributes"
)


def insert_context(store: Any, project_id: int, rows: Sequence[tuple[Any, ...]]) -> int:
    """Store context spans, each ``(trace_id, span_id, parent_span_id, name, kind,
    started_us, duration_ms, status, attributes_json)``; one already stored (same trace and
    span) is kept as it is. Returns how many were new."""
    if not rows:
        return 0
    cursors = store._write(
        [
            (
                f"INSERT INTO context_spans ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (project_id, trace_id, span_id) DO NOTHING",
                (project_id, *row),
            )
            for row in rows
        ]
    )
    return sum(max(cursor.rowcount, 0) for cursor in cursors)


# What the context spans of one chain page may hold of attributes, as a page of events
# (``_queries.PAGE_BYTES``): a span's attributes are bounded each, not in number, so a
# trace's spans could otherwise fill the server's memory.
CONTEXT_BYTES = 8 * 1024 * 1024


def chain_context(
    store: Any, project_id: int, chain_id: str, limit: int = 500, since_us: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The chain's newest ``limit`` context spans that started at ``since_us`` or after (None:
    any), within ``CONTEXT_BYTES`` of attributes (one span at least), in time order; and how
    many older ones of those were left out. A chain page shows its newest calls: their steps
    are the ones read, not the first steps of a long trace beside its last calls."""
    since = "" if since_us is None else " AND started_us >= ?"
    rows = (
        store._reader()
        .execute(
            f"SELECT {_COLUMNS}, total FROM (SELECT {_COLUMNS}, sum(length(attributes)) OVER"
            " (ORDER BY started_us DESC, span_id DESC) - length(attributes) AS before,"
            " count(*) OVER () AS total"
            f" FROM context_spans WHERE project_id = ? AND trace_id = ?{since}) AS spans"
            " WHERE before < ? ORDER BY started_us DESC, span_id DESC LIMIT ?",
            (
                project_id,
                chain_id,
                *(() if since_us is None else (since_us,)),
                CONTEXT_BYTES,
                limit,
            ),
        )
        .fetchall()
    )
    names = [c.strip() for c in _COLUMNS.split(",")]
    out = []
    for row in reversed(rows):
        span = dict(zip(names[1:], row[1 : len(names)], strict=True))
        span["attributes"] = json.loads(span["attributes"])
        out.append(span)
    return out, (rows[0][-1] - len(rows) if rows else 0)


def forget_orphan_context(store: Any, project_id: int) -> int:
    """Delete the project's context spans whose chain has no event left (after a delete):
    what a forgotten conversation's tools saw goes with it."""
    (cursor,) = store._write(
        [
            (
                "DELETE FROM context_spans WHERE project_id = ? AND NOT EXISTS (SELECT 1 FROM"
                " events e WHERE e.project_id = context_spans.project_id"
                " AND e.chain_id = context_spans.trace_id)",
                (project_id,),
            )
        ]
    )
    return max(cursor.rowcount, 0)
