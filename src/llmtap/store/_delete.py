"""Deleting events (a user asking to be forgotten): the rows, their feedback, their index rows,
and their share of everything derived from them.

How it stays exact: a delete first derives every event stored so far (by this process or
another), under the write lock, so each event it removes is counted in the derived tables, and
exactly once. It then subtracts each event's contribution from the aggregate rows it counts
in (the same rows ``_derive`` added it to: counts, tokens, cost, histograms, ratings), drops
rows that reach zero events, takes its attribute and text index rows out, lowers the unpriced
tally, and recomputes the first and last use of the template revisions it used from the
events that remain. All of it in one transaction per chunk, so a reader sees an event either
counted and listed, or neither.

Sequence numbers: events take ``max(seq) + 1``, so deleting the newest frees its seq for the
next event. The watermark is set to the highest seq that remains (all of them derived), so
that next event is derived; and ``meta.deleted_epoch`` changes, so a process that held such a
seq in memory as "committed, not derived yet" drops what it held and reads the events from the
file instead (see ``SQLiteStore._derive``).

Feedback: a deleted event's ratings and better responses go with it, unless another stored
event carries the same feedback key (then they are that event's too, and stay).

Test cases: those copied from a deleted event go with it, with their results (see
``_testsets.forget_cases``), whether the aggregates stay or not.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import _context, _derive, _hist, _rederive, _testsets
from ._common import EventFilter
from ._dialect import dialect_of
from ._facts import extra_tokens, has_usage, searchable_text
from ._queries import event_where
from ._sql import chunks, marks

if TYPE_CHECKING:
    from ._sqlite import SQLiteStore

__all__ = [
    "CHUNK",
    "delete_events",
    "delete_in_chunks",
    "deleted_epoch",
    "forget",
    "select_chunk",
]

# Events deleted per transaction: ~10 index and aggregate rows each. A chunk of 500 held the
# write lock 0.2 s (median; 0.35 s at most) on a 2-core machine under a load of 7, so ingest and
# the other workers get their turn between chunks.
CHUNK = 500

_COLUMNS = (
    "seq, started_us, status, input_tokens, output_tokens, cost_usd, latency_ms, ttft_ms,"
    " feedback_key, model, prompt_template_name, template_revision, body"
)
_AGG_VALUES = (
    "n, errors, input_tokens, output_tokens, cost, priced, lat, ttft, rating_sum, rating_n,"
    " cached_tokens, reasoning_tokens, rating_low"
)
_LAST_SEQ = "SELECT COALESCE(max(seq), 0) FROM events"
_AGG_KEY = "project_id = ? AND level = ? AND attr_id = ? AND bucket = ? AND dims_id = ?"


def deleted_epoch(conn: sqlite3.Connection) -> str:
    """Changes at every delete: a process compares it to decide whether the seqs it holds as
    not derived yet may have been freed and taken again (see the module's docstring)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'deleted_epoch'").fetchone()
    return str(row[0]) if row else "0"


def select_chunk(
    conn: sqlite3.Connection,
    project_id: int,
    f: EventFilter,
    ids: Sequence[str] | None,
    through: int,
) -> list[int]:
    """The seqs of up to ``CHUNK`` events of the project that ``f`` selects (and whose id is
    in ``ids``, when given), stored at or before seq ``through``."""
    where, params = event_where(project_id, f, dialect=dialect_of(conn))
    if ids is None:
        rows = conn.execute(
            f"SELECT e.seq FROM events e WHERE {where} AND e.seq <= ? ORDER BY e.seq LIMIT ?",
            [*params, through, CHUNK],
        ).fetchall()
        return [row[0] for row in rows]
    seqs: list[int] = []
    for chunk in chunks(sorted(set(ids))):
        seqs += [
            row[0]
            for row in conn.execute(
                f"SELECT e.seq FROM events e WHERE {where} AND e.id IN ({marks(chunk)})"
                " AND e.seq <= ?",
                [*params, *chunk, through],
            )
        ]
    return sorted(seqs)[:CHUNK]


def forget(
    conn: sqlite3.Connection, project_id: int, seqs: list[int], aggregates: bool = True
) -> int:
    """Delete the events ``seqs`` of the project and their share of the derived tables, in
    ``conn``'s transaction. Every event must be derived (the caller derived first). Returns how
    many were deleted.

    ``aggregates`` False (retention keeping a year of stats past 30 days of raw events): the
    rows, their index rows and their feedback go, and what they added to the aggregates,
    templates and unpriced tally stays."""
    # "+project_id": look the seqs up by rowid; the planner would rather walk the project.
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM events WHERE +project_id = ? AND seq IN ({marks(seqs)})",
        (project_id, *seqs),
    ).fetchall()
    if not rows:
        return 0
    ratings = _derive.ratings(conn, [(project_id, row[8]) for row in rows]) if aggregates else {}
    minus: dict[_derive.AggKey, list[Any]] = {}
    unpriced: dict[str, int] = {}
    revisions: set[tuple[str, str]] = set()
    texts: list[tuple[int, int, str]] = []
    for seq, _, status, in_t, out_t, cost, lat, ttft, fk, model, name, revision, body in rows:
        parsed = json.loads(body)
        text = searchable_text(parsed)
        rating_sum, rating_n, rating_low = ratings.get((project_id, fk), (0.0, 0, 0))
        share = [
            1,
            int(status == "error"),
            in_t or 0,
            out_t or 0,
            cost or 0.0,
            int(cost is not None),
            _hist.histogram([lat]),
            _hist.histogram([ttft]),
            rating_sum,
            rating_n,
            *extra_tokens(parsed),
            rating_low,
        ]
        for key in _rederive.event_keys(conn, project_id, seq) if aggregates else ():
            total = minus.get(key)
            if total is None:
                minus[key] = share.copy()
            else:
                minus[key] = [a + b for a, b in zip(total, share, strict=True)]
        if text:
            # The text index may have no copy of the text (SQLite's is contentless): the
            # body gives the very text that was indexed again (as derivation read it).
            texts.append((project_id, seq, text))
        if cost is None and model and has_usage(parsed):
            unpriced[model] = unpriced.get(model, 0) + 1
        if name is not None and revision is not None:
            revisions.add((name, revision))
    dialect_of(conn).unindex_texts(conn, texts)
    _subtract(conn, minus)  # nothing, when the aggregates stay
    gone = [row[0] for row in rows]
    # The test cases copied from these events go too (see ``_testsets``): an erasure (or
    # retention) that left the copies would keep what it was asked to remove.
    event_ids = conn.execute(
        f"SELECT id FROM events WHERE +project_id = ? AND seq IN ({marks(gone)})",
        (project_id, *gone),
    ).fetchall()
    _testsets.forget_cases(conn, project_id, [row[0] for row in event_ids])
    dialect_of(conn).forget_ids(conn, project_id, gone)
    conn.execute(
        f"DELETE FROM event_attrs WHERE project_id = ? AND seq IN ({marks(gone)})",
        (project_id, *gone),
    )
    conn.execute(
        f"DELETE FROM events WHERE project_id = ? AND seq IN ({marks(gone)})", (project_id, *gone)
    )
    if aggregates:
        conn.executemany(
            "UPDATE unpriced SET events = events - ? WHERE project_id = ? AND model = ?",
            [(n, project_id, model) for model, n in unpriced.items()],
        )
        conn.execute("DELETE FROM unpriced WHERE events <= 0")
        _retime_templates(conn, project_id, revisions)
    _drop_feedback(conn, project_id, {row[8] for row in rows if row[8] is not None})
    (last,) = conn.execute(_LAST_SEQ).fetchone()
    _derive.set_derived_through(conn, last)
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('deleted_epoch', '1') ON CONFLICT (key)"
        " DO UPDATE SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)"
    )
    return len(rows)


def _subtract(conn: sqlite3.Connection, minus: dict[_derive.AggKey, list[Any]]) -> None:
    """Take the summed shares out of their aggregate rows; a row left with no event goes."""
    for key, share in minus.items():
        row = conn.execute(f"SELECT {_AGG_VALUES} FROM agg WHERE {_AGG_KEY}", key).fetchone()
        if row is None:  # an event whose derivation failed was never counted
            continue
        n, errors, in_t, out_t, cost, priced, lat, ttft, r_sum, r_n, cached, reasoning, low = row
        n -= share[0]
        if n <= 0:
            conn.execute(f"DELETE FROM agg WHERE {_AGG_KEY}", key)
            continue
        priced -= share[5]
        r_n -= share[9]
        new = (
            n,
            errors - share[1],
            in_t - share[2],
            out_t - share[3],
            # Sums of what is left start again from zero rather than carry rounding residue.
            cost - share[4] if priced else 0.0,
            priced,
            _hist.encode(max(0, _hist.decode(lat) - share[6])),
            _hist.encode(max(0, _hist.decode(ttft) - share[7])),
            r_sum - share[8] if r_n else 0.0,
            r_n,
            cached - share[10],
            reasoning - share[11],
            low - share[12],
        )
        conn.execute(
            "UPDATE agg SET n = ?, errors = ?, input_tokens = ?, output_tokens = ?, cost = ?,"
            " priced = ?, lat = ?, ttft = ?, rating_sum = ?, rating_n = ?, cached_tokens = ?,"
            f" reasoning_tokens = ?, rating_low = ? WHERE {_AGG_KEY}",
            (*new, *key),
        )


def _retime_templates(
    conn: sqlite3.Connection, project_id: int, revisions: set[tuple[str, str]]
) -> None:
    """First and last use of the revisions from the events left; a revision none uses goes."""
    for name, revision in sorted(revisions):
        first, last = conn.execute(
            "SELECT min(started_us), max(started_us) FROM events WHERE project_id = ?"
            " AND prompt_template_name = ? AND template_revision = ?",
            (project_id, name, revision),
        ).fetchone()
        if first is None:
            conn.execute(
                "DELETE FROM templates WHERE project_id = ? AND name = ? AND revision = ?",
                (project_id, name, revision),
            )
        else:
            conn.execute(
                "UPDATE templates SET first_us = ?, last_us = ? WHERE project_id = ?"
                " AND name = ? AND revision = ?",
                (first, last, project_id, name, revision),
            )


def _drop_feedback(conn: sqlite3.Connection, project_id: int, keys: set[str]) -> None:
    for chunk in chunks(sorted(keys)):
        conn.execute(
            f"DELETE FROM feedback WHERE project_id = ? AND feedback_key IN ({marks(chunk)})"
            " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.project_id = feedback.project_id"
            " AND e.feedback_key = feedback.feedback_key)",
            (project_id, *chunk),
        )


def delete_events(
    store: SQLiteStore,
    project_id: int,
    f: EventFilter | None = None,
    ids: Sequence[str] | None = None,
) -> int:
    """Delete the project's events that ``f`` selects (every filter of the events list;
    none: all of them), only those whose id is in ``ids`` when given, with their feedback
    and their share of the stats, indexes and templates. Returns how many were deleted.

    Goes in chunks of ``CHUNK`` events, each its own transaction under the write lock, so
    ingest waits at most one chunk. It takes the events stored when it began; one that
    arrives meanwhile may go too if it matches, having taken the seq of one deleted (see
    the module's docstring), never one that does not match."""
    f = f or EventFilter()
    deleted = delete_in_chunks(store, project_id, f, ids)
    if f.attributes and ids is None:
        forget_values(store, project_id, f.attributes)
    if f == EventFilter() and ids is None:  # every event: every feedback too
        forget_orphan_feedback(store, project_id)
    return deleted


def forget_orphan_feedback(
    store: SQLiteStore, project_id: int, before_us: int | None = None
) -> int:
    """Delete the project's feedback that no stored event carries the key of, given before
    ``before_us`` (None: any time); how many. Feedback may come before its call's event, so
    it is kept while the event can still come; but feedback sent after its event was deleted,
    or for a call never sent, had stayed on the feedback page for ever, its better response
    (a user's words) with it, where no delete reached it. A retention purge drops what was
    given before its cutoff (its call started earlier still: purged anyway); deleting every
    event of a project drops all of it."""
    (cursor,) = store._write(
        [
            (
                "DELETE FROM feedback WHERE project_id = ? AND (? IS NULL OR created_us < ?)"
                " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.project_id = feedback.project_id"
                " AND e.feedback_key = feedback.feedback_key)",
                (project_id, before_us, before_us),
            )
        ]
    )
    return max(cursor.rowcount, 0)


def forget_values(store: SQLiteStore, project_id: int, attributes: dict[str, str]) -> None:
    """After a delete by attribute: a value no stored event carries any more leaves the
    aggregates too. A retention purge that keeps the stats keeps a purged event's share of
    them, per attribute value too, where no delete can reach it: "delete alice's events" had
    left alice in the stats by user, and in the pickers. What remains is the totals (the
    stats without a grouping by that attribute), as after any purge. The value's id stays
    (ids of values are never reused or changed: other processes cache them), not shown."""
    with store._transaction(project_id) as conn:
        for key, value in attributes.items():
            # The events list's own attribute filter (by the index each backend has).
            where, params = event_where(
                project_id, EventFilter(attributes={key: value}), dialect=dialect_of(conn)
            )
            held = conn.execute(f"SELECT 1 FROM events e WHERE {where} LIMIT 1", params).fetchone()
            row = conn.execute(
                "SELECT id FROM attr_values WHERE project_id = ? AND key = ? AND value = ?",
                (project_id, key, value),
            ).fetchone()
            if held is None and row is not None:
                conn.execute(
                    f"DELETE FROM agg WHERE project_id = ? AND level IN ({marks(_derive.LEVELS)})"
                    " AND attr_id = ?",
                    (project_id, *range(len(_derive.LEVELS)), row[0]),
                )


def delete_in_chunks(
    store: SQLiteStore,
    project_id: int,
    f: EventFilter,
    ids: Sequence[str] | None = None,
    aggregates: bool = True,
) -> int:
    """``delete_events``, and retention's purge (``aggregates`` as ``forget`` takes it)."""
    deleted = 0
    through: int | None = None
    while True:
        # Every stored event derived first: each it may delete is counted once, and only once.
        with store._transaction(project_id) as conn:
            if through is None:
                (through,) = conn.execute(_LAST_SEQ).fetchone()
            seqs = select_chunk(conn, project_id, f, ids, through)
            deleted += forget(conn, project_id, seqs, aggregates) if seqs else 0
        if len(seqs) < CHUNK:
            if deleted:
                # What the tools of a forgotten chain saw (OTLP context spans) goes with it.
                _context.forget_orphan_context(store, project_id)
            return deleted
