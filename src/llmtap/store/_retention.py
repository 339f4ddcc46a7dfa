"""Retention: how long a project's raw events are kept, and the purge that drops older ones.

A project's own number of days is a meta value (``retention_days:<project id>``), so it needs
no table of its own and moves with ``migrate-store``; none means the server's setting. The
purge deletes through ``_delete`` in its bounded chunks (ingest waits one chunk at most), so
an event either counts in the stats and is listed, or (aggregates not kept) neither; with
the aggregates kept, the raw rows, their index rows and feedback go and the stats stay.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._common import EventFilter
from ._delete import delete_in_chunks, forget_orphan_feedback

if TYPE_CHECKING:
    from ._sqlite import SQLiteStore

__all__ = [
    "drop_expired_partitions",
    "forget_unused_prompts",
    "oldest_event_us",
    "purge_before",
    "retention_days",
    "set_retention_days",
]


def _key(project_id: int) -> str:
    return f"retention_days:{project_id}"


def retention_days(store: SQLiteStore, project_id: int) -> int | None:
    """The project's own retention in days (0: forever), or None: the server's setting."""
    value = store.get_meta(_key(project_id))
    return None if value is None else int(value)


def set_retention_days(store: SQLiteStore, project_id: int, days: int | None) -> None:
    """Give the project its own retention (0: forever), or (None) the server's again."""
    if days is None:
        store._write([("DELETE FROM meta WHERE key = ?", (_key(project_id),))])
    elif days < 0:
        raise ValueError("retention days must be 0 (forever) or more")
    else:
        store.set_meta(_key(project_id), str(days))


def oldest_event_us(store: SQLiteStore, project_id: int) -> int | None:
    """When the project's oldest stored event started (None: it has none)."""
    row = (
        store._reader()
        .execute("SELECT min(started_us) FROM events WHERE project_id = ?", (project_id,))
        .fetchone()
    )
    return None if row is None or row[0] is None else int(row[0])


def purge_before(
    store: SQLiteStore, project_id: int, before_us: int, keep_aggregates: bool = True
) -> int:
    """Delete the project's events that started before ``before_us``, with their feedback and
    index rows; their share of the stats too unless ``keep_aggregates``. Returns how many.
    Feedback given before then on no stored event goes too (see ``forget_orphan_feedback``)."""
    deleted = delete_in_chunks(
        store, project_id, EventFilter(to_us=before_us), aggregates=not keep_aggregates
    )
    forget_orphan_feedback(store, project_id, before_us)
    return deleted


def forget_unused_prompts(store: SQLiteStore, project_id: int) -> int:
    """Blank the text of the project's plain-call templates (a call made without a template
    is filed under its own prompt: ``unnamed-...``, or a name it was given, marked ``plain``)
    that no stored event uses any more,
    keeping their name, revision and dates for the stats that outlive the events. Retention
    that keeps aggregates would otherwise keep every purged call's prompt. How many."""
    (cursor,) = store._write(
        [
            (
                "UPDATE templates SET template = CASE WHEN kind = 'chat' THEN '[]' ELSE '\"\"' END"
                " WHERE project_id = ? AND (plain = 1 OR name LIKE 'unnamed-%')"
                " AND template NOT IN ('[]', '\"\"') AND NOT EXISTS (SELECT 1 FROM events e"
                " WHERE e.project_id = templates.project_id"
                " AND e.prompt_template_name = templates.name"
                " AND e.template_revision = templates.revision)",
                (project_id,),
            )
        ]
    )
    return int(cursor.rowcount)


def drop_expired_partitions(
    store: SQLiteStore, before_us: Mapping[int, int | None], keep_aggregates: bool = True
) -> dict[int, int]:
    """SQLite's events are one table: nothing to drop, ``purge_before`` deletes. (PostgreSQL's
    are partitioned by month: see ``_pg_partitions``.)"""
    return {}
