"""Store queries for dashboard users: accounts, roles per project, invitations, sessions and
failed logins; plain functions on the SQLite store, made its methods in ``_sqlite``. Hashing
(passwords, tokens) is the server's business: these functions store and compare what they are
given. Times are microseconds since the epoch, passed in by the caller.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ._common import ROLES, Invitation, NameTaken, SessionUser, UserRecord

if TYPE_CHECKING:
    from ._sqlite import SQLiteStore

__all__ = [
    "ROLES",
    "NameTaken",
    "accept_invitation",
    "clear_failures",
    "count_failures",
    "count_users",
    "create_invitation",
    "create_session",
    "create_user",
    "delete_user",
    "invitation",
    "list_users",
    "record_failure",
    "remove_member",
    "revoke_session",
    "session_user",
    "set_password",
    "set_role",
    "user_by_name",
]


def _now_text() -> str:
    return datetime.now(timezone.utc).isoformat()


def _new_user(
    name: str, password_hash: str, is_owner: bool, where: str = ""
) -> tuple[str, tuple[Any, ...]]:
    """The INSERT of a user, made only when ``where`` (a condition, if any) holds."""
    return (
        "INSERT INTO users (name, password_hash, is_owner, created_at) SELECT ?, ?, ?, ?"
        + (f" WHERE {where}" if where else ""),
        (name, password_hash, is_owner, _now_text()),
    )


def count_users(store: SQLiteStore) -> int:
    return int(store._reader().execute("SELECT count(*) FROM users").fetchone()[0])


def create_user(
    store: SQLiteStore,
    name: str,
    password_hash: str,
    is_owner: bool = False,
    project_id: int | None = None,
    role: str | None = None,
    only_if_first: bool = False,
) -> int | None:
    """A new user (with a role in one project, if given); its id. ``only_if_first``: only
    when no user exists yet (None otherwise), checked in the same transaction, so two
    browsers bootstrapping at once make one owner."""
    where = "NOT EXISTS (SELECT 1 FROM users)" if only_if_first else ""
    statements = [_new_user(name, password_hash, is_owner, where)]
    if project_id is not None and role is not None:
        statements.append(
            (
                "INSERT INTO memberships (user_id, project_id, role)"
                " SELECT id, ?, ? FROM users WHERE name = ?",
                (project_id, role, name),
            )
        )
    try:
        cur, *_ = store._write(statements)
    except sqlite3.IntegrityError:
        raise NameTaken(f"the name {name!r} is taken") from None
    if cur.rowcount != 1:
        return None
    found = user_by_name(store, name)
    return None if found is None else int(found["id"])


def user_by_name(store: SQLiteStore, name: str) -> UserRecord | None:
    row = (
        store._reader()
        .execute("SELECT id, name, password_hash, is_owner FROM users WHERE name = ?", (name,))
        .fetchone()
    )
    if row is None:
        return None
    return {"id": row[0], "name": row[1], "password_hash": row[2], "is_owner": bool(row[3])}


def set_password(
    store: SQLiteStore, user_id: int, password_hash: str, now_us: int, keep: str | None = None
) -> None:
    """A new password; every session of the user ends, but ``keep`` (a session id's hash:
    the one that changed it)."""
    store._write(
        [
            ("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)),
            (
                "UPDATE sessions SET revoked_us = ? WHERE user_id = ? AND revoked_us IS NULL"
                " AND (CAST(? AS TEXT) IS NULL OR id_hash <> ?)",
                (now_us, user_id, keep, keep),
            ),
        ]
    )


def delete_user(store: SQLiteStore, user_id: int) -> bool:
    """Remove a user: their sessions and roles go at once (the foreign keys cascade)."""
    (cur,) = store._write([("DELETE FROM users WHERE id = ?", (user_id,))])
    return cur.rowcount == 1


def list_users(store: SQLiteStore, project_id: int | None = None) -> list[dict[str, Any]]:
    """Every user with their roles (``{project name: role}``), or a project's members with
    their role in it only: who manages one project learns nothing of the others."""
    conn = store._reader()
    if project_id is None:
        rows = conn.execute("SELECT id, name, is_owner, created_at FROM users ORDER BY name")
    else:
        rows = conn.execute(
            "SELECT u.id, u.name, u.is_owner, u.created_at FROM users u JOIN memberships m"
            " ON m.user_id = u.id WHERE m.project_id = ? ORDER BY u.name",
            (project_id,),
        )
    only, within = ("AND m.project_id = ?", (project_id,)) if project_id is not None else ("", ())
    users = []
    for uid, name, is_owner, created in rows.fetchall():
        roles = dict(
            conn.execute(
                "SELECT p.name, m.role FROM memberships m JOIN projects p ON p.id = m.project_id"
                f" WHERE m.user_id = ? {only} ORDER BY p.name",
                (uid, *within),
            ).fetchall()
        )
        users.append(
            {
                "id": uid,
                "name": name,
                "is_owner": bool(is_owner),
                "created_at": created,
                "roles": roles,
            }
        )
    return users


def set_role(store: SQLiteStore, user_id: int, project_id: int, role: str) -> bool:
    """Change a member's role in a project; False when they are not a member."""
    (cur,) = store._write(
        [
            (
                "UPDATE memberships SET role = ? WHERE user_id = ? AND project_id = ?",
                (role, user_id, project_id),
            )
        ]
    )
    return cur.rowcount == 1


def remove_member(store: SQLiteStore, user_id: int, project_id: int) -> bool:
    (cur,) = store._write(
        [
            (
                "DELETE FROM memberships WHERE user_id = ? AND project_id = ?",
                (user_id, project_id),
            )
        ]
    )
    return cur.rowcount == 1


# -- sessions ----------------------------------------------------------------------------


def create_session(
    store: SQLiteStore, user_id: int, id_hash: str, csrf: str, now_us: int, expires_us: int
) -> None:
    store._write(
        [
            # Sessions long over are dropped as new ones start: the table stays small.
            ("DELETE FROM sessions WHERE expires_us < ?", (now_us,)),
            (
                "INSERT INTO sessions (id_hash, user_id, csrf_token, created_us, expires_us)"
                " VALUES (?, ?, ?, ?, ?)",
                (id_hash, user_id, csrf, now_us, expires_us),
            ),
        ]
    )


def session_user(store: SQLiteStore, id_hash: str, now_us: int) -> SessionUser | None:
    """The user of a live session, with its CSRF token and the user's roles
    (``{project name: (project id, role)}``; the owner has ``admin`` in every project)."""
    conn = store._reader()
    row = conn.execute(
        "SELECT u.id, u.name, u.is_owner, s.csrf_token FROM sessions s JOIN users u"
        " ON u.id = s.user_id WHERE s.id_hash = ? AND s.revoked_us IS NULL AND s.expires_us > ?",
        (id_hash, now_us),
    ).fetchone()
    if row is None:
        return None
    uid, name, is_owner, csrf = row
    if is_owner:
        found = conn.execute("SELECT name, id, 'admin' FROM projects").fetchall()
    else:
        found = conn.execute(
            "SELECT p.name, p.id, m.role FROM memberships m JOIN projects p"
            " ON p.id = m.project_id WHERE m.user_id = ?",
            (uid,),
        ).fetchall()
    roles = {pname: (pid, role) for pname, pid, role in found}
    return {"id": uid, "name": name, "is_owner": bool(is_owner), "csrf": csrf, "roles": roles}


def revoke_session(store: SQLiteStore, id_hash: str, now_us: int) -> None:
    store._write(
        [
            (
                "UPDATE sessions SET revoked_us = ? WHERE id_hash = ? AND revoked_us IS NULL",
                (now_us, id_hash),
            )
        ]
    )


# -- invitations -------------------------------------------------------------------------


def create_invitation(
    store: SQLiteStore,
    token_hash: str,
    project_id: int,
    role: str,
    email: str | None,
    created_by: int,
    expires_us: int,
) -> None:
    store._write(
        [
            (
                "INSERT INTO invitations (token_hash, project_id, role, email, created_by,"
                " created_at, expires_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token_hash, project_id, role, email, created_by, _now_text(), expires_us),
            )
        ]
    )


# Unused, unexpired, and its maker may still invite to its project (the owner, or an admin
# of it): removing or demoting a user takes back the links they made.
_VALID = (
    "invitations.token_hash = ? AND invitations.used_at IS NULL AND invitations.expires_us > ?"
    " AND invitations.created_by IN (SELECT id FROM users WHERE is_owner <> 0 UNION"
    " SELECT user_id FROM memberships WHERE project_id = invitations.project_id"
    " AND role = 'admin')"
)


def invitation(store: SQLiteStore, token_hash: str, now_us: int) -> Invitation | None:
    """An invitation that can still be used: its project's name, role and email."""
    row = (
        store._reader()
        .execute(
            "SELECT p.name, invitations.role, invitations.email FROM invitations JOIN projects p"
            f" ON p.id = invitations.project_id WHERE {_VALID}",
            (token_hash, now_us),
        )
        .fetchone()
    )
    return None if row is None else {"project": row[0], "role": row[1], "email": row[2]}


def accept_invitation(
    store: SQLiteStore,
    token_hash: str,
    now_us: int,
    user_id: int | None = None,
    new_user: tuple[str, str] | None = None,
) -> int | None:
    """Use an invitation, once: the existing ``user_id``, or a ``new_user`` (name, password
    hash) made for it, joins the project with the invited role. The user's id, or None when
    the invitation is used, expired or unknown. One transaction: two people opening one link
    at once make one member, and a refused link makes no account."""
    statements: list[tuple[str, tuple[Any, ...]]] = []
    if new_user is not None:
        valid = f"EXISTS (SELECT 1 FROM invitations WHERE {_VALID})"
        sql, params = _new_user(*new_user, False, valid)
        statements.append((sql, (*params, token_hash, now_us)))
        who: tuple[str, tuple[Any, ...]] = ("(SELECT id FROM users WHERE name = ?)", (new_user[0],))
    else:
        who = ("?", (user_id,))
    statements += [
        (
            f"INSERT INTO memberships (user_id, project_id, role) SELECT {who[0]}, project_id,"
            # A member already gets the link's role when it is higher: a link never demotes
            # (a viewer who accepted an admin's link had stayed a viewer, the link used up).
            f" role FROM invitations WHERE {_VALID} ON CONFLICT (user_id, project_id)"
            f" DO UPDATE SET role = excluded.role"
            f" WHERE {_rank('excluded.role')} > {_rank('memberships.role')}",
            (*who[1], token_hash, now_us),
        ),
        (
            f"UPDATE invitations SET used_at = ?, used_by = {who[0]} WHERE {_VALID}",
            (_now_text(), *who[1], token_hash, now_us),
        ),
    ]
    try:
        *_, used = store._write(statements)
    except sqlite3.IntegrityError:
        raise NameTaken(f"the name {new_user[0] if new_user else ''!r} is taken") from None
    if used.rowcount != 1:
        return None
    if user_id is not None:
        return user_id
    found = user_by_name(store, new_user[0]) if new_user else None
    return None if found is None else int(found["id"])


def _rank(column: str) -> str:
    """SQL for a role's rank (``ROLES``' order: viewer, member, admin)."""
    cases = " ".join(f"WHEN '{role}' THEN {rank}" for rank, role in enumerate(ROLES))
    return f"(CASE {column} {cases} ELSE -1 END)"


# -- failed logins -----------------------------------------------------------------------


def record_failure(
    store: SQLiteStore,
    client: str,
    name: str,
    now_us: int,
    keep_us: int,
    limits: tuple[int, int] | None = None,
) -> bool:
    """Note a failed login; failures older than ``keep_us`` are dropped on the way. With
    ``limits`` (most failures by name, most from the client, within ``keep_us``), only while
    both are under them, checked in the same statement as the insert: concurrent attempts
    cannot all slip under a limit. True when the failure was noted."""
    name = name.lower()
    insert = "INSERT INTO login_failures (at_us, client, name) VALUES (?, ?, ?)"
    params: tuple[Any, ...] = (now_us, client, name)
    if limits is not None:
        since = now_us - keep_us
        insert = (
            "INSERT INTO login_failures (at_us, client, name) SELECT ?, ?, ? WHERE"
            " (SELECT count(*) FROM login_failures WHERE name = ? AND at_us >= ?) < ? AND"
            " (SELECT count(*) FROM login_failures WHERE client = ? AND at_us >= ?) < ?"
        )
        params += (name, since, limits[0], client, since, limits[1])
    _, cur = store._write(
        [("DELETE FROM login_failures WHERE at_us < ?", (now_us - keep_us,)), (insert, params)]
    )
    return cur.rowcount == 1


def count_failures(
    store: SQLiteStore, client: str, name: str, since_us: int
) -> tuple[int, int, int | None, int | None]:
    """Failures since ``since_us``: for ``name``, from ``client``, and the oldest of each."""
    conn = store._reader()
    by_name = conn.execute(
        "SELECT count(*), min(at_us) FROM login_failures WHERE name = ? AND at_us >= ?",
        (name.lower(), since_us),
    ).fetchone()
    by_client = conn.execute(
        "SELECT count(*), min(at_us) FROM login_failures WHERE client = ? AND at_us >= ?",
        (client, since_us),
    ).fetchone()
    return by_name[0], by_client[0], by_name[1], by_client[1]


def clear_failures(store: SQLiteStore, name: str) -> None:
    """A user who got in is not held back by their own earlier typos."""
    store._write([("DELETE FROM login_failures WHERE name = ?", (name.lower(),))])
