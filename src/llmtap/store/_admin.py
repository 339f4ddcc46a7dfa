"""Store queries for administration and the dashboard: projects, keys, feedback, meta values.

Kept apart from the event path in ``_sqlite.py``; these run rarely and on small tables.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from ._sqlite import SQLiteStore

__all__ = [
    "get_meta",
    "list_feedback",
    "list_keys",
    "list_projects",
    "project_id",
    "revoke_key",
    "set_key_scopes",
    "set_meta",
]


def get_meta(store: SQLiteStore, key: str) -> str | None:
    row = store._reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(store: SQLiteStore, key: str, value: str) -> None:
    store._write(
        [
            (
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        ]
    )


def list_projects(store: SQLiteStore) -> list[dict[str, Any]]:
    """Every project with its environments, key count and event count."""
    conn = store._reader()
    projects = []
    for pid, name, created in conn.execute(
        "SELECT id, name, created_at FROM projects ORDER BY name"
    ).fetchall():
        envs = [
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT environment FROM api_keys WHERE project_id = ? ORDER BY 1", (pid,)
            )
        ]
        keys = conn.execute(
            "SELECT count(*) FROM api_keys WHERE project_id = ? AND revoked_at IS NULL", (pid,)
        ).fetchone()[0]
        projects.append(
            {
                "id": pid,
                "name": name,
                "created_at": created,
                "environments": envs,
                "active_keys": keys,
            }
        )
    return projects


def list_keys(store: SQLiteStore, project_id: int) -> list[dict[str, Any]]:
    rows = (
        store._reader()
        .execute(
            "SELECT id, environment, prefix, created_at, revoked_at, scopes, env_only"
            " FROM api_keys WHERE project_id = ? ORDER BY id DESC",
            (project_id,),
        )
        .fetchall()
    )
    return [
        {
            "id": i,
            "environment": env,
            "prefix": prefix,
            "created_at": created,
            "revoked_at": revoked,
            "scopes": scopes.split(),
            "env_only": bool(env_only),
        }
        for i, env, prefix, created, revoked, scopes, env_only in rows
    ]


def set_key_scopes(
    store: SQLiteStore, project_id: int, key_id: int, scopes: list[str], env_only: bool
) -> bool:
    """Change what an active key of the project may do; False when there is no such key."""
    (cur,) = store._write(
        [
            (
                "UPDATE api_keys SET scopes = ?, env_only = ? WHERE id = ? AND project_id = ? "
                "AND revoked_at IS NULL",
                (" ".join(scopes), env_only, key_id, project_id),
            )
        ]
    )
    return cur.rowcount == 1


def revoke_key(store: SQLiteStore, project_id: int, key_id: int) -> bool:
    now = datetime.now(timezone.utc).isoformat()
    (cur,) = store._write(
        [
            (
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND project_id = ? "
                "AND revoked_at IS NULL",
                (now, key_id, project_id),
            )
        ]
    )
    return cur.rowcount == 1


def list_feedback(
    store: SQLiteStore, project_id: int, limit: int = 100, before_id: int | None = None
) -> list[dict[str, Any]]:
    """Feedback newest first, each with the event it rates (when that event has arrived)."""
    rows = (
        store._reader()
        .execute(
            "SELECT f.id, f.feedback_key, f.rating, f.better_response, f.created_us, e.body "
            "FROM feedback f LEFT JOIN events e "
            "ON e.project_id = f.project_id AND e.feedback_key = f.feedback_key "
            "WHERE f.project_id = ? AND (? IS NULL OR f.id < ?) ORDER BY f.id DESC LIMIT ?",
            (project_id, before_id, before_id, limit),
        )
        .fetchall()
    )
    out = []
    for fid, key, rating, better, created, body in rows:
        event = json.loads(body) if body else None
        out.append(
            {
                "id": fid,
                "feedback_key": key,
                "rating": rating,
                "better_response": better,
                "created_at": datetime.fromtimestamp(created / 1e6, timezone.utc).isoformat(),
                "event": event,
            }
        )
    return out


def project_id(store: SQLiteStore, name: str) -> int | None:
    row = store._reader().execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])
