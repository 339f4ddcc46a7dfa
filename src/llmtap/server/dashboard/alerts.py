"""The alerts page: rules with their state, last value and a small chart of the measure
against the threshold; budgets with their forecast; the history; the channels. Its forms
(new rule, budget or channel as JSON; send a test; delete) go through the same checks as the
API (``alerts.api``), for a project's admins, with the CSRF token."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ...store import EventFilter, Store
from ..alerts.api import alerts_answer, checked, send_test_now
from ..alerts.rules import ADDITIVE, MEASURES, Rule, measure_of
from ..errors import ApiError
from ..ingest import parse_json
from .admin import managed_project
from .auth import check_csrf
from .pages import Context
from .render import page_url, render_page

__all__ = ["alert_delete_form", "alert_form", "alert_test_form", "alerts_page", "firing"]

_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}
_KINDS = {"rule": "rule", "budget": "budget", "webhook": "channel", "email": "channel"}


def firing(store: Store, project_id: int) -> list[dict[str, Any]]:
    """What fires in the project now (the overview's banner): kind, name, group."""
    return [
        {"kind": s["kind"], "name": s["name"], "group": s["group"]}
        for s in store.alert_states(project_id)
        if s["state"] == "firing"
    ]


def _chart(store: Store, project_id: int, body: dict[str, Any], now: int) -> dict[str, Any]:
    """The rule's measure per time bucket over ~24 windows, from the aggregates, with the
    threshold (when it is a value, not a change): for a count or a sum, its share of a
    bucket (the rule counts a window, the chart a bucket; 10 requests a 5-minute window is
    2 a minute)."""
    rule = Rule.model_validate({k: v for k, v in body.items() if k in Rule.model_fields})
    span = min(max(rule.window * 24, 3 * 3600), 30 * 86_400)
    bucket = "minute" if span <= 3 * 3600 else "hour" if span <= 7 * 86_400 else "day"
    end = now - now % 60
    f = EventFilter(from_us=(end - span) * 1_000_000, to_us=end * 1_000_000, **rule.event_filter())
    groups = store.stats(project_id, f, [bucket])["groups"]
    threshold = rule.threshold
    if rule.measure in ADDITIVE:
        threshold = rule.threshold * _SECONDS[bucket] / rule.window
    return {
        "bucket": bucket,
        "t": [int(datetime.fromisoformat(g["key"][bucket]).timestamp()) for g in groups],
        "v": [measure_of(rule.measure, g) for g in groups],
        "threshold": None if rule.compare else threshold,
        "threshold_label": "threshold" if rule.measure not in ADDITIVE else f"threshold a {bucket}",
    }


def _page_data(store: Store, project: dict[str, Any]) -> dict[str, Any]:
    answer = alerts_answer(store, project["id"])
    now = int(time.time())
    for rule in answer["rules"]:
        rule["chart"] = _chart(store, project["id"], rule, now)
    return {
        "project": project["name"],
        **answer,
        "history": store.alert_history(project["id"], limit=100),
    }


async def alerts_page(request: Request, notice: str | None = None) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    data = await run_in_threadpool(_page_data, ctx.store, project)
    return await render_page(
        request,
        "alerts.html",
        data,
        projects=projects,
        notice=notice,
        title="Alerts",
        measures=list(MEASURES),
    )


async def alert_form(request: Request) -> Response:
    """``POST /alerts/new``: a rule, budget or channel (``body``, JSON) for the project."""
    form = await check_csrf(request)
    pid = await managed_project(request, form)
    payload = parse_json(str(form.get("body") or "").encode())  # bounded by the form's limit
    kind = _KINDS.get(str(payload.get("kind", "rule")) if isinstance(payload, dict) else "rule")
    if kind is None:
        raise ApiError(400, "kind: one of rule, budget, webhook, email")
    store = request.app.state.store
    body = await run_in_threadpool(checked, store, pid, kind, payload)
    if not await run_in_threadpool(store.put_alert_item, pid, kind, body["name"], body, True):
        raise ApiError(409, f"a {kind} named {body['name']!r} exists")
    return RedirectResponse(page_url("/alerts", str(form.get("project"))), status_code=303)


def _named(form: Any) -> tuple[str, str]:
    kind, name = str(form.get("kind") or ""), str(form.get("name") or "")
    if kind not in ("rule", "budget", "channel") or not name:
        raise ApiError(400, "kind (rule, budget or channel) and name are needed")
    return kind, name


async def alert_test_form(request: Request) -> Response:
    """``POST /alerts/test``: send a test of a rule or budget now; the page says how it went."""
    form = await check_csrf(request)
    pid = await managed_project(request, form)
    kind, name = _named(form)
    state = request.app.state
    items = await run_in_threadpool(state.store.alert_items, pid, kind)
    body = next((i["body"] for i in items if i["name"] == name), None)
    if body is None or kind == "channel":
        raise ApiError(404, f"no {kind} named {name!r}")
    project = str(form.get("project"))
    results = await run_in_threadpool(send_test_now, state, pid, project, kind, body)
    said = "; ".join(
        f"{r['channel']}: {'sent' if r['ok'] else 'FAILED'} ({r['said']})" for r in results
    )
    return await alerts_page(request, notice=f"Test of {name}: {said}")


async def alert_delete_form(request: Request) -> Response:
    form = await check_csrf(request)
    pid = await managed_project(request, form)
    kind, name = _named(form)
    if not await run_in_threadpool(request.app.state.store.delete_alert_item, pid, kind, name):
        raise ApiError(404, f"no {kind} named {name!r}")
    return RedirectResponse(page_url("/alerts", str(form.get("project"))), status_code=303)
