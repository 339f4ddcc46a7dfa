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
from .spec import RANGES, TIME_VIEWS, Panel, Spec

__all__ = ["board_data", "panel_data", "panel_query"]

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
    if panel.group_by and panel.view != "number":
        group_by.append(panel.group_by)
    if group_by:
        params["group_by"] = ",".join(group_by)
    return params


def _filter(params: dict[str, str], environment: str | None) -> EventFilter:
    f = event_filter({k: v for k, v in params.items() if k != "group_by"}, SELECTING)
    if environment is not None:  # an env_only key reads its environment only
        f.environment = environment
    return f


def panel_data(
    store: Store,
    project_id: int,
    spec: Spec,
    panel: Panel,
    now: float | None = None,
    environment: str | None = None,
) -> dict[str, Any]:
    """One panel's answer: its ``query``, the ``stats`` answer to it, and for a number the
    ``previous`` period's (as long, just before)."""
    now = time.time() if now is None else now
    params = panel_query(spec, panel, now)
    group_by = [g for g in params.get("group_by", "").split(",") if g]
    f = _filter(params, environment)
    out: dict[str, Any] = {
        "id": panel.id,
        "query": params,
        "stats": store.stats(project_id, f, group_by),
        "previous": None,
    }
    if panel.view == "number" and f.from_us is not None:
        end_us = f.to_us if f.to_us is not None else int(now * 1_000_000)
        before = EventFilter(
            **{**f.__dict__, "from_us": 2 * f.from_us - end_us, "to_us": f.from_us}
        )
        out["previous"] = store.stats(project_id, before, group_by)
    return out


def board_data(
    store: Store, project_id: int, spec: Spec, environment: str | None = None
) -> dict[str, Any]:
    """Every panel's answer, at one ``now``."""
    now = time.time()
    return {
        "now": _iso(now),
        "panels": [panel_data(store, project_id, spec, p, now, environment) for p in spec.panels],
    }
