"""What the store derives from the events it stores: the stats aggregates, the attributes
index, the text index, the template revisions, and the tally of events whose model has no
price.

Derivation trails the events by up to a second (see ``_sqlite``): events are committed,
and acknowledged, on their own, and derived later in chunks of thousands, whose aggregate rows
are summed in memory first. A watermark in ``meta`` (``derived_seq``), committed with the
derived rows, says how far derivation went, so each event is counted once whatever crashes
when; reads that use the derived tables catch up first.

The aggregates (table ``agg``) hold, per project, time bucket (minute, hour and day: three
levels) and combination of environment, model, template name, revision and status (table
``agg_dims``): counts, tokens (input, output, cached, reasoning), cost, ratings (their sum,
count and how many are low: under ``LOW_RATING``) and latency/TTFT histograms (see ``_hist``).
The same rows exist once more per attribute key and value (``attr_id``), for grouping and
filtering by one attribute. A stats query reads buckets, never events.

Attribute cardinality: a key keeps at most ``stats_attribute_values`` distinct values in the
aggregates (and a project at most ``MAX_ATTRIBUTE_KEYS`` keys). A key that goes past it is
marked ``overflow``; stats that group or filter by it are then computed from the events (with
the attributes index), so they stay exact, only slower. The attributes index itself
(``event_attrs``) has every value of every event, for filtering the events list.

What changes after an event is derived (a rating for it, a new price for its model) is in
``_rederive``.
"""

from __future__ import annotations

import json
import logging
import operator
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from ..settings import resolve
from ..wire import GOOD_RATING
from . import _hist
from ._bulk import insert_many
from ._common import EVENT_COLUMNS
from ._dialect import dialect_of
from ._facts import Facts, attribute_text, facts_of_body, searchable_text
from ._sql import IN_CHUNK, Conn, chunks, marks, new_id

__all__ = [
    "LEVELS",
    "LOW_RATING",
    "MAX_ATTRIBUTE_KEYS",
    "Derived",
    "IdCache",
    "add_measure_columns",
    "attribute_text",
    "backfill",
    "derive_each",
    "derive_events",
    "derived_through",
    "install",
    "plan",
    "ratings",
    "searchable_text",
    "set_derived_through",
    "write",
]

# Aggregate levels: bucket sizes in seconds.
LEVELS = (60, 3600, 86400)
MAX_ATTRIBUTE_KEYS = 64
# A rating under this is low (``rating_low``, the stats' ``low_rating_share``): one that would
# not make its output a prompt test's expected answer (``wire.GOOD_RATING``).
LOW_RATING = GOOD_RATING
# Longer attribute values are indexed but not aggregated: their key is marked ``overflow``,
# so stats by it come from the events, and count them (a system prompt is often longer).
MAX_VALUE_CHARS = 200

log = logging.getLogger("llmtap.store")

_COL = {name: i for i, name in enumerate(EVENT_COLUMNS)}
_BODY = len(EVENT_COLUMNS) - 1
# The dimensions of an aggregate row, in agg_dims' column order ('' stands for NULL).
DIMS = ("environment", "model", "prompt_template_name", "template_revision", "status")

_AGG_COLUMNS = (
    "project_id",
    "level",
    "attr_id",
    "bucket",
    "dims_id",
    "n",
    "errors",
    "input_tokens",
    "output_tokens",
    "cost",
    "priced",
    "lat",
    "ttft",
    "rating_sum",
    "rating_n",
    "cached_tokens",
    "reasoning_tokens",
    "rating_low",
)
_AGG_INSERT = f"INSERT INTO agg ({', '.join(_AGG_COLUMNS)})"


def _agg_upsert(lat: str, ttft: str) -> str:
    """The aggregates' ``ON CONFLICT`` clause: sums added, histograms set to ``lat``,
    ``ttft`` (SQL of ``agg`` and ``excluded``)."""
    return f"""
ON CONFLICT (project_id, level, attr_id, bucket, dims_id) DO UPDATE SET
    n = agg.n + excluded.n,
    errors = agg.errors + excluded.errors,
    input_tokens = agg.input_tokens + excluded.input_tokens,
    output_tokens = agg.output_tokens + excluded.output_tokens,
    cost = agg.cost + excluded.cost,
    priced = agg.priced + excluded.priced,
    lat = {lat},
    ttft = {ttft},
    rating_sum = agg.rating_sum + excluded.rating_sum,
    rating_n = agg.rating_n + excluded.rating_n,
    cached_tokens = agg.cached_tokens + excluded.cached_tokens,
    reasoning_tokens = agg.reasoning_tokens + excluded.reasoning_tokens,
    rating_low = agg.rating_low + excluded.rating_low
"""


def _hist_sql(column: str) -> str:
    return (
        f"CASE WHEN excluded.{column} IS NULL THEN agg.{column} WHEN agg.{column} IS NULL"
        f" THEN excluded.{column} ELSE llmtap_hist_add(agg.{column}, excluded.{column}) END"
    )


# The histograms merged by the database (SQLite: ``llmtap_hist_add`` is ``_hist.hist_add``).
_AGG_ADD = _agg_upsert(_hist_sql("lat"), _hist_sql("ttft"))
# The histograms merged already (see ``_add_aggregates``): the rows' replace the stored ones.
_AGG_MERGED = _agg_upsert("COALESCE(excluded.lat, agg.lat)", "COALESCE(excluded.ttft, agg.ttft)")
# Where an aggregate row's (``_Acc.params``) histograms are.
_LAT, _TTFT = _AGG_COLUMNS.index("lat"), _AGG_COLUMNS.index("ttft")

_DIMS_ID = (
    f"SELECT id FROM agg_dims WHERE project_id = ? AND {' AND '.join(f'{d} = ?' for d in DIMS)}"
)

_DIMS_INSERT = f"INSERT INTO agg_dims (project_id, {', '.join(DIMS)})"

AggKey = tuple[int, int, int, int, int]  # project_id, level, attr_id, bucket, dims_id


def derived_through(conn: Conn) -> int:
    """The watermark: every event up to this seq is counted in the derived tables, and none
    after it."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'derived_seq'").fetchone()
    return int(row[0]) if row else 0


def set_derived_through(conn: Conn, seq: int) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('derived_seq', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(seq),),
    )


def install(conn: sqlite3.Connection) -> None:
    """Register the SQL functions the write path uses on ``conn``."""
    conn.create_function("llmtap_hist_add", 2, _hist.hist_add, deterministic=True)


_INT64_MAX = 2**63 - 1


class _Acc:
    """Contributions to aggregate rows, summed in memory before one upsert per row."""

    def __init__(self) -> None:
        self.rows: dict[AggKey, list[Any]] = {}

    def add(
        self,
        keys: Iterable[AggKey],
        n: int = 0,
        errors: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: float = 0.0,
        priced: int = 0,
        lat: int = 0,
        ttft: int = 0,
        rating_sum: float = 0.0,
        rating_n: int = 0,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
        rating_low: int = 0,
    ) -> None:
        values = [n, errors, input_tokens, output_tokens, cost, priced, lat, ttft]
        values += (rating_sum, rating_n, cached_tokens, reasoning_tokens, rating_low)
        rows = self.rows
        for key in keys:
            row = rows.get(key)
            rows[key] = values.copy() if row is None else list(map(operator.add, row, values))

    def params(self) -> list[tuple[Any, ...]]:
        """The upsert parameters of the rows summed so far."""
        # An event's histograms are shared by the rows it alone counts in (one per level and
        # attribute): encode each object once. Every one stays referenced, so ids are unique.
        encoded: dict[int, bytes | None] = {}
        params = []
        for key, row in self.rows.items():
            n, errors, in_t, out_t, cost, priced, lat, ttft, r_sum, r_n = row[:10]
            cached, reasoning, low = row[10:]
            if max(in_t, out_t, cached, reasoning) > _INT64_MAX:  # token counts near the limit
                # Summed past 64 bits: floats, what SQLite's own sums turn into.
                in_t, out_t = float(in_t), float(out_t)
                cached, reasoning = float(cached), float(reasoning)
            lat_blob = encoded.get(id(lat), b"")
            if lat_blob == b"":
                lat_blob = encoded[id(lat)] = _hist.encode(lat)
            ttft_blob = encoded.get(id(ttft), b"")
            if ttft_blob == b"":
                ttft_blob = encoded[id(ttft)] = _hist.encode(ttft)
            sums = (n, errors, in_t, out_t, cost, priced, lat_blob, ttft_blob, r_sum, r_n)
            params.append((*key, *sums, cached, reasoning, low))
        return params

    def flush(self, conn: Conn) -> None:
        if self.rows:
            insert_many(conn, _AGG_INSERT, self.params(), _AGG_ADD)
            self.rows.clear()


class IdCache:
    """The ids of agg_dims and attr_values rows that derivation found in the database, so a
    known combination or value costs no query (see ``_dims_ids``). Cleared when a
    transaction that may have made some rolls back."""

    def __init__(self) -> None:
        self.dims: dict[tuple[Any, ...], int] = {}
        self.attrs: dict[tuple[int, str, str], int] = {}
        # Attribute keys (project_id, key) found past their limits: ``overflow`` is never
        # cleared, so their new values need no query.
        self.overflowed: set[tuple[int, str]] = set()

    def clear(self) -> None:
        self.dims.clear()
        self.attrs.clear()
        self.overflowed.clear()


def _dims_ids(
    conn: Conn, wanted: set[tuple[Any, ...]], cache: dict[tuple[Any, ...], int]
) -> dict[tuple[Any, ...], int]:
    """agg_dims ids of (project_id, *DIMS) tuples, made when new: those not known looked up
    together, the new ones made together (a first load makes hundreds a chunk: one by one,
    they took a fifth of derivation). ``cache`` keeps the ids found committed (rows of
    agg_dims are never changed or deleted), so a known combination costs no query; an id
    made in this transaction is not cached, as it could roll back."""
    ids = {dims: cache[dims] for dims in wanted if dims in cache}
    stored = {
        dims: tuple("" if v is None else v for v in dims) for dims in wanted if dims not in ids
    }
    if not stored:
        return ids
    found = _find_dims(conn, set(stored.values()))
    for dims, key in stored.items():
        if key in found:
            ids[dims] = cache[dims] = found[key]
    new = sorted({key for key in stored.values() if key not in found})
    if new:
        # A concurrent transaction (another process) may make some first: theirs are kept.
        insert_many(conn, _DIMS_INSERT, new, "ON CONFLICT DO NOTHING")
        made = _find_dims(conn, set(new))
        for dims, key in stored.items():
            if dims not in ids:
                ids[dims] = made[key]
    return ids


def _find_dims(conn: Conn, keys: set[tuple[Any, ...]]) -> dict[tuple[Any, ...], int]:
    """The ids of the stored agg_dims rows of (project_id, *DIMS) tuples ('' for NULL)."""
    found = {}
    by_project: dict[int, list[tuple[Any, ...]]] = {}
    for key in keys:
        by_project.setdefault(key[0], []).append(key[1:])
    row = "(" + ", ".join("?" * len(DIMS)) + ")"
    for project_id, combos in by_project.items():
        for part in chunks(combos, IN_CHUNK // len(DIMS)):
            for id_, *dims in conn.execute(
                f"SELECT id, {', '.join(DIMS)} FROM agg_dims WHERE project_id = ?"
                f" AND ({', '.join(DIMS)}) IN (VALUES {', '.join([row] * len(part))})",
                [project_id, *[v for combo in part for v in combo]],
            ):
                key = (project_id, *dims)
                found[key] = id_
    return found


def _attr_ids(conn: Conn, wanted: set[tuple[int, str, str]], cache: IdCache) -> dict[Any, int]:
    """attr_values ids of (project_id, key, value), made when the key is under its limits;
    pairs left out of the aggregates are absent. ``cache``: as in ``_dims_ids`` (rows of
    attr_values are never changed or deleted either), and the keys known to overflow: a key
    unique per event (a span id, a request id) costs no query once it is past its limit (the
    aggregates of an overflowed key are never read: its stats come from the events)."""
    limit = int(resolve("stats_attribute_values"))
    known_ids, overflowed = cache.attrs, cache.overflowed
    ids = {}
    for project_id, key, value in sorted(wanted):
        known = known_ids.get((project_id, key, value))
        if known is not None:
            ids[project_id, key, value] = known
            continue
        if (project_id, key) in overflowed:
            continue
        if len(value) > MAX_VALUE_CHARS:
            conn.execute(
                "INSERT INTO attr_keys (project_id, key, n_values, overflow) VALUES (?, ?, 0, 1)"
                " ON CONFLICT (project_id, key) DO UPDATE SET overflow = 1",
                (project_id, key),
            )
            overflowed.add((project_id, key))
            continue
        row = conn.execute(
            "SELECT id FROM attr_values WHERE project_id = ? AND key = ? AND value = ?",
            (project_id, key, value),
        ).fetchone()
        if row:
            ids[project_id, key, value] = known_ids[project_id, key, value] = row[0]
            continue
        state = conn.execute(
            "SELECT n_values, overflow FROM attr_keys WHERE project_id = ? AND key = ?",
            (project_id, key),
        ).fetchone()
        if state is None:
            (keys,) = conn.execute(
                "SELECT count(*) FROM attr_keys WHERE project_id = ?", (project_id,)
            ).fetchone()
            overflow = int(keys >= MAX_ATTRIBUTE_KEYS)
            conn.execute(
                "INSERT INTO attr_keys (project_id, key, n_values, overflow) VALUES (?, ?, 0, ?)",
                (project_id, key, overflow),
            )
            state = (0, overflow)
        if state[1]:
            overflowed.add((project_id, key))
            continue
        if state[0] >= limit:
            conn.execute(
                "UPDATE attr_keys SET overflow = 1 WHERE project_id = ? AND key = ?",
                (project_id, key),
            )
            overflowed.add((project_id, key))
            continue
        ids[project_id, key, value] = new_id(
            conn,
            "INSERT INTO attr_values (project_id, key, value) VALUES (?, ?, ?)",
            (project_id, key, value),
            "SELECT id FROM attr_values WHERE project_id = ? AND key = ? AND value = ?",
        )
        conn.execute(
            "UPDATE attr_keys SET n_values = n_values + 1 WHERE project_id = ? AND key = ?",
            (project_id, key),
        )
    return ids


def _agg_keys(
    project_id: int, started_us: int, dims_id: int, attr_ids: Sequence[int]
) -> list[AggKey]:
    second = started_us // 1_000_000
    keys = []
    for level, size in enumerate(LEVELS):
        bucket = second - second % size
        keys.append((project_id, level, 0, bucket, dims_id))
        keys.extend((project_id, level, attr_id, bucket, dims_id) for attr_id in attr_ids)
    return keys


def _add_aggregates(conn: Conn, rows: list[tuple[Any, ...]]) -> None:
    """Add aggregate rows (``_Acc.params``) to ``agg``. Where the database cannot merge
    histograms fast (PostgreSQL: ``llmtap_hist_add`` is PL/pgSQL, byte by byte, ~240 us a
    call), the stored histograms of the rows are read first and merged here (a big-integer
    sum each), and the upsert sets them. Exact because no other transaction writes these rows
    meanwhile: the caller holds the project's derive lock, as does every writer of ``agg``
    there (feedback, deletes, repricing: see ``_pg_derive``)."""
    stored = dialect_of(conn).stored_histograms(conn, [row[:5] for row in rows])
    if stored is None:
        insert_many(conn, _AGG_INSERT, rows, _AGG_ADD)
        return
    add = _hist.hist_add
    merged = []
    for row in rows:
        old = stored.get(row[:5])
        if old is not None:
            lat, ttft = add(old[0], row[_LAT]), add(old[1], row[_TTFT])
            row = (*row[:_LAT], lat, ttft, *row[_TTFT + 1 :])
        merged.append(row)
    insert_many(conn, _AGG_INSERT, merged, _AGG_MERGED)


class Derived(NamedTuple):
    """The rows a chunk of events adds to the derived tables, ready to write."""

    aggregates: list[tuple[Any, ...]]
    attributes: list[tuple[Any, ...]]
    texts: list[tuple[int, int, str]]  # project_id, seq, text
    unpriced: list[tuple[int, str, int]]
    templates: list[tuple[Any, ...]]


def derive_events(
    conn: Conn,
    fresh: Sequence[tuple[int, Sequence[Any], Facts]],
    ids: IdCache | None = None,
) -> None:
    """Add the events (seq, events-table row, facts) to the derived tables, in ``conn``'s
    transaction."""
    write(conn, plan(conn, fresh, ids))


def write(conn: Conn, rows: Derived) -> None:
    _add_aggregates(conn, rows.aggregates)
    insert_many(
        conn,
        "INSERT INTO event_attrs (project_id, key, value, seq)",
        rows.attributes,
        "ON CONFLICT DO NOTHING",
    )
    dialect_of(conn).index_texts(conn, rows.texts)
    insert_many(
        conn,
        "INSERT INTO unpriced (project_id, model, events)",
        rows.unpriced,
        "ON CONFLICT (project_id, model) DO UPDATE SET events = unpriced.events + excluded.events",
    )
    insert_many(
        conn,
        "INSERT INTO templates"
        " (project_id, name, revision, kind, template, first_us, last_us, plain)",
        rows.templates,
        "ON CONFLICT (project_id, name, revision) DO UPDATE SET first_us = CASE WHEN"
        " excluded.first_us < templates.first_us THEN excluded.first_us ELSE templates.first_us"
        " END, last_us = CASE WHEN excluded.last_us > templates.last_us THEN excluded.last_us"
        " ELSE templates.last_us END,"
        # Made with a template once, it is one (not blanked as a plain call's prompt).
        " plain = CASE WHEN excluded.plain < templates.plain THEN excluded.plain"
        " ELSE templates.plain END",
    )


def plan(
    conn: Conn,
    fresh: Sequence[tuple[int, Sequence[Any], Facts]],
    ids: IdCache | None = None,
) -> Derived:
    """The derived rows of events (seq, events-table row, facts). Reads the ratings already
    stored for them, and makes the ids of new dimension combinations and attribute values.

    The events are first summed per (dimensions, minute, attributes): a chunk of thousands of
    events from the same few minutes makes a few hundred such groups, and each group then
    adds to its 3 levels x (1 + attributes) aggregate rows once, with its latency and TTFT
    histograms built in one go."""
    col = _COL
    p_col, fk_col, start_col = col["project_id"], col["feedback_key"], col["started_us"]
    status_col, cost_col, model_col = col["status"], col["cost_usd"], col["model"]
    in_col, out_col, lat_col, ttft_col = (
        col["input_tokens"],
        col["output_tokens"],
        col["latency_ms"],
        col["ttft_ms"],
    )
    dims_cols = [col[d] for d in DIMS]
    name_col, revision_col = col["prompt_template_name"], col["template_revision"]
    rated = ratings(conn, [(r[p_col], r[fk_col]) for _, r, _ in fresh])
    ids = IdCache() if ids is None else ids
    # Keys known past their limit add nothing to the aggregates: left out of the groups'
    # keys, so a key unique per event does not make each event a group of its own.
    overflowed = ids.overflowed
    groups: dict[tuple[Any, ...], _Group] = {}
    attr_rows: list[tuple[Any, ...]] = []
    text_rows: list[tuple[int, int, str]] = []
    spans: dict[tuple[int, str, str], list[Any]] = {}
    unpriced: dict[tuple[int, str], int] = {}
    for seq, r, facts in fresh:
        project_id = r[p_col]
        started_us = r[start_col]
        pairs = facts.pairs
        counted = (
            [pair for pair in pairs if (project_id, pair[0]) not in overflowed]
            if overflowed
            else pairs
        )
        key = (
            (project_id, *[r[c] for c in dims_cols]),
            started_us // 60_000_000 * 60,
            tuple(counted),
        )
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group()
        cost = r[cost_col]
        group.add(r[status_col], r[in_col], r[out_col], cost, r[lat_col], r[ttft_col])
        group.cached_tokens += facts.cached_tokens
        group.reasoning_tokens += facts.reasoning_tokens
        rating = rated.get((project_id, r[fk_col]))
        if rating is not None:
            group.rating_sum += rating[0]
            group.rating_n += rating[1]
            group.rating_low += rating[2]
        if pairs:
            attr_rows.extend((project_id, k, v, seq) for k, v in pairs)
        if facts.text:
            text_rows.append((project_id, seq, facts.text))
        model = r[model_col]
        if cost is None and model and facts.has_usage:
            unpriced[project_id, model] = unpriced.get((project_id, model), 0) + 1
        name, revision = r[name_col], r[revision_col]
        if name is not None and revision is not None:
            span = spans.get((project_id, name, revision))
            if span is None:
                spans[project_id, name, revision] = [
                    started_us,
                    started_us,
                    facts.template,
                    facts.plain,
                ]
                continue
            if started_us < span[0]:
                span[0] = started_us
            elif started_us > span[1]:
                span[1] = started_us
            span[3] = span[3] and facts.plain  # a template of a call made with one
    return Derived(
        _aggregate(conn, groups, ids),
        attr_rows,
        text_rows,
        [(p, m, n) for (p, m), n in unpriced.items()],
        [
            (
                project_id,
                name,
                revision,
                "chat" if isinstance(template, list) else "text",
                json.dumps(template, ensure_ascii=False, default=str),
                first,
                last,
                int(plain),
            )
            for (project_id, name, revision), (first, last, template, plain) in spans.items()
        ],
    )


class _Group:
    """The events of one (dimensions, minute, attributes), summed."""

    __slots__ = (
        "cached_tokens",
        "cost",
        "errors",
        "input_tokens",
        "lat",
        "n",
        "output_tokens",
        "priced",
        "rating_low",
        "rating_n",
        "rating_sum",
        "reasoning_tokens",
        "ttft",
    )

    def __init__(self) -> None:
        self.n = self.errors = self.input_tokens = self.output_tokens = self.priced = 0
        self.rating_n = self.rating_low = self.cached_tokens = self.reasoning_tokens = 0
        self.cost = self.rating_sum = 0.0
        self.lat: list[float] = []
        self.ttft: list[float] = []

    def add(
        self,
        status: str,
        input_tokens: int | None,
        output_tokens: int | None,
        cost: float | None,
        latency_ms: float | None,
        ttft_ms: float | None,
    ) -> None:
        self.n += 1
        if status == "error":
            self.errors += 1
        if input_tokens:
            self.input_tokens += input_tokens
        if output_tokens:
            self.output_tokens += output_tokens
        if cost is not None:
            self.cost += cost
            self.priced += 1
        if latency_ms is not None:
            self.lat.append(latency_ms)
        if ttft_ms is not None:
            self.ttft.append(ttft_ms)

    def merge(self, other: _Group) -> None:
        """Add ``other``'s events to this group's."""
        self.n += other.n
        self.errors += other.errors
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost += other.cost
        self.priced += other.priced
        self.rating_sum += other.rating_sum
        self.rating_n += other.rating_n
        self.rating_low += other.rating_low
        self.cached_tokens += other.cached_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.lat += other.lat
        self.ttft += other.ttft


def _aggregate(
    conn: Conn,
    groups: dict[tuple[Any, ...], _Group],
    ids: IdCache,
) -> list[tuple[Any, ...]]:
    """The aggregate rows the groups of ``plan`` add to."""
    dims = _dims_ids(conn, {dims for dims, _, _ in groups}, ids.dims)
    attr_ids = _attr_ids(
        conn, {(dims[0], k, v) for dims, _, pairs in groups for k, v in pairs}, ids
    )
    # Groups whose attributes differ only in values left out of the aggregates (a key past
    # its limit: a span id, a request id, unique per event) add to the same rows: merged
    # first, they cost one addition, not one per event. (``plan`` already leaves out the
    # keys known to overflow; this catches those found overflowing in this chunk.)
    merged: dict[tuple[Any, ...], _Group] = {}
    for (group_dims, minute, pairs), g in groups.items():
        project_id = group_dims[0]
        found = tuple(
            attr_ids[project_id, k, v] for k, v in pairs if (project_id, k, v) in attr_ids
        )
        into = merged.get((group_dims, minute, found))
        if into is None:
            merged[group_dims, minute, found] = g
        else:
            into.merge(g)
    acc = _Acc()
    for (group_dims, minute, found), g in merged.items():
        project_id = group_dims[0]
        acc.add(
            _agg_keys(project_id, minute * 1_000_000, dims[group_dims], found),
            n=g.n,
            errors=g.errors,
            input_tokens=g.input_tokens,
            output_tokens=g.output_tokens,
            cost=g.cost,
            priced=g.priced,
            lat=_hist.histogram(g.lat),
            ttft=_hist.histogram(g.ttft),
            rating_sum=g.rating_sum,
            rating_n=g.rating_n,
            cached_tokens=g.cached_tokens,
            reasoning_tokens=g.reasoning_tokens,
            rating_low=g.rating_low,
        )
    return acc.params()


def ratings(
    conn: Conn, keys: list[tuple[int, str | None]]
) -> dict[tuple[int, str], tuple[float, int, int]]:
    """Ratings already stored for feedback keys (feedback may arrive before its event): their
    sum, count and how many are low."""
    by_project: dict[int, set[str]] = {}
    for project_id, key in keys:
        if key is not None:
            by_project.setdefault(project_id, set()).add(key)
    out = {}
    for project_id, wanted in by_project.items():
        for chunk in chunks(sorted(wanted)):
            for key, total, n, low in conn.execute(
                "SELECT feedback_key, sum(rating), count(rating),"
                " sum(CASE WHEN rating < ? THEN 1 ELSE 0 END) FROM feedback WHERE"
                f" project_id = ? AND feedback_key IN ({marks(chunk)}) GROUP BY feedback_key",
                (LOW_RATING, project_id, *chunk),
            ):
                if n:
                    out[project_id, key] = (float(total), int(n), int(low))
    return out


def derive_each(
    conn: Conn,
    todo: Sequence[tuple[int, Sequence[Any], Facts | None]],
    ids: IdCache | None = None,
) -> None:
    """Derive events (seq, events-table row, facts: None to parse them from the row's body)
    in ``conn``'s transaction. An event whose derivation fails is logged and left out of the
    derived tables; the others are derived."""
    conn.execute("SAVEPOINT derive")
    try:
        fresh = [
            (seq, row, facts or facts_of_body(json.loads(row[_BODY]))) for seq, row, facts in todo
        ]
        derive_events(conn, fresh, ids)
        conn.execute("RELEASE derive")
        return
    except Exception:
        conn.execute("ROLLBACK TO derive")
        conn.execute("RELEASE derive")
        if ids is not None:
            ids.clear()  # it may hold ids of rows rolled back
        if len(todo) == 1:
            log.exception("event seq %s could not be derived; it is left out of stats", todo[0][0])
            return
    for one in todo:  # find the one that fails, keep the others
        derive_each(conn, [one], ids)


# The aggregates' columns added by step m016 (SQLite's ALTER TABLE has no IF NOT EXISTS).
_MEASURE_COLUMNS = ("cached_tokens", "reasoning_tokens", "rating_low")


def add_measure_columns(conn: sqlite3.Connection) -> None:
    """Migration step m016 (SQLite): the aggregates' columns for cached and reasoning tokens
    and low ratings. Also run by the steps before it that derive (m002's ``backfill``, m009's
    repair): this code writes every column, so they need them first; m016 then finds them."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(agg)")}
    for name in _MEASURE_COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE agg ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0")


def backfill(conn: sqlite3.Connection) -> None:
    """Migration step: derive for the events stored before the aggregates existed."""
    install(conn)
    add_measure_columns(conn)
    # Columns later steps add are not there yet: read them as NULL, keeping the row's shape.
    have = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    columns = ", ".join(c if c in have else "NULL" for c in EVENT_COLUMNS)
    last = 0
    while True:
        chunk = conn.execute(
            f"SELECT seq, {columns} FROM events WHERE seq > ? ORDER BY seq LIMIT 5000", (last,)
        ).fetchall()
        if not chunk:
            break
        derive_events(conn, [(r[0], r[1:], facts_of_body(json.loads(r[-1]))) for r in chunk])
        last = chunk[-1][0]
