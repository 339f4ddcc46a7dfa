"""The pages that read the stats: overview (charts over time and breakdowns), group by any
field or attribute, and prompt templates with their revisions side by side and diffed.

Each asks the store's stats and templates queries, the same ones behind ``/api/v1/stats`` and
``/api/v1/templates``."""

from __future__ import annotations

import difflib
import heapq
import json
import re
import time
from datetime import datetime, timezone
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ...store import EventFilter
from ..errors import ApiError
from .alerts import firing
from .pages import Context
from .render import render_page

__all__ = ["groups_page", "overview_page", "template_page", "templates_page"]

# Range picker: (label, seconds, time bucket).
RANGES = {
    "1h": ("last hour", 3600, "minute"),
    "24h": ("last 24 hours", 86400, "hour"),
    "7d": ("last 7 days", 7 * 86400, "hour"),
    "30d": ("last 30 days", 30 * 86400, "day"),
    "all": ("all time", None, "day"),
}
BREAKDOWNS = ("model", "prompt_template_name", "environment")
GROUPS_SHOWN = 1000
TEMPLATES_SHOWN = 500
GROUPABLE = (
    "model",
    "prompt_template_name",
    "template_revision",
    "environment",
    "status",
    "minute",
    "hour",
    "day",
)


def _range(request: Request) -> tuple[str, EventFilter, str]:
    name = request.query_params.get("range", "24h")
    if name not in RANGES:
        raise ApiError(400, f"range: one of {', '.join(RANGES)}")
    _, seconds, bucket = RANGES[name]
    f = EventFilter()
    if seconds is not None:
        # Whole buckets, so the first point is not a sliver of one.
        size = {"minute": 60, "hour": 3600, "day": 86400}[bucket]
        start = (int(time.time()) - seconds) // size * size
        f.from_us = start * 1_000_000
    return name, f, bucket


def _series(groups: list[dict[str, Any]], bucket: str, from_us: int | None) -> dict[str, Any]:
    """Columns for the charts, one point per time bucket, and the time span they cover (the
    range asked for: one lone point must not leave the chart to pick a span of years)."""

    def ts(group: dict[str, Any]) -> int:
        return int(datetime.fromisoformat(group["key"][bucket]).timestamp())

    rows = sorted(groups, key=ts)
    size = {"minute": 60, "hour": 3600, "day": 86400}[bucket]
    times = [ts(g) for g in rows]
    start = from_us // 1_000_000 if from_us is not None else (times[0] if times else 0)
    end = max([int(time.time()), *times]) + size
    return {
        "x_range": [start, end],
        "t": times,
        "bucket_seconds": [size] * len(rows),
        "requests": [g["count"] for g in rows],
        "errors": [g["errors"] for g in rows],
        "cost": [g["cost_usd"] for g in rows],
        "input_tokens": [g["input_tokens"] for g in rows],
        "output_tokens": [g["output_tokens"] for g in rows],
        "latency_p50": [g["latency_ms"]["p50"] for g in rows],
        "latency_p95": [g["latency_ms"]["p95"] for g in rows],
        "ttft_p50": [g["ttft_ms"]["p50"] for g in rows],
        "per_minute": [g["count"] / (size / 60) for g in rows],
    }


async def overview_page(request: Request) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    range_name, f, bucket = _range(request)
    # One pass over the aggregates for all five answers (rolled up from the finest grouping).
    groupings = [[], [bucket], *([field] for field in BREAKDOWNS)]

    def read() -> tuple[dict[str, Any], dict[str, Any], dict[str, list[dict[str, Any]]]]:
        total, over_time, *by_field = ctx.store.stats_many(project["id"], f, groupings)
        largest = {
            field: _largest(answer["groups"], 12)[0]
            for field, answer in zip(BREAKDOWNS, by_field, strict=True)
        }
        return total, over_time, largest

    # In a thread, the sorting too: a plain prompt is a template of its own, so the
    # breakdown by template can hold a group per call.
    total, over_time, breakdowns = await run_in_threadpool(read)
    totals = total["groups"][0] if total["groups"] else None
    alerting = await run_in_threadpool(firing, ctx.store, project["id"])
    data = {
        "firing": alerting,
        "project": project["name"],
        "range": range_name,
        "bucket": bucket,
        "from": _iso(f.from_us),
        "totals": totals,
        "series": _series(over_time["groups"], bucket, f.from_us),
        "breakdowns": breakdowns,
    }
    return await render_page(
        request, "overview.html", data, projects=projects, ranges=RANGES, title="Overview"
    )


def _largest(groups: list[dict[str, Any]], n: int) -> tuple[list[dict[str, Any]], int]:
    """The ``n`` groups of the most events, most first (ties in the stats' order), and how
    many others there are."""
    return heapq.nlargest(n, groups, key=lambda g: g["count"]), max(len(groups) - n, 0)


def _iso(us: int | None) -> str | None:
    return None if us is None else datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat()


async def groups_page(request: Request) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    by = request.query_params.get("by", "model").strip()
    if by not in GROUPABLE and not (by.startswith("attributes.") and len(by) > 11):
        raise ApiError(400, f"by: one of {', '.join(GROUPABLE)}, or attributes.KEY")
    range_name, f, _ = _range(request)

    def read() -> tuple[list[dict[str, Any]], int]:
        # The largest only: grouped by a value unique per call (a request id), a page of
        # every group would be a row per event.
        return _largest(ctx.store.stats(project["id"], f, [by])["groups"], GROUPS_SHOWN)

    groups, not_shown = await run_in_threadpool(read)
    data = {
        "project": project["name"],
        "by": by,
        "range": range_name,
        "from": _iso(f.from_us),  # a group's events link: of the range counted
        "groups": groups,
        "groups_not_shown": not_shown,
    }
    return await render_page(
        request,
        "groups.html",
        data,
        projects=projects,
        ranges=RANGES,
        groupable=GROUPABLE,
        title="Group by",
    )


async def templates_page(request: Request) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    # One more than is shown: whether there are more (a template per plain prompt can make
    # tens of thousands), said on the page rather than cut silently.
    templates = await run_in_threadpool(
        ctx.store.templates, project["id"], None, TEMPLATES_SHOWN + 1
    )
    data = {
        "project": project["name"],
        "templates": templates[:TEMPLATES_SHOWN],
        "more_templates": len(templates) > TEMPLATES_SHOWN,
    }
    return await render_page(request, "templates.html", data, projects=projects, title="Templates")


def template_lines(template: Any) -> list[str]:
    """A template as lines of text, for a diff: a chat template's messages as ``role:``
    headings followed by their content."""
    if isinstance(template, str):
        return template.splitlines() or [""]
    if not isinstance(template, list):  # a prompt of another shape (any JSON): as JSON
        return json.dumps(template, ensure_ascii=False, indent=1).splitlines()
    lines: list[str] = []
    for message in template:
        content = message.get("content") if isinstance(message, dict) else message
        if not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False, indent=1)
        role = message.get("role", "?") if isinstance(message, dict) else "?"
        lines.append(f"[{role if isinstance(role, str) else json.dumps(role)}]")
        lines.extend(content.splitlines() or [""])
    return lines


# A diff's cost grows with the product of the two sides' lines: past these (per side) the page
# says so instead of freezing a worker thread for minutes.
MAX_DIFF_BYTES = 64 * 1024
MAX_DIFF_LINES = 2000


def diff(a: Any, b: Any) -> dict[str, Any]:
    """Line by line, what changed from template ``a`` to template ``b``: ``{"lines": [{"op":
    "add"|"del"|"same", "text"}], "too_large": None}``, or no lines and why not."""
    sides = [template_lines(a), template_lines(b)]
    for lines in sides:
        size = sum(len(line.encode()) + 1 for line in lines)
        if size > MAX_DIFF_BYTES or len(lines) > MAX_DIFF_LINES:
            reason = (
                f"too large to diff: a revision has {len(lines):,} lines, {size:,} bytes"
                f" (at most {MAX_DIFF_LINES:,} lines and {MAX_DIFF_BYTES:,} bytes)"
            )
            return {"lines": [], "too_large": reason}
    old, new = sides
    out = []
    # Lines, not characters (ndiff's intraline hints cost far more than quadratic time).
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new).get_opcodes():
        if tag == "equal":
            out += [{"op": "same", "text": line} for line in old[i1:i2]]
            continue
        out += [{"op": "del", "text": line} for line in old[i1:i2]]
        out += [{"op": "add", "text": line} for line in new[j1:j2]]
    return {"lines": out, "too_large": None}


async def template_page(request: Request) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    name = request.path_params["name"]
    templates = await run_in_threadpool(ctx.store.templates, project["id"], name)
    entry = next((t for t in templates if t["name"] == name), None)
    if entry is None:
        raise ApiError(404, f"no template {name!r} in project {project['name']!r}")
    revisions = entry["revisions"]  # the newest, newest first
    by_id = {r["revision"]: r for r in revisions}
    a = request.query_params.get("a") or (
        revisions[1]["revision"] if len(revisions) > 1 else revisions[0]["revision"]
    )
    b = request.query_params.get("b") or revisions[0]["revision"]
    for asked in {a, b} - set(by_id):  # an older revision than those listed: read alone
        if re.fullmatch(r"[0-9a-f]{1,64}", asked):
            found = await run_in_threadpool(ctx.store.templates, project["id"], name, 1, asked)
            by_id.update((r["revision"], r) for t in found for r in t["revisions"])
    if a not in by_id or b not in by_id:
        raise ApiError(404, "no such revision of this template")
    data = {
        "project": project["name"],
        "template": entry,
        "a": a,
        "b": b,
        "diff": await run_in_threadpool(diff, by_id[a]["template"], by_id[b]["template"]),
    }
    return await render_page(request, "template.html", data, projects=projects, title="Templates")
