"""Migration steps ``m016_agg_measures`` and ``pg010_agg_measures``: the aggregates gained
cached and reasoning tokens and the count of low ratings (see ``_derive``). The columns start
at 0; this adds what the events derived before them hold, so an upgraded store answers as if
it had always kept them.

Only derived events are counted here (up to SQLite's watermark; on PostgreSQL, not in the
derive queue): the others are derived later by the new code, columns included. Feedback is
counted for each derived event carrying its key, as ``_derive.ratings`` and
``after_feedback`` do. An event whose derivation failed (no aggregate rows) adds nothing: an
UPDATE, not an upsert, so no row of zero events appears.
"""

from __future__ import annotations

import json
from typing import Any

from ._derive import _DIMS_ID, DIMS, AggKey, _agg_keys, derived_through, ratings
from ._facts import extra_tokens
from ._sql import Conn, marks

__all__ = ["backfill_postgres", "backfill_sqlite"]

_CHUNK = 5000
_ADD = (
    "UPDATE agg SET cached_tokens = cached_tokens + ?, reasoning_tokens = reasoning_tokens + ?,"
    " rating_low = rating_low + ? WHERE project_id = ? AND level = ? AND attr_id = ?"
    " AND bucket = ? AND dims_id = ?"
)


def backfill_sqlite(conn: Conn) -> None:
    # From zero: a step before this one may have derived with these columns already (see
    # ``_derive.add_measure_columns``), and they are all filled again here.
    conn.execute("UPDATE agg SET cached_tokens = 0, reasoning_tokens = 0, rating_low = 0")
    _backfill(conn, "AND seq <= ?", (derived_through(conn),))


def backfill_postgres(conn: Conn) -> None:
    _backfill(
        conn,
        "AND NOT EXISTS (SELECT 1 FROM derive_queue q WHERE q.project_id = events.project_id"
        " AND q.seq = events.seq)",
        (),
    )


def _backfill(conn: Conn, derived: str, params: tuple[Any, ...]) -> None:
    last = 0
    dims_ids: dict[tuple[Any, ...], int | None] = {}
    while True:
        rows = conn.execute(
            f"SELECT seq, project_id, started_us, feedback_key, body, {', '.join(DIMS)}"
            f" FROM events WHERE seq > ? {derived} ORDER BY seq LIMIT {_CHUNK}",
            (last, *params),
        ).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        rated = ratings(conn, [(r[1], r[3]) for r in rows])
        todo = []
        for seq, project_id, started_us, fk, body, *dims in rows:
            cached, reasoning = extra_tokens(json.loads(body))
            low = rated.get((project_id, fk), (0.0, 0, 0))[2]
            if cached or reasoning or low:
                todo.append((seq, project_id, started_us, tuple(dims), (cached, reasoning, low)))
        _add(conn, todo, dims_ids)


def _add(
    conn: Conn,
    todo: list[tuple[int, int, int, tuple[Any, ...], tuple[int, int, int]]],
    dims_ids: dict[tuple[Any, ...], int | None],
) -> None:
    """Add each event's (cached, reasoning, low) to the aggregate rows it counts in."""
    attrs: dict[tuple[int, int], list[int]] = {}
    by_project: dict[int, list[int]] = {}
    for seq, project_id, *_ in todo:
        by_project.setdefault(project_id, []).append(seq)
    for project_id, seqs in by_project.items():
        for seq, attr_id in conn.execute(
            "SELECT a.seq, v.id FROM event_attrs a JOIN attr_values v ON v.project_id ="
            " a.project_id AND v.key = a.key AND v.value = a.value WHERE a.project_id = ?"
            f" AND a.seq IN ({marks(seqs)})",
            (project_id, *seqs),
        ):
            attrs.setdefault((project_id, seq), []).append(attr_id)
    sums: dict[AggKey, list[int]] = {}
    for seq, project_id, started_us, dims, values in todo:
        stored = (project_id, *("" if v is None else v for v in dims))
        if stored not in dims_ids:
            row = conn.execute(_DIMS_ID, stored).fetchone()
            dims_ids[stored] = None if row is None else row[0]
        dims_id = dims_ids[stored]
        if dims_id is None:  # never derived: counted nowhere
            continue
        for key in _agg_keys(project_id, started_us, dims_id, attrs.get((project_id, seq), [])):
            total = sums.setdefault(key, [0, 0, 0])
            for i, value in enumerate(values):
                total[i] += value
    conn.executemany(_ADD, [(*values, *key) for key, values in sums.items()])
