"""A panel's data: its query turned into the very parameters ``GET /api/v1/stats`` takes, then
asked of the same store query (``Store.stats``), so a board and the stats API cannot disagree.
Each panel's answer carries that ``query``: the JSON API, the CLI and a drill-down link can
repeat it."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from ...store import EventFilter, Store
from ..query import SELECTING, event_filter
from .spec import RANGES, TIME_VIEWS, TOTAL_VIEWS, Panel, Spec

__all__ = ["board_data", "panel_query"]

_BUCKET_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def _iso(second: float) -> str:
    return datetime.fromtimestamp(second, timezone.utc).isoformat()


def _auto_bucket(span: float | None) -> str:
    if span is not None and span <= 3 * 3600:
        return "minute"
    if span is not None and span <= 4 * 86400:
        return "hour"
    return "day"


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
    bucket = panel.bucket or spec.bucket
    if bucket == "auto":
        bucket = _auto_bucket(None if start is None else (end or now) - start)
    if tr.last is None:
        params.update(tr.dump())  # as given
    elif start is not None:
        # Whole buckets, so the first point is not a sliver of one.
        size = _BUCKET_SECONDS[bucket]
        params["from"] = _iso(start // size * size)
    group_by = [bucket] if panel.view in TIME_VIEWS else []
    if panel.group_by and panel.view not in TOTAL_VIEWS:
        group_by.append(panel.group_by)
    if group_by:
        params["group_by"] = ",".join(group_by)
    return params


def _filter(params: dict[str, str], environment: str | None) -> EventFilter:
    f = event_filter({k: v for k, v in params.items() if k != "group_by"}, SELECTING)
    if environment is not None:  # an env_only key reads its environment only
        f.environment = environment
    return f


def _stats_batched(
    store: Store, project_id: int, queries: list[dict[str, str]], environment: str | None
) -> list[dict[str, Any]]:
    """The stats answer to each query, asking the store as few times as it can: queries
    that select the same events share one ``stats_many`` pass per time bucket (a board's
    panels mostly do). A grouping by an attribute is asked alone: in a shared pass it would
    leave out, for every other grouping, the events without that attribute."""
    answers: list[dict[str, Any] | None] = [None] * len(queries)
    batches: dict[tuple[tuple[str, str], ...], dict[str | None, list[int]]] = {}
    for i, params in enumerate(queries):
        group_by = [g for g in params.get("group_by", "").split(",") if g]
        if any(g.startswith("attributes.") for g in group_by):
            answers[i] = store.stats(project_id, _filter(params, environment), group_by)
            continue
        selecting = tuple(sorted((k, v) for k, v in params.items() if k != "group_by"))
        bucket = next((g for g in group_by if g in _BUCKET_SECONDS), None)
        batches.setdefault(selecting, {}).setdefault(bucket, []).append(i)
    for selecting, by_bucket in batches.items():
        # Groupings without a time bucket ride along with the first batch that has one.
        plain = by_bucket.pop(None, [])
        runs = list(by_bucket.values()) or [[]]
        runs[0] += plain
        f = _filter(dict(selecting), environment)
        for run in runs:
            groupings = [[g for g in queries[i].get("group_by", "").split(",") if g] for i in run]
            for i, answer in zip(run, store.stats_many(project_id, f, groupings), strict=True):
                answers[i] = answer
    return [a for a in answers if a is not None]


def board_data(
    store: Store, project_id: int, spec: Spec, environment: str | None = None
) -> dict[str, Any]:
    """Every panel's answer at one ``now``: its ``query`` (the ``/api/v1/stats`` parameters),
    the ``stats`` answer to it, and for a number the ``previous`` period's (as long, just
    before)."""
    now = time.time()
    queries = [panel_query(spec, p, now) for p in spec.panels]
    answers = _stats_batched(store, project_id, queries, environment)
    panels = []
    for panel, params, answer in zip(spec.panels, queries, answers, strict=True):
        previous = None
        f = _filter(params, environment)
        if panel.view == "number" and f.from_us is not None:
            end_us = f.to_us if f.to_us is not None else int(now * 1_000_000)
            span = end_us - f.from_us
            before = EventFilter(**{**f.__dict__, "from_us": f.from_us - span, "to_us": f.from_us})
            previous = store.stats(project_id, before, [])
        panels.append({"id": panel.id, "query": params, "stats": answer, "previous": previous})
    return {"now": _iso(now), "panels": panels}
