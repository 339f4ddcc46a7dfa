"""Stats: per group, count, errors, tokens (input, output, cached, reasoning), cost, latency
and TTFT percentiles, average rating and the share of low ratings, read from the aggregates
the write path keeps (``_derive``), so a query's cost grows with the number of buckets it
reads, not the number of events.

A time range is cut into whole days, whole hours at its ends and whole minutes at theirs,
each read at its own level; the seconds before the first whole minute and after the last are
read from the events. A query the aggregates cannot answer (a chat or chain id, text search,
feedback filters, more than one attribute key, or the ``api``, which the aggregates do not
keep) is computed from the events instead, with
exact percentiles; the answer says which (``"source"``).
"""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from . import _hist
from ._common import EventFilter
from ._derive import DIMS, LEVELS, LOW_RATING
from ._facts import token_count

__all__ = [
    "BUCKET_SECONDS",
    "EVENTS_ONLY_GROUPS",
    "GROUPS",
    "LATENCY_EDGES_MS",
    "TIME_GROUPS",
    "bucket_start",
    "stats",
]

# A time bucket -> the aggregate level it is read from, and its length in seconds. Weeks start
# on Monday (ISO 8601): an epoch second plus three days is a whole number of weeks after one.
TIME_GROUPS = {"minute": 0, "hour": 1, "day": 2, "week": 2}
BUCKET_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
_BUCKET_SHIFT = {"week": 3 * 86400}
# The dimensions a row of events has: the aggregates', and two only the events keep (the API
# called, and what sent the event), so a filter or grouping by them reads the events.
EVENTS_ONLY_GROUPS = ("api", "sdk")
_EVENT_DIMS = (*DIMS, *EVENTS_ONLY_GROUPS)
GROUPS = (*_EVENT_DIMS, *TIME_GROUPS)  # and "attributes.KEY"
_NO_AGG = (
    "chat_id",
    "chain_id",
    *EVENTS_ONLY_GROUPS,
    "q",
    "has_feedback",
    "rating_min",
    "rating_max",
)


_LATENCY_QS = (0.5, 0.9, 0.95, 0.99)
# The bars of a group's latency histogram (ms): at or under each edge, then past the last.
LATENCY_EDGES_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
_HISTOGRAM_KEYS = (*(f"le_{e}" for e in LATENCY_EDGES_MS), f"over_{LATENCY_EDGES_MS[-1]}")


@dataclass
class _Group:
    n: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    priced: int = 0
    lat: int = 0
    ttft: int = 0
    rating_sum: float = 0.0
    rating_n: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    rating_low: int = 0
    # Exact values, kept only when the whole answer comes from the events.
    lat_values: list[float] | None = None
    ttft_values: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, other: _Group) -> None:
        self.n += other.n
        self.errors += other.errors
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost += other.cost
        self.priced += other.priced
        self.lat += other.lat
        self.ttft += other.ttft
        self.rating_sum += other.rating_sum
        self.rating_n += other.rating_n
        self.cached_tokens += other.cached_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.rating_low += other.rating_low
        if self.lat_values is not None and other.lat_values is not None:
            self.lat_values += other.lat_values
        if self.ttft_values is not None and other.ttft_values is not None:
            self.ttft_values += other.ttft_values

    def out(self, key: dict[str, Any]) -> dict[str, Any]:
        if self.lat_values is not None and self.ttft_values is not None:
            lat = [_hist.exact_percentile(self.lat_values, q) for q in _LATENCY_QS]
            ttft = [_hist.exact_percentile(self.ttft_values, q) for q in (0.5, 0.95)]
            bars = [0] * len(_HISTOGRAM_KEYS)
            for value in self.lat_values:
                bars[bisect.bisect_left(LATENCY_EDGES_MS, value)] += 1
        else:
            lat = _hist.percentiles(self.lat, _LATENCY_QS)
            ttft = _hist.percentiles(self.ttft, (0.5, 0.95))
            bars = _hist.coarse_counts(self.lat, LATENCY_EDGES_MS)
        return {
            "key": key,
            "count": self.n,
            "errors": self.errors,
            "error_rate": self.errors / self.n if self.n else None,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            # Events without a price are not counted as free: the sum covers priced events.
            "cost_usd": round(self.cost, 10) if self.priced else None,
            "unpriced_events": self.n - self.priced,
            "latency_ms": dict(zip(("p50", "p90", "p95", "p99"), lat, strict=True)),
            "latency_histogram_ms": dict(zip(_HISTOGRAM_KEYS, bars, strict=True)),
            "ttft_ms": dict(zip(("p50", "p95"), ttft, strict=True)),
            "avg_rating": self.rating_sum / self.rating_n if self.rating_n else None,
            "ratings": self.rating_n,
            # Ratings under LOW_RATING (0.7), of all ratings: 0 to 1.
            "low_ratings": self.rating_low,
            "low_rating_share": self.rating_low / self.rating_n if self.rating_n else None,
        }


def _attr_keys(f: EventFilter, group_by: Sequence[str]) -> set[str]:
    keys = set(f.attributes)
    keys.update(g.removeprefix("attributes.") for g in group_by if g.startswith("attributes."))
    return keys


def _aggregates_can_answer(
    conn: sqlite3.Connection, project_id: int, f: EventFilter, group_by: Sequence[str]
) -> bool:
    if any(getattr(f, name) is not None for name in _NO_AGG) or any(
        g in EVENTS_ONLY_GROUPS for g in group_by
    ):
        return False
    keys = _attr_keys(f, group_by)
    if len(keys) > 1:
        return False
    for key in keys:
        row = conn.execute(
            "SELECT overflow FROM attr_keys WHERE project_id = ? AND key = ?", (project_id, key)
        ).fetchone()
        if row and row[0]:
            return False
    return True


def _plan(a: int | None, b: int | None, top: int) -> list[tuple[int, int | None, int | None]]:
    """Cut [a, b) (seconds, whole minutes, None for open) into (level, start, end) pieces,
    each as coarse as it can be, up to level ``top``."""
    out: list[tuple[int, int | None, int | None]] = []

    def go(a: int | None, b: int | None, level: int) -> None:
        if level == top:
            out.append((level, a, b))
            return
        size = LEVELS[level + 1]
        a2 = None if a is None else -(-a // size) * size
        b2 = None if b is None else b // size * size
        if a2 is not None and b2 is not None and a2 >= b2:
            out.append((level, a, b))
            return
        if a is not None and a2 is not None and a < a2:
            out.append((level, a, a2))
        if b is not None and b2 is not None and b2 < b:
            out.append((level, b2, b))
        go(a2, b2, level + 1)

    if a is None or b is None or a < b:
        go(a, b, 0)
    return out


def _iso(second: int) -> str:
    return datetime.fromtimestamp(second, timezone.utc).isoformat()


def bucket_start(bucket: str, second: int) -> int:
    """The first second of the time ``bucket`` (minute, hour, day, week) holding ``second``."""
    return second - (second + _BUCKET_SHIFT.get(bucket, 0)) % BUCKET_SECONDS[bucket]


def _bucket_sql(bucket: str, column: str) -> str:
    """:func:`bucket_start` in SQL (for a ``column`` of epoch seconds, positive)."""
    return f"{column} - ({column} + {_BUCKET_SHIFT.get(bucket, 0)}) % {BUCKET_SECONDS[bucket]}"


class _Keyer:
    """Turns a row's dimensions into the group key the query asks for."""

    def __init__(self, group_by: Sequence[str]) -> None:
        self.group_by = list(group_by)

    def key(self, second: int, dims: Sequence[Any], attrs: Sequence[Any]) -> tuple[Any, ...]:
        out: list[Any] = []
        attr_i = 0
        for g in self.group_by:
            if g in TIME_GROUPS:
                out.append(bucket_start(g, second))
            elif g.startswith("attributes."):
                out.append(attrs[attr_i])
                attr_i += 1
            else:
                value = dims[_EVENT_DIMS.index(g)]
                out.append(None if value == "" else value)
        return tuple(out)

    def render(self, key: tuple[Any, ...]) -> dict[str, Any]:
        return {
            g: _iso(v) if g in TIME_GROUPS else v for g, v in zip(self.group_by, key, strict=True)
        }


def _from_aggregates(
    conn: sqlite3.Connection,
    project_id: int,
    f: EventFilter,
    keyer: _Keyer,
    groups: dict[tuple[Any, ...], _Group],
    level: int,
    start: int | None,
    end: int | None,
) -> None:
    attr_key = next(iter(_attr_keys(f, keyer.group_by)), None)
    where = ["a.project_id = ?", "a.level = ?"]
    params: list[Any] = [project_id, level]
    join_attr = ""
    if attr_key is None:
        where.append("a.attr_id = 0")
    else:
        join_attr = "JOIN attr_values v ON v.id = a.attr_id"
        sub = "SELECT id FROM attr_values WHERE project_id = ? AND key = ?"
        params += [project_id, attr_key]
        if attr_key in f.attributes:
            sub += " AND value = ?"
            params.append(f.attributes[attr_key])
        where.append(f"a.attr_id IN ({sub})")
    if start is not None:
        where.append("a.bucket >= ?")
        params.append(start)
    if end is not None:
        where.append("a.bucket < ?")
        params.append(end)
    for name in DIMS:
        value = getattr(f, name)
        if value is not None:
            where.append(f"d.{name} = ?")
            params.append(value)
    # Sum in the database, per the key the answer needs (its time bucket, its dimensions,
    # its attribute value), histograms included (``dialect.hist_sum``): Python sees one row
    # per group, not one per stored aggregate.
    from ._dialect import dialect_of

    dialect = dialect_of(conn)
    time_group = next((g for g in keyer.group_by if g in TIME_GROUPS), None)
    bucket = _bucket_sql(time_group, "a.bucket") if time_group else "0"
    dims = [f"d.{d}" if d in keyer.group_by else "NULL" for d in DIMS]
    wanted_attr = any(g.startswith("attributes.") for g in keyer.group_by)
    wanted_attr = wanted_attr and attr_key is not None
    keys = [bucket, *dims]
    # Grouped by what varies only (a constant key would make SQLite sort every row, blobs
    # and all), an attribute by its value's id, first: rows come in that order (agg's key).
    group = [str(i + 1) for i, k in enumerate(keys) if k not in ("0", "NULL")]
    if wanted_attr:
        keys.append("min(v.value)")
        group.insert(0, "a.attr_id")
    else:
        keys.append("NULL")
    sql = (
        f"SELECT {', '.join(keys)}, sum(a.n), sum(a.errors), sum(a.input_tokens),"
        f" sum(a.output_tokens), sum(a.cost), sum(a.priced), {dialect.hist_sum('a.lat')},"
        f" {dialect.hist_sum('a.ttft')}, sum(a.rating_sum), sum(a.rating_n), sum(a.cached_tokens),"
        " sum(a.reasoning_tokens), sum(a.rating_low)"
        f" FROM agg a JOIN agg_dims d ON d.id = a.dims_id {join_attr}"
        f" WHERE {' AND '.join(where)}" + (f" GROUP BY {', '.join(group)}" if group else "")
        # No grouping: one row, of NULLs when nothing matched (skipped below).
    )
    n_dims = len(DIMS)
    decode = dialect.hist_of
    for row in conn.execute(sql, params):
        if row[2 + n_dims] is None:
            continue
        attrs = (row[1 + n_dims],) if wanted_attr else ()
        key = keyer.key(row[0], row[1 : 1 + n_dims], attrs)
        g = groups.get(key)
        if g is None:
            g = groups[key] = _Group()
        m = row[2 + n_dims :]
        g.n += m[0]
        g.errors += m[1]
        g.input_tokens += m[2]
        g.output_tokens += m[3]
        g.cost += m[4]
        g.priced += m[5]
        if m[6]:
            g.lat += decode(m[6])
        if m[7]:
            g.ttft += decode(m[7])
        g.rating_sum += m[8]
        g.rating_n += m[9]
        g.cached_tokens += m[10]
        g.reasoning_tokens += m[11]
        g.rating_low += m[12]


def _from_events(
    conn: sqlite3.Connection,
    project_id: int,
    f: EventFilter,
    keyer: _Keyer,
    groups: dict[tuple[Any, ...], _Group],
    exact: bool,
) -> None:
    from ._dialect import dialect_of
    from ._queries import event_where

    dialect = dialect_of(conn)
    where, params = event_where(project_id, f, dialect=dialect)
    joins, attr_cols, join_params = [], [], []
    for i, field_name in enumerate(keyer.group_by):
        if field_name.startswith("attributes."):
            joins.append(
                f"JOIN event_attrs g{i} ON g{i}.project_id = e.project_id AND g{i}.seq = e.seq"
                f" AND g{i}.key = ?"
            )
            join_params.append(field_name.removeprefix("attributes."))
            attr_cols.append(f", g{i}.value")
    sql = (
        f"SELECT e.started_us, {', '.join('e.' + d for d in _EVENT_DIMS)}{''.join(attr_cols)},"
        " e.input_tokens, e.output_tokens, e.cost_usd, e.latency_ms, e.ttft_ms,"
        " (SELECT sum(rating) FROM feedback fb WHERE fb.project_id = e.project_id"
        "  AND fb.feedback_key = e.feedback_key),"
        " (SELECT count(rating) FROM feedback fb WHERE fb.project_id = e.project_id"
        "  AND fb.feedback_key = e.feedback_key),"
        " (SELECT count(rating) FROM feedback fb WHERE fb.project_id = e.project_id"
        "  AND fb.feedback_key = e.feedback_key AND fb.rating < ?),"
        f" {dialect.extra_usage}"
        f" FROM events e {' '.join(joins)} WHERE {where}"
    )
    n_dims = len(_EVENT_DIMS)
    n_attrs = len(attr_cols)
    status_i = DIMS.index("status")
    for row in conn.execute(sql, [LOW_RATING, *join_params, *params]):
        dims = row[1 : 1 + n_dims]
        key = keyer.key(row[0] // 1_000_000, dims, row[1 + n_dims : 1 + n_dims + n_attrs])
        g = groups.get(key)
        if g is None:
            g = groups[key] = _Group()
            if exact:
                g.lat_values, g.ttft_values = [], []
        in_tok, out_tok, cost, latency, ttft, rating_sum, rating_n, low, cached, reasoning = row[
            1 + n_dims + n_attrs :
        ]
        g.n += 1
        g.errors += dims[status_i] == "error"
        g.input_tokens += in_tok or 0
        g.output_tokens += out_tok or 0
        if cost is not None:
            g.cost += cost
            g.priced += 1
        if latency is not None:
            if g.lat_values is not None:
                g.lat_values.append(latency)
            g.lat += _hist.histogram([latency])
        if ttft is not None:
            if g.ttft_values is not None:
                g.ttft_values.append(ttft)
            g.ttft += _hist.histogram([ttft])
        g.rating_sum += rating_sum or 0.0
        g.rating_n += rating_n
        g.rating_low += low
        g.cached_tokens += token_count(cached)
        g.reasoning_tokens += token_count(reasoning)


def _collect(
    conn: sqlite3.Connection, project_id: int, f: EventFilter, group_by: Sequence[str]
) -> tuple[str, dict[tuple[Any, ...], _Group]]:
    """(source, groups): the events ``f`` selects, summed per ``group_by`` key."""
    keyer = _Keyer(group_by)
    groups: dict[tuple[Any, ...], _Group] = {}
    if _aggregates_can_answer(conn, project_id, f, group_by):
        source = "aggregates"
        top = min([TIME_GROUPS[g] for g in group_by if g in TIME_GROUPS], default=2)
        a = None if f.from_us is None else -(-f.from_us // 60_000_000) * 60
        b = None if f.to_us is None else f.to_us // 60_000_000 * 60
        if a is not None and b is not None and a >= b:
            _from_events(conn, project_id, f, keyer, groups, exact=False)
        else:
            for level, start, end in _plan(a, b, top):
                _from_aggregates(conn, project_id, f, keyer, groups, level, start, end)
            # The seconds around the whole minutes, from the events.
            edges = []
            if a is not None and f.from_us is not None and f.from_us < a * 1_000_000:
                edges.append((f.from_us, a * 1_000_000))
            if b is not None and f.to_us is not None and b * 1_000_000 < f.to_us:
                edges.append((b * 1_000_000, f.to_us))
            for lo, hi in edges:
                edge = EventFilter(**{**f.__dict__, "from_us": lo, "to_us": hi})
                _from_events(conn, project_id, edge, keyer, groups, exact=False)
    else:
        source = "events"
        _from_events(conn, project_id, f, keyer, groups, exact=True)
    return source, groups


def _answer(
    group_by: Sequence[str], source: str, groups: dict[tuple[Any, ...], _Group]
) -> dict[str, Any]:
    keyer = _Keyer(group_by)

    def order(item: tuple[tuple[Any, ...], _Group]) -> tuple[Any, ...]:
        return tuple(
            (v is None, str(v) if not isinstance(v, int) else f"{v:020d}") for v in item[0]
        )

    return {
        "group_by": list(group_by),
        "source": source,
        "groups": [g.out(keyer.render(k)) for k, g in sorted(groups.items(), key=order)],
    }


def stats(
    conn: sqlite3.Connection, project_id: int, f: EventFilter, group_by: Sequence[str]
) -> dict[str, Any]:
    return _answer(group_by, *_collect(conn, project_id, f, group_by))


def stats_many(
    conn: sqlite3.Connection,
    project_id: int,
    f: EventFilter,
    groupings: Sequence[Sequence[str]],
) -> list[dict[str, Any]]:
    """The answers of ``stats`` for several groupings of the same events, from one pass: the
    groups of all their fields together, rolled up into each (histograms merge by adding).
    The groupings may name one time bucket and one attribute key between them."""
    union: list[str] = []
    for grouping in groupings:
        union += [g for g in grouping if g not in union]
    source, fine = _collect(conn, project_id, f, union)
    answers = []
    for grouping in groupings:
        index = [union.index(g) for g in grouping]
        rolled: dict[tuple[Any, ...], _Group] = {}
        for key, group in fine.items():
            coarse = tuple(key[i] for i in index)
            into = rolled.get(coarse)
            if into is None:
                into = rolled[coarse] = _Group(
                    lat_values=[] if group.lat_values is not None else None,
                    ttft_values=[] if group.ttft_values is not None else None,
                )
            into.add(group)
        answers.append(_answer(grouping, source, rolled))
    return answers
