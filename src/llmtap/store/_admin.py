"""Store queries for administration and the dashboard: projects, keys, feedback, meta values.

Plain functions on the SQLite store, made its methods in ``_sqlite``; kept apart from the
event path there. Apart from looking up a key (every request), these run rarely and on small
tables.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ._common import KeyInfo

if TYPE_CHECKING:
    from ._sqlite import SQLiteStore

__all__ = [
    "create_key",
    "ensure_project",
    "get_meta",
    "key_by_hash",
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


def ensure_project(store: SQLiteStore, name: str) -> int:
    """The id of the project ``name``, made if missing."""
    now = datetime.now(timezone.utc).isoformat()
    store._write(
        [
            (
                "INSERT INTO projects (name, created_at) VALUES (?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, now),
            )
        ]
    )
    row = store._reader().execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
    return int(row[0])


def create_key(
    store: SQLiteStore,
    project: str,
    environment: str,
    key_hash: str,
    prefix: str,
    scopes: Iterable[str] = ("ingest",),
    env_only: bool = False,
) -> int:
    """A new API key of ``project`` (made if missing), stored by its hash; its id."""
    project_id = ensure_project(store, project)
    now = datetime.now(timezone.utc).isoformat()
    store._write(
        [
            (
                "INSERT INTO api_keys (project_id, environment, key_hash, prefix, created_at,"
                " scopes, env_only) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (project_id, environment, key_hash, prefix, now, " ".join(scopes), env_only),
            )
        ]
    )
    row = store._reader().execute("SELECT id FROM api_keys WHERE key_hash = ?", (key_hash,))
    return int(row.fetchone()[0])


def key_by_hash(store: SQLiteStore, key_hash: str) -> KeyInfo | None:
    """The active (not revoked) key with this hash."""
    row = (
        store._reader()
        .execute(
            "SELECT k.id, k.project_id, p.name, k.environment, k.scopes, k.env_only"
            " FROM api_keys k JOIN projects p ON p.id = k.project_id "
            "WHERE k.key_hash = ? AND k.revoked_at IS NULL",
            (key_hash,),
        )
        .fetchone()
    )
    if row is None:
        return None
    key_id, pid, project, environment, scopes, env_only = row
    return KeyInfo(key_id, pid, project, environment, frozenset(scopes.split()), bool(env_only))


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
    cur, _ = store._write(
        [
            (
                "UPDATE api_keys SET scopes = ?, env_only = ? WHERE id = ? AND project_id = ? "
                "AND revoked_at IS NULL",
                (" ".join(scopes), env_only, key_id, project_id),
            ),
            _keys_changed(),
        ]
    )
    return cur.rowcount == 1


def revoke_key(store: SQLiteStore, project_id: int, key_id: int) -> bool:
    now = datetime.now(timezone.utc).isoformat()
    cur, _ = store._write(
        [
            (
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND project_id = ? "
                "AND revoked_at IS NULL",
                (now, key_id, project_id),
            ),
            _keys_changed(),
        ]
    )
    return cur.rowcount == 1


# A meta value that changes with every key revoked or rescoped: the servers' key caches
# (``server.auth.KeyCache``) look at it every second and start afresh when it changed.
KEYS_CHANGED = "keys_changed"


def _keys_changed() -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (KEYS_CHANGED, uuid.uuid4().hex),
    )


def list_feedback(
    store: SQLiteStore, project_id: int, limit: int = 100, before_id: int | None = None
) -> list[dict[str, Any]]:
    """Feedback newest first, each with the event it rates (when that event has arrived; the
    earliest, should several events share its key: each feedback is listed once). An event
    rated many times on the page is read once, and its feedback share it."""
    reader = store._reader()
    rows = reader.execute(
        "SELECT f.id, f.feedback_key, f.rating, f.better_response, f.created_us FROM feedback f"
        " WHERE f.project_id = ? AND (? IS NULL OR f.id < ?) ORDER BY f.id DESC LIMIT ?",
        (project_id, before_id, before_id, limit),
    ).fetchall()
    events: dict[str, Any] = {}
    for key in sorted({row[1] for row in rows}):
        found = reader.execute(
            "SELECT body FROM events WHERE project_id = ? AND feedback_key = ?"
            " ORDER BY started_us, id LIMIT 1",
            (project_id, key),
        ).fetchone()
        events[key] = found[0] if found else None
    parsed = {key: json.loads(body) for key, body in events.items() if body}
    return [
        {
            "id": fid,
            "feedback_key": key,
            "rating": rating,
            "better_response": better,
            "created_at": datetime.fromtimestamp(created / 1e6, timezone.utc).isoformat(),
            "event": parsed.get(key),
        }
        for fid, key, rating, better, created in rows
    ]


def project_id(store: SQLiteStore, name: str) -> int | None:
    row = store._reader().execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])
