"""Boards, their versions and their share links: plain functions on a store, made its methods
in ``_sqlite``. Portable SQL only (``?`` placeholders, ON CONFLICT, no SQLite functions), so a
PostgreSQL store can take this module as it is.

A board's spec is a JSON document stored as text; it is checked before it gets here (the
server's ``boards.spec``), and parsed back in Python. Saving a board appends a version in the
same transaction, so the history is complete, back to the ``VERSIONS_KEPT`` newest (a board
saved in a loop, by a script or a leaked key, would otherwise grow without end). Links are
bounded the same way: ``LIVE_LINKS`` live ones a board, and the newest ``DEAD_LINKS_KEPT``
revoked or expired ones kept to be listed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._sqlite import SQLiteStore

__all__ = [
    "DEAD_LINKS_KEPT",
    "LIVE_LINKS",
    "VERSIONS_KEPT",
    "attribute_keys",
    "board",
    "board_version",
    "board_versions",
    "create_board",
    "create_share",
    "delete_board",
    "list_board_templates",
    "list_boards",
    "list_shares",
    "revoke_share",
    "share_by_hash",
    "update_board",
]

_SUMMARY = "id, name, owner, is_template, version, created_at, updated_at"
VERSIONS_KEPT = 100  # a board's newest versions kept (Grafana keeps 20)
LIVE_LINKS = 100  # live links a board may have at once
DEAD_LINKS_KEPT = 100  # a board's newest revoked or expired links, kept to be listed


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _iso_us(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat()


def _summary(row: Any) -> dict[str, Any]:
    board_id, name, owner, is_template, version, created_at, updated_at = row
    return {
        "id": board_id,
        "name": name,
        "owner": owner,
        "is_template": bool(is_template),
        "version": version,
        "created_at": created_at,
        "updated_at": updated_at,
    }


def list_boards(store: SQLiteStore, project_id: int) -> list[dict[str, Any]]:
    rows = store._reader().execute(
        f"SELECT {_SUMMARY} FROM boards WHERE project_id = ? ORDER BY name, id", (project_id,)
    )
    return [_summary(row) for row in rows]


def list_board_templates(store: SQLiteStore) -> list[dict[str, Any]]:
    """Boards marked as templates, of every project, with their specs (what another project
    copies) and their project's name."""
    rows = store._reader().execute(
        f"SELECT {', '.join('b.' + c for c in _SUMMARY.split(', '))}, b.spec, p.name"
        " FROM boards b JOIN projects p ON p.id = b.project_id"
        " WHERE b.is_template = 1 ORDER BY p.name, b.name, b.id"
    )
    return [{**_summary(row[:7]), "spec": json.loads(row[7]), "project": row[8]} for row in rows]


def board(store: SQLiteStore, project_id: int, board_id: str) -> dict[str, Any] | None:
    row = (
        store._reader()
        .execute(
            f"SELECT {_SUMMARY}, spec FROM boards WHERE project_id = ? AND id = ?",
            (project_id, board_id),
        )
        .fetchone()
    )
    return None if row is None else {**_summary(row[:7]), "spec": json.loads(row[7])}


def _append_version(project_id: int, board_id: str, saved_by: str | None) -> tuple[str, Any]:
    """The statement that copies the board as it now is into its history."""
    return (
        "INSERT INTO board_versions (project_id, board_id, version, name, spec, saved_by,"
        " saved_at) SELECT project_id, id, version, name, spec, ?, updated_at FROM boards"
        " WHERE project_id = ? AND id = ?",
        (saved_by, project_id, board_id),
    )


def create_board(
    store: SQLiteStore,
    project_id: int,
    board_id: str,
    name: str,
    spec: dict[str, Any],
    owner: str | None,
    is_template: bool = False,
) -> bool:
    """A new board (version 1); False when the project has a board ``board_id`` already."""
    now = _now()
    cursors = store._write(
        [
            (
                "INSERT INTO boards (project_id, id, name, spec, owner, is_template, version,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)"
                " ON CONFLICT (project_id, id) DO NOTHING",
                (project_id, board_id, name, json.dumps(spec), owner, int(is_template), now, now),
            ),
            (
                "INSERT INTO board_versions (project_id, board_id, version, name, spec,"
                " saved_by, saved_at) VALUES (?, ?, 1, ?, ?, ?, ?)"
                " ON CONFLICT (project_id, board_id, version) DO NOTHING",
                (project_id, board_id, name, json.dumps(spec), owner, now),
            ),
        ]
    )
    return cursors[0].rowcount == 1


def update_board(
    store: SQLiteStore,
    project_id: int,
    board_id: str,
    name: str,
    spec: dict[str, Any],
    is_template: bool,
    saved_by: str | None,
) -> int | None:
    """Save a new version of a board; its number, or None when there is no such board."""
    cursors = store._write(
        [
            (
                "UPDATE boards SET name = ?, spec = ?, is_template = ?, version = version + 1,"
                " updated_at = ? WHERE project_id = ? AND id = ?",
                (name, json.dumps(spec), int(is_template), _now(), project_id, board_id),
            ),
            _append_version(project_id, board_id, saved_by),
            (
                "DELETE FROM board_versions WHERE project_id = ? AND board_id = ? AND version"
                " <= (SELECT version FROM boards WHERE project_id = ? AND id = ?) - ?",
                (project_id, board_id, project_id, board_id, VERSIONS_KEPT),
            ),
        ]
    )
    if cursors[0].rowcount != 1:
        return None
    found = board(store, project_id, board_id)
    return None if found is None else int(found["version"])


def board_versions(store: SQLiteStore, project_id: int, board_id: str) -> list[dict[str, Any]]:
    """A board's saved versions, newest first, without their specs."""
    rows = store._reader().execute(
        "SELECT version, name, saved_by, saved_at FROM board_versions"
        " WHERE project_id = ? AND board_id = ? ORDER BY version DESC",
        (project_id, board_id),
    )
    keys = ("version", "name", "saved_by", "saved_at")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def board_version(
    store: SQLiteStore, project_id: int, board_id: str, version: int
) -> dict[str, Any] | None:
    row = (
        store._reader()
        .execute(
            "SELECT version, name, saved_by, saved_at, spec FROM board_versions"
            " WHERE project_id = ? AND board_id = ? AND version = ?",
            (project_id, board_id, version),
        )
        .fetchone()
    )
    if row is None:
        return None
    keys = ("version", "name", "saved_by", "saved_at")
    return {**dict(zip(keys, row[:4], strict=True)), "spec": json.loads(row[4])}


def delete_board(store: SQLiteStore, project_id: int, board_id: str) -> bool:
    """Remove a board with its history and its share links."""
    where = (project_id, board_id)
    cursors = store._write(
        [
            ("DELETE FROM boards WHERE project_id = ? AND id = ?", where),
            ("DELETE FROM board_versions WHERE project_id = ? AND board_id = ?", where),
            ("DELETE FROM board_shares WHERE project_id = ? AND board_id = ?", where),
        ]
    )
    return cursors[0].rowcount == 1


def create_share(
    store: SQLiteStore,
    project_id: int,
    share_id: str,
    board_id: str,
    token_hash: str,
    created_by: str | None,
    expires_us: int | None,
    allow_bodies: bool,
) -> bool:
    """A new link; False when the board has ``LIVE_LINKS`` live ones already. The board's
    revoked and expired links past the newest ``DEAD_LINKS_KEPT`` go."""
    now_us = int(datetime.now(timezone.utc).timestamp() * 1_000_000)
    board_of = "project_id = ? AND board_id = ?"
    live = f"{board_of} AND revoked_at IS NULL AND (expires_us IS NULL OR expires_us > ?)"
    dead = f"{board_of} AND (revoked_at IS NOT NULL OR expires_us <= ?)"
    cursors = store._write(
        [
            (
                "INSERT INTO board_shares (project_id, id, board_id, token_hash, created_by,"
                " created_at, expires_us, allow_bodies) SELECT ?, ?, ?, ?, ?, ?, ?, ?"
                f" WHERE (SELECT count(*) FROM board_shares WHERE {live}) < ?",
                (
                    project_id,
                    share_id,
                    board_id,
                    token_hash,
                    created_by,
                    _now(),
                    expires_us,
                    int(allow_bodies),
                    project_id,
                    board_id,
                    now_us,
                    LIVE_LINKS,
                ),
            ),
            (
                f"DELETE FROM board_shares WHERE {dead} AND id NOT IN (SELECT id FROM"
                f" board_shares WHERE {dead} ORDER BY created_at DESC, id LIMIT ?)",
                (project_id, board_id, now_us, project_id, board_id, now_us, DEAD_LINKS_KEPT),
            ),
        ]
    )
    return cursors[0].rowcount == 1


def share_by_hash(store: SQLiteStore, token_hash: str, now_us: int) -> dict[str, Any] | None:
    """The live (not revoked, not expired) link with this token hash, its use noted (at most
    once a minute: a page read by many is no stream of writes); None otherwise."""
    row = (
        store._reader()
        .execute(
            "SELECT project_id, id, board_id, allow_bodies, last_used_at FROM board_shares"
            " WHERE token_hash = ? AND revoked_at IS NULL"
            " AND (expires_us IS NULL OR expires_us > ?)",
            (token_hash, now_us),
        )
        .fetchone()
    )
    if row is None:
        return None
    project_id, share_id, board_id, allow_bodies, last_used = row
    now = datetime.now(timezone.utc)
    if last_used is None or last_used < (now - timedelta(minutes=1)).isoformat():
        store._write(
            [
                (
                    "UPDATE board_shares SET last_used_at = ? WHERE project_id = ? AND id = ?",
                    (now.isoformat(), project_id, share_id),
                )
            ]
        )
    return {
        "project_id": project_id,
        "id": share_id,
        "board_id": board_id,
        "allow_bodies": bool(allow_bodies),
    }


def list_shares(store: SQLiteStore, project_id: int) -> list[dict[str, Any]]:
    """The project's links, newest first, revoked ones included (never the token)."""
    keys = (
        "id",
        "board_id",
        "board_name",
        "created_by",
        "created_at",
        "expires_us",
        "revoked_at",
        "last_used_at",
        "allow_bodies",
    )
    rows = store._reader().execute(
        "SELECT s.id, s.board_id, COALESCE(b.name, ''), s.created_by, s.created_at,"
        " s.expires_us, s.revoked_at, s.last_used_at, s.allow_bodies FROM board_shares s"
        " LEFT JOIN boards b ON b.project_id = s.project_id AND b.id = s.board_id"
        " WHERE s.project_id = ? ORDER BY s.created_at DESC, s.id",
        (project_id,),
    )
    out = []
    for row in rows:
        share = dict(zip(keys, row, strict=True))
        share["allow_bodies"] = bool(share["allow_bodies"])
        expires = share.pop("expires_us")
        share["expires_at"] = None if expires is None else _iso_us(expires)
        out.append(share)
    return out


def revoke_share(store: SQLiteStore, project_id: int, share_id: str) -> bool:
    """Revoke a live link; False when the project has no such link live."""
    (cursor,) = store._write(
        [
            (
                "UPDATE board_shares SET revoked_at = ? WHERE project_id = ? AND id = ?"
                " AND revoked_at IS NULL",
                (_now(), project_id, share_id),
            )
        ]
    )
    return cursor.rowcount == 1


def attribute_keys(store: SQLiteStore, project_id: int) -> list[dict[str, Any]]:
    """The attribute keys seen in the project, each with how many distinct values it has."""
    store.catch_up()
    rows = store._reader().execute(
        "SELECT key, n_values FROM attr_keys WHERE project_id = ? ORDER BY key", (project_id,)
    )
    return [{"key": key, "values": n} for key, n in rows]
