"""Derivation on PostgreSQL (see ``_derive``): after the commit, in chunks, by whichever
``llmtap serve`` process gets there first.

A queue table rather than SQLite's watermark: PostgreSQL gives an event its seq (an identity)
when the row is inserted, not when it commits, and writers commit concurrently, so an event
can become visible after one with a higher seq was derived, and a watermark would skip it.
Ingest therefore adds each new event's ``(project_id, seq)`` to ``derive_queue`` in the
transaction that stores it (nothing else: ingest does not wait for derivation), and a deriver
deletes a chunk of those rows and derives their events in one transaction. So an event is
counted exactly once whatever process is killed when: the delete and the derived rows commit
together, or neither does and the rows wait for the next deriver. Two derivers never take the
same events: each holds the project's derive lock, and the second finds the rows gone.

The locks, per project (advisory, transaction-scoped, always taken in this order: no
deadlock):

- the data lock: ingest takes it shared, so a project's writers run together; what needs
  every event of the project derived (feedback, deletes, repricing) takes it exclusive, so no
  event of the project commits under it;
- the derive lock: a deriver's, and taken second by those, which first derive what is queued.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import _derive
from ._common import EVENT_COLUMNS
from ._facts import Facts
from ._pg import PgConn

__all__ = ["CHUNK", "EVERY_SEQ", "derive_chunk", "lock_data", "lock_derive", "queued"]

# Events derived per transaction: their aggregate rows are summed in memory first, so larger
# chunks make fewer upserts (SQLite's chunk, ``DERIVE_EVENTS``, for the same reason).
CHUNK = 10_000
EVERY_SEQ = 2**63 - 1

# The first keys of the projects' advisory locks (the second is the project's id).
_DATA_LOCK = 7420
_DERIVE_LOCK = 7421

# Take a chunk off the queue and read its events, in one statement.
_TAKE = (
    "WITH taken AS (DELETE FROM derive_queue WHERE project_id = ? AND seq IN"
    " (SELECT seq FROM derive_queue WHERE project_id = ? AND seq <= ? ORDER BY seq LIMIT ?)"
    " RETURNING seq)"
    f" SELECT e.seq, {', '.join('e.' + c for c in EVENT_COLUMNS)}"
    " FROM events e JOIN taken t ON e.seq = t.seq WHERE e.project_id = ? ORDER BY e.seq"
)


def _lock(conn: PgConn, key: int, project_ids: Iterable[int], function: str) -> None:
    for project_id in sorted(set(project_ids)):  # one order: no deadlock
        conn.execute(f"SELECT {function}(?, ?)", (key, project_id % 2**31))


def lock_data(conn: PgConn, project_ids: Iterable[int], shared: bool = False) -> None:
    """The projects' data locks (see the module's docstring), shared for ingest."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    _lock(conn, _DATA_LOCK, project_ids, function)


def lock_derive(conn: PgConn, project_id: int) -> None:
    _lock(conn, _DERIVE_LOCK, [project_id], "pg_advisory_xact_lock")


def queued(conn: PgConn) -> dict[int, int]:
    """The projects with events waiting to be derived, and the highest seq waiting."""
    return dict(conn.execute("SELECT project_id, max(seq) FROM derive_queue GROUP BY project_id"))


def derive_chunk(
    conn: PgConn,
    project_id: int,
    through: int,
    ids: _derive.IdCache,
    known: dict[tuple[int, int], Facts],
    limit: int = CHUNK,
) -> int:
    """Derive up to ``limit`` queued events of the project (those up to seq ``through``) in
    ``conn``'s transaction, which holds the project's derive lock. ``known``: facts of
    events by (project, seq), taken out as used (the others' are parsed from their body).
    Returns how many it took: fewer than ``limit`` when none is left."""
    rows = conn.execute(_TAKE, (project_id, project_id, through, limit, project_id)).fetchall()
    if rows:
        todo = [(row[0], row[1:], known.pop((project_id, row[0]), None)) for row in rows]
        _derive.derive_each(conn, todo, ids)
    return len(rows)
