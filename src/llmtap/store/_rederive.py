"""What changes in the derived rows after an event was derived: a rating that arrives for it,
a new price for its model. Both find the aggregate rows the event counts in (``event_keys``)
and add the difference there, in the caller's transaction; see ``_derive`` for the rows."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from ._derive import _DIMS_ID, DIMS, LOW_RATING, AggKey, _Acc, _agg_keys
from ._facts import has_usage
from ._sql import Conn

__all__ = ["add_feedback", "after_feedback", "event_keys", "reprice"]


def event_keys(conn: Conn, project_id: int, seq: int) -> list[AggKey]:
    """The aggregate rows a stored event counts in."""
    row = conn.execute(
        f"SELECT started_us, {', '.join(DIMS)} FROM events WHERE project_id = ? AND seq = ?",
        (project_id, seq),
    ).fetchone()
    started_us, *dims = row
    stored = tuple("" if v is None else v for v in dims)
    found = conn.execute(_DIMS_ID, (project_id, *stored)).fetchone()
    if found is None:  # never derived (its derivation failed, and was logged): in no row
        return []
    (dims_id,) = found
    attr_ids = [
        r[0]
        for r in conn.execute(
            "SELECT v.id FROM event_attrs a JOIN attr_values v ON v.project_id = a.project_id"
            " AND v.key = a.key AND v.value = a.value WHERE a.project_id = ? AND a.seq = ?",
            (project_id, seq),
        )
    ]
    return _agg_keys(project_id, started_us, dims_id, attr_ids)


def add_feedback(
    conn: Conn,
    project_id: int,
    feedback_key: str,
    rating: float | None,
    better: str | None,
    feedback_id: str | None,
    through: int | None,
) -> bool:
    """Store a feedback and count its rating (see ``after_feedback``), in ``conn``'s
    transaction; False when one with this ``feedback_id`` is stored already."""
    cur = conn.execute(
        "INSERT INTO feedback (project_id, feedback_key, rating, better_response,"
        " created_us, feedback_id) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (project_id, feedback_id) WHERE feedback_id IS NOT NULL"
        " DO NOTHING",
        (project_id, feedback_key, rating, better, int(time.time() * 1_000_000), feedback_id),
    )
    stored = cur.rowcount == 1
    if stored:
        after_feedback(conn, project_id, feedback_key, rating, through)
    return stored


def after_feedback(
    conn: Conn,
    project_id: int,
    feedback_key: str,
    rating: float | None,
    through: int | None = None,
) -> None:
    """Count a rating in the aggregates of the event(s) it rates. A rating for an event not
    derived yet (not stored, or stored after the watermark ``through``: None when every
    stored event is derived) is counted when the event is (see ``ratings``)."""
    if rating is None:
        return
    acc = _Acc()
    sql = "SELECT seq FROM events WHERE project_id = ? AND feedback_key = ?"
    params: tuple[Any, ...] = (project_id, feedback_key)
    if through is not None:
        sql += " AND seq <= ?"
        params += (through,)
    for (seq,) in conn.execute(sql, params).fetchall():
        acc.add(
            event_keys(conn, project_id, seq),
            rating_sum=rating,
            rating_n=1,
            rating_low=int(rating < LOW_RATING),
        )
    acc.flush(conn)


def reprice(
    conn: Conn,
    project_id: int,
    model: str,
    cost_of: Callable[[dict[str, Any]], float | None],
) -> int:
    """Price again every stored event of ``model`` (after a price override changed), keeping
    the aggregates and the unpriced tally in step. Returns how many events changed."""
    acc = _Acc()
    changed = []
    unpriced_delta = 0
    for seq, old, body_text in conn.execute(
        "SELECT seq, cost_usd, body FROM events WHERE project_id = ? AND model = ?",
        (project_id, model),
    ).fetchall():
        body = json.loads(body_text)
        new = cost_of(body)
        if new == old:
            continue
        changed.append((new, seq))
        if has_usage(body):
            unpriced_delta += int(new is None) - int(old is None)
        acc.add(
            event_keys(conn, project_id, seq),
            cost=(new or 0.0) - (old or 0.0),
            priced=int(new is not None) - int(old is not None),
        )
    conn.executemany(
        "UPDATE events SET cost_usd = ? WHERE project_id = ? AND seq = ?",
        [(cost, project_id, seq) for cost, seq in changed],
    )
    acc.flush(conn)
    if unpriced_delta:
        conn.execute(
            "INSERT INTO unpriced (project_id, model, events) VALUES (?, ?, ?) "
            "ON CONFLICT (project_id, model) DO UPDATE SET events = unpriced.events"
            " + excluded.events",
            (project_id, model, unpriced_delta),
        )
        conn.execute("DELETE FROM unpriced WHERE events <= 0")
    return len(changed)
