"""The SQLite store's read side: one event with its feedback, the events list (filters, text
search, sorting, cursors), stats, templates, and the price overrides with the unpriced tally.

Plain functions on the store (its reading connection, its write lock), made its methods in
``_sqlite``. Each takes a project and a filter object and returns plain data (dicts and lists):
the HTTP API and the dashboard render the same answers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from . import _rederive, _stats
from ._common import EventFilter, decode_cursor, encode_cursor
from ._dialect import SQLITE, SUMMARY_CHARS, Dialect, dialect_of

if TYPE_CHECKING:
    from ._sqlite import SQLiteStore

__all__ = [
    "PAGE_BYTES",
    "SUMMARY_CHARS",
    "event_where",
    "get_event",
    "iter_events",
    "list_events",
    "price_overrides",
    "set_price_override",
    "stats",
    "stats_many",
    "templates",
    "unpriced_models",
]
_LIST_COLUMNS = "seq, started_us, body, environment, template_revision, cost_usd"

# A page of events stops, with a cursor, once its events' stored bodies pass this many bytes
# (one event at least): events can be tens of megabytes each, and a page is held in memory.
PAGE_BYTES = 8 * 1024 * 1024


def event_where(
    project_id: int, f: EventFilter, alias: str = "e", dialect: Dialect = SQLITE
) -> tuple[str, list[Any]]:
    """The WHERE clause (without the word) selecting the events ``f`` asks for, cursor aside."""
    a = alias
    where = [f"{a}.project_id = ?"]
    params: list[Any] = [project_id]
    for name in EventFilter.EQUALS:
        value = getattr(f, name)
        if value is not None:
            where.append(f"{a}.{name} = ?")
            params.append(value)
    if f.from_us is not None:
        where.append(f"{a}.started_us >= ?")
        params.append(f.from_us)
    if f.to_us is not None:
        where.append(f"{a}.started_us < ?")
        params.append(f.to_us)
    for key, value in f.attributes.items():
        where.append(dialect.attr_match(a))
        params.extend(dialect.attr_params(project_id, key, value))
    if f.q is not None and (match := dialect.text_match(a, project_id, f.q)) is not None:
        where.append(match[0])
        params.extend(match[1])
    feedback = f"SELECT 1 FROM feedback fb WHERE fb.project_id = {a}.project_id AND fb.feedback_key = {a}.feedback_key"  # noqa: E501
    if f.has_feedback is not None:
        where.append(f"{'' if f.has_feedback else 'NOT '}EXISTS ({feedback})")
    if f.rating_min is not None or f.rating_max is not None:
        where.append(f"EXISTS ({feedback} AND fb.rating >= ? AND fb.rating <= ?)")
        params.extend(
            [
                f.rating_min if f.rating_min is not None else 0.0,
                f.rating_max if f.rating_max is not None else 1.0,
            ]
        )
    return " AND ".join(where), params


def _event_out(row: Any) -> dict[str, Any]:
    body, environment, revision, cost = row
    event: dict[str, Any] = json.loads(body)
    event["environment"] = environment
    event["template_revision"] = revision
    event["cost_usd"] = cost
    return event


def _summary_out(row: Any) -> dict[str, Any]:
    body, output, error_type, message, status_code, *rest = row
    event = _event_out((body, *rest))
    event["output_text"] = output
    has_error = error_type is not None or message is not None
    event["error"] = (
        {"type": error_type, "message": message, "status_code": status_code} if has_error else None
    )
    event["summary"] = True
    return event


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat()


def _derived(store: SQLiteStore) -> sqlite3.Connection:
    """The queries' reading connection (a replica's, with ``--read-db``), once every event
    stored so far is derived (on the primary: a replica has the derived rows when it has
    replayed them)."""
    store.catch_up()
    return store._query_reader(derived=True)


# -- one event ---------------------------------------------------------------------------------


def get_event(store: SQLiteStore, project_id: int, event_id: str) -> dict[str, Any] | None:
    """One event with its feedback (a list, oldest first); None when the project has none with
    this id."""
    conn = store._query_reader()
    row = conn.execute(
        f"SELECT {_LIST_COLUMNS}, feedback_key FROM events WHERE project_id = ? AND id = ?",
        (project_id, event_id),
    ).fetchone()
    if row is None:
        return None
    event = _event_out(row[2:6])
    event["feedback"], left_out = _feedback(conn, project_id, row[6])
    if left_out:
        event["feedback_left_out"] = left_out
    return event


# What one event's read holds of its feedback: the newest, so many and so many characters of
# better responses at most (one at least). Anyone with the key can add feedback to an event,
# each up to a megabyte: without a bound, the event would grow too big to read.
FEEDBACK_SHOWN = 100
FEEDBACK_CHARS = 2_000_000


def _feedback(
    conn: sqlite3.Connection, project_id: int, feedback_key: str | None
) -> tuple[list[dict[str, Any]], int]:
    """The feedback under ``feedback_key`` an event's read shows, oldest first; and how many
    older ones it leaves out."""
    if feedback_key is None:
        return [], 0
    rows = conn.execute(
        "SELECT rating, better_response, created_us, total FROM (SELECT id, rating,"
        " better_response, created_us, count(*) OVER () AS total,"
        " sum(coalesce(length(better_response), 0)) OVER (ORDER BY id DESC)"
        " - coalesce(length(better_response), 0) AS before"
        " FROM feedback WHERE project_id = ? AND feedback_key = ?) AS f"
        " WHERE before < ? ORDER BY id DESC LIMIT ?",
        (project_id, feedback_key, FEEDBACK_CHARS, FEEDBACK_SHOWN),
    ).fetchall()
    shown = [
        {"rating": rating, "better_response": better, "created_at": _iso(created)}
        for rating, better, created, _ in reversed(rows)
    ]
    return shown, (rows[0][3] - len(rows) if rows else 0)


# -- the events list ---------------------------------------------------------------------------


def list_events(
    store: SQLiteStore,
    project_id: int,
    f: EventFilter,
    *,
    summary: bool = False,
    max_bytes: int = PAGE_BYTES,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of events, sorted as ``f.sort`` says, and the cursor of the next page. A page
    has ``f.limit`` events at most, fewer when their bodies pass ``max_bytes``. With
    ``summary``, events come without request, response, template and attributes, their
    output and error message cut to ``SUMMARY_CHARS`` (marked ``"summary": true``): what
    a list shows, at a fraction of the memory."""
    conn = _derived(store) if f.attributes or f.q else store._query_reader()
    dialect = dialect_of(conn)
    where, params = event_where(project_id, f, dialect=dialect)
    descending = f.sort.startswith("-")
    sort_key = dialect.sort_keys[f.sort.lstrip("-")]
    if f.cursor is not None:
        where += f" AND ({sort_key}, e.seq) {'<' if descending else '>'} (?, ?)"
        params.extend(f.cursor)
    order = "DESC" if descending else "ASC"
    sql = (
        f"SELECT e.seq, {sort_key}, {dialect.summary if summary else 'e.body'},"
        " e.environment, e.template_revision, e.cost_usd"
        f" FROM events e WHERE {where} ORDER BY {sort_key} {order}, e.seq {order} LIMIT ?"
    )
    rows: list[Any] = []
    size, more = 0, False
    found = conn.execute(sql, [*params, f.limit + 1])
    try:
        # Row by row: what is over the budget is never all read.
        for row in found:
            if len(rows) == f.limit or (rows and size + len(row[2]) > max_bytes):
                more = True
                break
            rows.append(row)
            size += len(row[2])
    finally:
        found.close()  # an unfinished statement would hold its read snapshot
    out = _summary_out if summary else _event_out
    events = [out(row[2:]) for row in rows]
    cursor = encode_cursor(rows[-1][1], rows[-1][0], f.sort) if more else None
    return events, cursor


def iter_events(store: SQLiteStore, project_id: int, f: EventFilter) -> Iterator[dict[str, Any]]:
    """Every event ``f`` selects, page by page (memory stays flat)."""
    page = EventFilter(**{**f.__dict__, "limit": 1000})
    while True:
        events, cursor = list_events(store, project_id, page)
        yield from events
        if cursor is None:
            return
        page.cursor = decode_cursor(cursor, page.sort)


# -- stats and templates ---------------------------------------------------------------


def stats(
    store: SQLiteStore, project_id: int, f: EventFilter, group_by: list[str]
) -> dict[str, Any]:
    """Counts, errors, tokens, cost, latency and TTFT percentiles and average rating of the
    events ``f`` selects, per group; see ``_stats``."""
    return _stats.stats(_derived(store), project_id, f, group_by)


def stats_many(
    store: SQLiteStore, project_id: int, f: EventFilter, groupings: list[list[str]]
) -> list[dict[str, Any]]:
    """``stats`` for several groupings of the same events, in one pass (the dashboard's
    overview asks five at once)."""
    return _stats.stats_many(_derived(store), project_id, f, groupings)


# Revisions a template lists, newest first: every plain call given one name is a revision of
# it, so one name can hold as many as there are calls (20,000 had made a 12 MB page).
REVISIONS_LISTED = 100


def templates(
    store: SQLiteStore,
    project_id: int,
    name: str | None = None,
    limit: int = 500,
    revision: str | None = None,
) -> list[dict[str, Any]]:
    """The ``limit`` prompt template names last used (or the one ``name``), each with its
    ``REVISIONS_LISTED`` newest revisions (``revisions_left_out``: how many older), their
    template, first and last use, and their stats. (Every plain call's prompt is a template
    of its own: a project may hold millions.) ``revision``: only the revisions whose id
    starts with it (two at most: one, unless the prefix is ambiguous), whenever used."""
    conn = _derived(store)
    where = "project_id = ?"
    params: list[Any] = [project_id]
    if name is not None:
        where += " AND name = ?"
        params.append(name)
    if revision is not None:  # ids are lowercase hex: the prefix's range, by the index
        where += " AND revision >= ? AND revision < ?"
        params += [revision, revision + "g"]
    elif name is None:
        where += (
            " AND name IN (SELECT name FROM templates WHERE project_id = ? GROUP BY name"
            " ORDER BY max(last_us) DESC, name LIMIT ?)"
        )
        params += [project_id, limit]
    shown = 2 if revision is not None else REVISIONS_LISTED
    rows = conn.execute(
        "SELECT name, revision, kind, template, first_us, last_us, listed, name_last FROM"
        " (SELECT name, revision, kind, template, first_us, last_us,"
        " count(*) OVER (PARTITION BY name) AS listed,"
        " max(last_us) OVER (PARTITION BY name) AS name_last,"
        " row_number() OVER (PARTITION BY name ORDER BY first_us DESC, revision) AS place"
        f" FROM templates WHERE {where}) AS t WHERE place <= ?"
        " ORDER BY name, first_us DESC, revision",
        (*params, shown),
    ).fetchall()
    if name is not None:
        f = EventFilter(prompt_template_name=name)
    elif len({row[0] for row in rows}) == 1:
        f = EventFilter(prompt_template_name=rows[0][0])
    else:
        f = EventFilter()
    per = _stats.stats(conn, project_id, f, ["prompt_template_name", "template_revision"])
    by_key = {
        (g["key"]["prompt_template_name"], g["key"]["template_revision"]): g for g in per["groups"]
    }
    # Each name's events, all its revisions' (not only those listed).
    totals = {
        g["key"]["prompt_template_name"]: g["count"]
        for g in _stats.stats(conn, project_id, f, ["prompt_template_name"])["groups"]
    }
    names: dict[str, dict[str, Any]] = {}
    for name, revision, kind, template, first_us, last_us, listed, name_last in rows:
        entry = names.setdefault(
            name,
            {
                "name": name,
                "revisions": [],
                "listed": listed,
                "last_seen": _iso(name_last),
                "count": totals.get(name, 0),
            },
        )
        metrics = {k: v for k, v in by_key.get((name, revision), {}).items() if k != "key"}
        entry["revisions"].append(
            {
                "revision": revision,
                "kind": kind,
                "template": json.loads(template),
                "first_seen": _iso(first_us),
                "last_seen": _iso(last_us),
                **metrics,
            }
        )
    out = list(names.values())
    for entry in out:
        listed = entry.pop("listed")
        if listed > len(entry["revisions"]):
            entry["revisions_left_out"] = listed - len(entry["revisions"])
    out.sort(key=lambda e: e["last_seen"], reverse=True)
    return out


# -- prices ----------------------------------------------------------------------------


def price_overrides(
    store: SQLiteStore, project_id: int, model: str | None = None
) -> list[dict[str, Any]]:
    return _overrides(store._reader(), project_id, model)


def unpriced_models(store: SQLiteStore, project_id: int) -> list[dict[str, Any]]:
    """Models whose events have usage but no price, with how many events each."""
    rows = _derived(store).execute(
        "SELECT model, events FROM unpriced WHERE project_id = ? AND events > 0"
        " ORDER BY events DESC, model",
        (project_id,),
    )
    return [{"model": model, "events": n} for model, n in rows]


def set_price_override(
    store: SQLiteStore,
    project_id: int,
    model: str,
    since_us: int,
    prices: dict[str, float | None] | None,
    cost_of: Callable[[list[dict[str, Any]]], Callable[[dict[str, Any]], float | None]],
) -> int:
    """Store (or, with ``prices`` None, remove) a price override, then price that model's
    stored events again with ``cost_of(overrides of the model)``, all in one transaction.
    Returns how many events changed cost."""
    # Every stored event derived first: repricing adjusts the aggregates events count in.
    with store._transaction(project_id) as conn:
        if prices is None:
            conn.execute(
                "DELETE FROM price_overrides WHERE project_id = ? AND model = ? AND since_us = ?",
                (project_id, model, since_us),
            )
        else:
            conn.execute(
                "INSERT INTO price_overrides (project_id, model, since_us,"
                " input_per_mtok, output_per_mtok, cached_per_mtok, reasoning_per_mtok,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (project_id, model, since_us) DO UPDATE SET"
                " input_per_mtok = excluded.input_per_mtok,"
                " output_per_mtok = excluded.output_per_mtok,"
                " cached_per_mtok = excluded.cached_per_mtok,"
                " reasoning_per_mtok = excluded.reasoning_per_mtok,"
                " created_at = excluded.created_at",
                (
                    project_id,
                    model,
                    since_us,
                    prices["input_per_mtok"],
                    prices["output_per_mtok"],
                    prices.get("cached_per_mtok"),
                    prices.get("reasoning_per_mtok"),
                    datetime.now(timezone.utc).isoformat(),
                ),
            )
        changed = _reprice_on(conn, project_id, model, cost_of)
    return changed


def reprice(
    store: SQLiteStore,
    project_id: int,
    model: str,
    cost_of: Callable[[list[dict[str, Any]]], Callable[[dict[str, Any]], float | None]],
) -> int:
    """Price the model's stored events again at the overrides stored now, in one
    transaction; how many changed cost."""
    with store._transaction(project_id) as conn:
        return _reprice_on(conn, project_id, model, cost_of)


def _reprice_on(
    conn: sqlite3.Connection,
    project_id: int,
    model: str,
    cost_of: Callable[[list[dict[str, Any]]], Callable[[dict[str, Any]], float | None]],
) -> int:
    return _rederive.reprice(conn, project_id, model, cost_of(_overrides(conn, project_id, model)))


def _overrides(
    conn: sqlite3.Connection, project_id: int, model: str | None
) -> list[dict[str, Any]]:
    sql = (
        "SELECT model, since_us, input_per_mtok, output_per_mtok, cached_per_mtok,"
        " reasoning_per_mtok FROM price_overrides WHERE project_id = ?"
    )
    params: list[Any] = [project_id]
    if model is not None:
        sql += " AND model = ?"
        params.append(model)
    rows = conn.execute(sql + " ORDER BY model, since_us", params).fetchall()
    return [
        {
            "model": m,
            "since": _iso(since) if since else None,
            "since_us": since,
            "input_per_mtok": pin,
            "output_per_mtok": pout,
            "cached_per_mtok": pc,
            "reasoning_per_mtok": pr,
        }
        for m, since, pin, pout, pc, pr in rows
    ]
