"""A panel's data: its query turned into the very parameters ``GET /api/v1/stats`` takes, then
asked of the same store query (``Store.stats``), so a board and the stats API cannot disagree.
Each panel's answer carries that ``query``: the JSON API, the CLI and a drill-down link can
repeat it."""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from ...store import BUCKET_SECONDS, EVENTS_ONLY_GROUPS, EventFilter, Store, bucket_start
from ..errors import ApiError
from ..query import SELECTING, event_filter
from .spec import ALIASES, RANGES, TIME_VIEWS, TOTAL_VIEWS, Panel, Spec

__all__ = ["board_data", "drill_filter", "panel_query"]

# A store call answering some of a board's queries: (query index, answer) pairs.
_Call = Callable[[], list[tuple[int, Any]]]

# The store calls of a board run at once on these threads. One pool for the process, so its
# threads (and the store's reader connection each keeps, with its warm page cache) last.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="llmtap-board")


def _iso(second: float) -> str:
    return datetime.fromtimestamp(second, timezone.utc).isoformat()


def _auto_bucket(span: float | None) -> str:
    if span is not None and span <= 3 * 3600:
        return "minute"
    if span is not None and span <= 4 * 86400:
        return "hour"
    return "day"


# A panel shows at most this many groups (its series, rows or bars), the largest.
MAX_GROUPS = 100
# A chart draws at most this many buckets: a coarser bucket is used past it (a minute over
# 90 days had been 129,600 points, some 75 MB a panel).
MAX_BUCKETS = 2_000
_COARSER = {"minute": "hour", "hour": "day", "day": "week"}


def _coarse_enough(bucket: str, span: float | None) -> str:
    """``bucket``, or the first coarser one that cuts ``span`` (None: all time, counted
    as ten years) into at most ``MAX_BUCKETS``."""
    seconds = 10 * 365 * 86400 if span is None else span
    while bucket in _COARSER and seconds / BUCKET_SECONDS[bucket] > MAX_BUCKETS:
        bucket = _COARSER[bucket]
    return bucket


def panel_query(spec: Spec, panel: Panel, now: float) -> dict[str, str]:
    """The ``/api/v1/stats`` query string of a panel at time ``now`` (seconds)."""
    tr = panel.time_range or spec.time_range
    params: dict[str, str] = {**spec.filters, **panel.filters}
    start: float | None = None
    end: float | None = None
    if tr.last is not None:
        seconds = RANGES[tr.last]
        start = None if seconds is None else now - seconds
    else:
        absolute = event_filter(tr.dump(), SELECTING)
        start = None if absolute.from_us is None else absolute.from_us / 1e6
        end = None if absolute.to_us is None else absolute.to_us / 1e6
    span = None if start is None else (end or now) - start
    bucket = panel.bucket or spec.bucket
    bucket = _coarse_enough(_auto_bucket(span) if bucket == "auto" else bucket, span)
    if tr.last is None:
        params.update(tr.dump())  # as given
    elif start is not None:
        # A chart: whole buckets, so its first point is not a sliver of one. A total (a
        # number, a table, bars): the range asked, from its whole minute (what the
        # aggregates hold), not from the start of a day or a week before it.
        first = bucket if panel.view in TIME_VIEWS else "minute"
        params["from"] = _iso(bucket_start(first, int(start)))
    group_by = [bucket] if panel.view in TIME_VIEWS else []
    if panel.group_by and panel.view not in TOTAL_VIEWS:
        group_by.append(ALIASES.get(panel.group_by, panel.group_by))
    if group_by:
        params["group_by"] = ",".join(group_by)
    return params


def drill_filter(
    spec: Spec, panel: Panel, now: float, group: str | None, bucket: int | None
) -> EventFilter:
    """The events behind a panel's point, bar or row: the panel's own query (at ``now``),
    narrowed to one value of its group-by and/or one of its time buckets (the one holding
    second ``bucket``), never widened: a published link's drill-down reaches no other events."""
    params = panel_query(spec, panel, now)
    group_by = params.get("group_by", "").split(",")
    f = _filter(params, None)
    if group is not None:
        field = next((g for g in group_by if g and g not in BUCKET_SECONDS), None)
        if field is None:
            raise ApiError(400, "group: this panel has no group-by")
        key = field.removeprefix("attributes.")
        held = f.attributes.get(key) if field.startswith("attributes.") else getattr(f, field)
        if held is not None and held != group:  # outside the panel's own filter
            raise ApiError(400, "group: not a group of this panel")
        if field.startswith("attributes."):
            f.attributes = {**f.attributes, key: group}
        else:
            setattr(f, field, group)
    if bucket is not None:
        size_of = next((g for g in group_by if g in BUCKET_SECONDS), None)
        if size_of is None:
            raise ApiError(400, "bucket: this panel is not drawn over time")
        lo = bucket_start(size_of, bucket) * 1_000_000
        hi = lo + BUCKET_SECONDS[size_of] * 1_000_000
        f.from_us = lo if f.from_us is None else max(f.from_us, lo)
        f.to_us = hi if f.to_us is None else min(f.to_us, hi)
    return f


def _filter(params: dict[str, str], environment: str | None) -> EventFilter:
    f = event_filter({k: v for k, v in params.items() if k != "group_by"}, SELECTING)
    if environment is not None:  # an env_only key reads its environment only
        if f.environment not in (None, environment):  # as the stats API answers it
            raise ApiError(403, f"this key reads only the environment {environment!r}")
        f.environment = environment
    return f


def _stats_batched(
    store: Store, project_id: int, queries: list[dict[str, str]], environment: str | None
) -> list[_Call]:
    """Store calls that together answer every query, each yielding (query index, stats
    answer) pairs, asking the store as few times as it can: queries that select the same
    events share one ``stats_many`` pass per time bucket (a board's panels mostly do). A
    grouping by an attribute is asked alone: in a shared pass it would leave out, for every
    other grouping, the events without that attribute; so is one by ``api`` or ``sdk``, which
    only the events have (it would turn the whole pass into a read of the events)."""
    calls: list[_Call] = []
    batches: dict[tuple[tuple[str, str], ...], dict[str | None, list[int]]] = {}
    for i, params in enumerate(queries):
        group_by = [g for g in params.get("group_by", "").split(",") if g]
        if any(g.startswith("attributes.") or g in EVENTS_ONLY_GROUPS for g in group_by):
            f = _filter(params, environment)
            calls.append(functools.partial(_one, store, project_id, i, f, group_by))
            continue
        selecting = tuple(sorted((k, v) for k, v in params.items() if k != "group_by"))
        bucket = next((g for g in group_by if g in BUCKET_SECONDS), None)
        batches.setdefault(selecting, {}).setdefault(bucket, []).append(i)
    for selecting, by_bucket in batches.items():
        # Groupings without a time bucket ride along with the first batch that has one.
        plain = by_bucket.pop(None, [])
        runs = list(by_bucket.values()) or [[]]
        runs[0] += plain
        f = _filter(dict(selecting), environment)
        for run in runs:
            groupings = [[g for g in queries[i].get("group_by", "").split(",") if g] for i in run]
            calls.append(functools.partial(_many, store, project_id, run, f, groupings))
    return calls


def _one(
    store: Store, project_id: int, i: int, f: EventFilter, group_by: list[str]
) -> list[tuple[int, dict[str, Any]]]:
    return [(i, store.stats(project_id, f, group_by))]


def _many(
    store: Store, project_id: int, run: list[int], f: EventFilter, groupings: list[list[str]]
) -> list[tuple[int, dict[str, Any]]]:
    return list(zip(run, store.stats_many(project_id, f, groupings), strict=True))


def _previous(
    store: Store, project_id: int, i: int, f: EventFilter, now: float
) -> list[tuple[int, dict[str, Any] | None]]:
    """A number's previous period: as long as ``f``'s, just before it (None for all time)."""
    if f.from_us is None:
        return [(i, None)]
    end_us = f.to_us if f.to_us is not None else int(now * 1_000_000)
    before = EventFilter(**{**f.__dict__, "from_us": 2 * f.from_us - end_us, "to_us": f.from_us})
    return [(i, store.stats(project_id, before, []))]


def board_data(
    store: Store, project_id: int, spec: Spec, environment: str | None = None
) -> dict[str, Any]:
    """Every panel's answer at one ``now``: its ``query`` (the ``/api/v1/stats`` parameters),
    the ``stats`` answer to it, and for a number the ``previous`` period's (as long, just
    before)."""
    now = time.time()
    queries = [panel_query(spec, p, now) for p in spec.panels]
    calls = _stats_batched(store, project_id, queries, environment)
    for i, panel in enumerate(spec.panels):
        if panel.view == "number":  # its previous period, under index -1 - i
            f = _filter(queries[i], environment)
            calls.append(functools.partial(_previous, store, project_id, -1 - i, f, now))
    # The calls are independent reads, each on its worker's own connection: concurrently,
    # a board waits for its slowest call, not their sum (SQLite releases the GIL while it
    # reads; the histogram merging in between takes it).
    answers: dict[int, Any] = {}
    for pairs in _POOL.map(lambda call: call(), calls):
        answers.update(pairs)
    panels = [
        {
            "id": panel.id,
            "query": params,
            "stats": largest_groups(answers[i]),
            "previous": answers.get(-1 - i),
        }
        for i, (panel, params) in enumerate(zip(spec.panels, queries, strict=True))
    ]
    return {"now": _iso(now), "panels": panels}


def largest_groups(answer: dict[str, Any], most: int = MAX_GROUPS) -> dict[str, Any]:
    """A stats answer cut to its ``most`` largest groups (by events, over every time bucket:
    a series is whole or absent), with ``groups_left_out``: how many it left out. A project
    whose prompts are not templated has a template per prompt: a table of 20,000 rows had
    been 12 MB a board, and hung the page that drew it."""

    def group(g: dict[str, Any]) -> str:
        return json.dumps([[k, v] for k, v in sorted(g["key"].items()) if k not in BUCKET_SECONDS])

    totals: Counter[str] = Counter()
    for g in answer["groups"]:
        totals[group(g)] += g["count"]
    if len(totals) <= most:
        return answer
    kept = {k for k, _ in totals.most_common(most)}
    return {
        **answer,
        "groups": [g for g in answer["groups"] if group(g) in kept],
        "groups_left_out": len(totals) - most,
    }
