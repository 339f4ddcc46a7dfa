"""Store functions for alerts and budgets: the rules, budgets and channels users write (one
JSON document each), the state of each rule per group, the history (state changes and every
notification attempt), and the lease that lets one server process evaluate at a time.

Plain functions on the store, made its methods in ``_sqlite``, written in the portable subset
(``?`` placeholders, ``ON CONFLICT``, no SQLite-only function) so that every backend runs them
through its ``_reader()`` and ``_write()``. Times are microseconds; documents are JSON text,
parsed here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._sqlite import SQLiteStore

__all__ = [
    "ALERT_KINDS",
    "alert_history",
    "alert_items",
    "alert_states",
    "claim_notifications",
    "delete_alert_item",
    "drop_lease",
    "every_alert_item",
    "finish_notification",
    "put_alert_item",
    "record_alerts",
    "take_lease",
]

ALERT_KINDS = ("rule", "budget", "channel")
_STATE_COLUMNS = (
    "project_id, kind, name, group_key, state, value, threshold, events, since_us,"
    " evaluated_us, extra"
)


def _iso(us: int | None) -> str | None:
    return None if us is None else datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat()


def _now_us() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1_000_000)


def alert_items(store: SQLiteStore, project_id: int, kind: str) -> list[dict[str, Any]]:
    """The project's rules, budgets or channels (``kind``), by name: each ``{"name", "body",
    "created_at", "updated_at"}``."""
    rows = store._reader().execute(
        "SELECT name, body, created_us, updated_us FROM alert_items"
        " WHERE project_id = ? AND kind = ? ORDER BY name",
        (project_id, kind),
    )
    return [
        {"name": n, "body": json.loads(b), "created_at": _iso(c), "updated_at": _iso(u)}
        for n, b, c, u in rows
    ]


def every_alert_item(store: SQLiteStore, kinds: Sequence[str]) -> list[dict[str, Any]]:
    """Every project's items of ``kinds``: ``{"project_id", "project", "kind", "name",
    "body"}`` (what the evaluator reads each cycle)."""
    marks = ", ".join("?" for _ in kinds)
    rows = store._reader().execute(
        "SELECT a.project_id, p.name, a.kind, a.name, a.body FROM alert_items a"
        f" JOIN projects p ON p.id = a.project_id WHERE a.kind IN ({marks})"
        " ORDER BY a.project_id, a.kind, a.name",
        tuple(kinds),
    )
    return [
        {"project_id": pid, "project": project, "kind": k, "name": n, "body": json.loads(b)}
        for pid, project, k, n, b in rows
    ]


def put_alert_item(
    store: SQLiteStore,
    project_id: int,
    kind: str,
    name: str,
    body: dict[str, Any],
    create: bool = False,
) -> bool:
    """Store a rule, budget or channel; ``create``: only when the name is free (False when
    it is taken), else replace the one of that name. A changed rule keeps its state."""
    now = _now_us()
    conflict = (
        "DO NOTHING"
        if create
        else "DO UPDATE SET body = excluded.body, updated_us = excluded.updated_us"
    )
    (cur,) = store._write(
        [
            (
                "INSERT INTO alert_items (project_id, kind, name, body, created_us, updated_us)"
                f" VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, kind, name) {conflict}",
                (project_id, kind, name, json.dumps(body), now, now),
            )
        ]
    )
    return cur.rowcount == 1


def delete_alert_item(store: SQLiteStore, project_id: int, kind: str, name: str) -> bool:
    """Remove a rule, budget or channel with its states and history; False when none."""
    key = (project_id, kind, name)
    where = "WHERE project_id = ? AND kind = ? AND name = ?"
    cur, *_ = store._write(
        [
            (f"DELETE FROM alert_items {where}", key),
            (f"DELETE FROM alert_states {where}", key),
            (f"DELETE FROM alert_history {where}", key),
            (f"DELETE FROM alert_outbox {where}", key),
        ]
    )
    return cur.rowcount > 0


def alert_states(store: SQLiteStore, project_id: int | None = None) -> list[dict[str, Any]]:
    """The state of each rule and budget per group (of one project, or all): ``state`` (ok,
    firing, resolved), ``value``, ``threshold``, ``events``, ``since_us``, ``evaluated_us``,
    ``group`` (the group's key, {} without a group-by) and ``extra`` (a budget's period)."""
    sql = f"SELECT {_STATE_COLUMNS} FROM alert_states"
    params: tuple[Any, ...] = ()
    if project_id is not None:
        sql += " WHERE project_id = ?"
        params = (project_id,)
    out = []
    for row in store._reader().execute(sql + " ORDER BY project_id, kind, name, group_key", params):
        pid, kind, name, group, state, value, threshold, events, since, evaluated, extra = row
        out.append(
            {
                "project_id": pid,
                "kind": kind,
                "name": name,
                "group": json.loads(group),
                "state": state,
                "value": value,
                "threshold": threshold,
                "events": events,
                "since_us": since,
                "since": _iso(since),
                "evaluated_us": evaluated,
                "evaluated_at": _iso(evaluated),
                "extra": json.loads(extra),
            }
        )
    return out


def record_alerts(
    store: SQLiteStore,
    states: Sequence[dict[str, Any]],
    history: Sequence[dict[str, Any]],
    outbox: Sequence[dict[str, Any]] = (),
    forget: Sequence[dict[str, Any]] = (),
) -> None:
    """Save states (each as ``alert_states`` returns them, ``project_id`` included), drop
    the ``forget`` ones (the same shape; their project, kind, name and group count), add
    history entries (``project_id``, ``kind``, ``name``, ``group``, ``at_us``, ``event``,
    ``detail``) and notifications to send (``project_id``, ``id``, ``kind``, ``name``,
    ``channel``, ``note``, ``at_us``: see ``claim_notifications``), in one transaction."""
    statements: list[tuple[str, Sequence[Any]]] = []
    for s in states:
        statements.append(
            (
                f"INSERT INTO alert_states ({_STATE_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (project_id, kind, name, group_key) DO UPDATE SET"
                " state = excluded.state, value = excluded.value,"
                " threshold = excluded.threshold, events = excluded.events,"
                " since_us = excluded.since_us, evaluated_us = excluded.evaluated_us,"
                " extra = excluded.extra",
                (
                    s["project_id"],
                    s["kind"],
                    s["name"],
                    json.dumps(s["group"], sort_keys=True),
                    s["state"],
                    s["value"],
                    s["threshold"],
                    s["events"],
                    s["since_us"],
                    s["evaluated_us"],
                    json.dumps(s.get("extra") or {}),
                ),
            )
        )
    statements += [
        (
            "DELETE FROM alert_states"
            " WHERE project_id = ? AND kind = ? AND name = ? AND group_key = ?",
            (s["project_id"], s["kind"], s["name"], json.dumps(s["group"], sort_keys=True)),
        )
        for s in forget
    ]
    statements += [_history(h) for h in history]
    for o in outbox:
        statements.append(
            (
                "INSERT INTO alert_outbox (project_id, id, kind, name, channel, note, state,"
                " attempts, next_us, claimed_until_us, created_us, done_us)"
                " VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, 0, 0, ?, NULL)",
                (
                    o["project_id"],
                    o["id"],
                    o["kind"],
                    o["name"],
                    o["channel"],
                    json.dumps(o["note"]),
                    o["at_us"],
                ),
            )
        )
    # A rule deleted while its cycle ran (``delete_alert_item`` between the evaluator's read
    # and this write) leaves nothing behind: no state firing for ever, no notification. Two
    # statements for every state and pending notification (a few hundred rows, each looked up
    # in the items' key), and the history of the rules this call wrote it for (by its index).
    if states or outbox:
        statements += [
            (f"DELETE FROM alert_states WHERE {_ORPHAN.format(table='alert_states')}", ()),
            (
                "DELETE FROM alert_outbox WHERE state = 'pending'"
                f" AND {_ORPHAN.format(table='alert_outbox')}",
                (),
            ),
        ]
    for key in sorted({(h["project_id"], h["kind"], h["name"]) for h in history}):
        statements.append(
            (
                "DELETE FROM alert_history WHERE project_id = ? AND kind = ? AND name = ?"
                f" AND {_ORPHAN.format(table='alert_history')}",
                key,
            )
        )
    if statements:
        store._write(statements)


def _history(h: dict[str, Any]) -> tuple[str, Sequence[Any]]:
    return (
        "INSERT INTO alert_history (project_id, kind, name, group_key, at_us, event,"
        " detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            h["project_id"],
            h["kind"],
            h["name"],
            json.dumps(h.get("group") or {}, sort_keys=True),
            h["at_us"],
            h["event"],
            json.dumps(h.get("detail") or {}),
        ),
    )


# Rows of a rule or budget that no longer exists.
_ORPHAN = (
    "NOT EXISTS (SELECT 1 FROM alert_items i WHERE i.project_id = {table}.project_id"
    " AND i.kind = {table}.kind AND i.name = {table}.name)"
)
# Notifications sent or given up are kept this long (microseconds), then dropped.
_OUTBOX_KEEP_US = 30 * 86_400 * 1_000_000


def claim_notifications(
    store: SQLiteStore, now_us: int, until_us: int, limit: int = 50
) -> list[dict[str, Any]]:
    """Take up to ``limit`` notifications due (pending, their next attempt at or before
    ``now_us``, claimed by nobody or by a claim that ran out) for this caller until
    ``until_us``: ``{"project_id", "id", "kind", "name", "channel", "note", "attempts"}``.
    A notification claimed is not handed to another caller before its claim runs out, so
    two processes do not send it twice; one whose sender died is taken again after."""
    store._write(
        [
            (
                "DELETE FROM alert_outbox WHERE state <> 'pending' AND done_us < ?",
                (now_us - _OUTBOX_KEEP_US,),
            )
        ]
    )
    due = (
        store._reader()
        .execute(
            "SELECT project_id, id, kind, name, channel, note, attempts FROM alert_outbox"
            " WHERE state = 'pending' AND next_us <= ? AND claimed_until_us < ?"
            " ORDER BY next_us LIMIT ?",
            (now_us, now_us, limit),
        )
        .fetchall()
    )
    if not due:
        return []
    cursors = store._write(
        [
            (
                "UPDATE alert_outbox SET claimed_until_us = ? WHERE project_id = ? AND id = ?"
                " AND state = 'pending' AND claimed_until_us < ?",
                (until_us, row[0], row[1], now_us),
            )
            for row in due
        ]
    )
    return [
        {
            "project_id": pid,
            "id": nid,
            "kind": kind,
            "name": name,
            "channel": channel,
            "note": json.loads(note),
            "attempts": attempts,
        }
        for (pid, nid, kind, name, channel, note, attempts), cur in zip(due, cursors, strict=True)
        if cur.rowcount == 1
    ]


def finish_notification(
    store: SQLiteStore,
    project_id: int,
    notification_id: str,
    state: str,
    attempts: int,
    next_us: int,
    claimed_until_us: int,
    history: dict[str, Any],
) -> None:
    """Record an attempt at a claimed notification: its new ``state`` (``pending`` to try
    again at ``next_us``, held until ``claimed_until_us``; ``sent``; ``failed``: given up)
    and the attempt's history entry, in one transaction."""
    done = None if state == "pending" else history["at_us"]
    store._write(
        [
            (
                "UPDATE alert_outbox SET state = ?, attempts = ?, next_us = ?,"
                " claimed_until_us = ?, done_us = ? WHERE project_id = ? AND id = ?",
                (state, attempts, next_us, claimed_until_us, done, project_id, notification_id),
            ),
            _history(history),
        ]
    )


def alert_history(
    store: SQLiteStore,
    project_id: int,
    kind: str | None = None,
    name: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """History entries, newest first (of one rule or budget, when named)."""
    sql = (
        "SELECT kind, name, group_key, at_us, event, detail FROM alert_history WHERE project_id = ?"
    )
    params: list[Any] = [project_id]
    if kind is not None:
        sql += " AND kind = ?"
        params.append(kind)
    if name is not None:
        sql += " AND name = ?"
        params.append(name)
    rows = store._reader().execute(sql + " ORDER BY at_us DESC, id DESC LIMIT ?", [*params, limit])
    return [
        {
            "kind": k,
            "name": n,
            "group": json.loads(g),
            "at": _iso(at),
            "event": e,
            "detail": json.loads(d),
        }
        for k, n, g, at, e, d in rows
    ]


def take_lease(store: SQLiteStore, name: str, holder: str, now_us: int, ttl_us: int) -> bool:
    """Hold (or keep holding) the lease ``name`` until ``now_us + ttl_us``: True when
    ``holder`` has it, False while another holder's lease has not expired. A process that
    dies stops renewing, and its lease passes to the next taker once it expires."""
    (cur,) = store._write(
        [
            (
                "INSERT INTO alert_lease (project_id, name, holder, expires_us)"
                " VALUES (0, ?, ?, ?) ON CONFLICT (project_id, name) DO UPDATE SET"
                " holder = excluded.holder, expires_us = excluded.expires_us"
                " WHERE alert_lease.holder = excluded.holder OR alert_lease.expires_us < ?",
                (name, holder, now_us + ttl_us, now_us),
            )
        ]
    )
    return cur.rowcount == 1


def drop_lease(store: SQLiteStore, name: str, holder: str) -> None:
    """Give the lease up (a process that stops cleanly), if ``holder`` has it."""
    store._write(
        [
            (
                "DELETE FROM alert_lease WHERE project_id = 0 AND name = ? AND holder = ?",
                (name, holder),
            )
        ]
    )
