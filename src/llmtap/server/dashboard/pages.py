"""The dashboard's pages. Each builds its data with the same query code the JSON API uses, then
``render`` answers HTML or JSON."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ...store import EventFilter, to_us
from ...wire import parse_instant
from ..errors import ApiError
from ..otlp.common import event_id as span_event_id
from ..query import event_filter, query_event, query_events, whole_number
from ..testsets import Source, feedback_cases
from .auth import user_of
from .conversation import conversation, output_messages
from .render import page_url, render_page

__all__ = [
    "Context",
    "chain_page",
    "chat_page",
    "event_page",
    "events_page",
    "feedback_page",
]

# Query parameters that steer the page, not the event filter.
_PAGE_PARAMS = {"project", "format", "attr", "deleted"}
# Parameters that page through or order the list, not choose its events.
_LISTING = {"sort", "cursor", "limit"}
# The filters the events page's form has a field for (``attr``: one attribute).
_IN_THE_FORM = {
    "from", "to", "model", "prompt_template_name", "status", "environment", "sdk", "q",
    "has_feedback", "rating_max", "sort", "cursor", "limit", "template_revision",
}  # fmt: skip


def _beside_the_form(request: Request, params: dict[str, str]) -> list[dict[str, str]]:
    """The filters in force that the form has no field for (an attribute from a link, a chat,
    an API name, a second attribute): each kept in the form as a hidden field, so that
    filtering again keeps it, and shown with a link that drops it."""
    key, sep, _ = request.query_params.get("attr", "").partition("=")
    boxed = f"attributes.{key.strip()}" if sep and key.strip() else None
    out = []
    for name, value in params.items():
        if name in _IN_THE_FORM or name == boxed:
            continue
        attribute = name.removeprefix("attributes.") if name.startswith("attributes.") else None
        rest = [
            (k, v)
            for k, v in request.query_params.multi_items()
            if k != name
            and k != "cursor"
            and not (k == "attr" and v.partition("=")[0].strip() == attribute)
        ]
        out.append({"name": name, "value": value, "without": "/events?" + urlencode(rest)})
    return out


class Context:
    """The project a page shows (``?project=`` or the first one) and the list to switch: only
    projects its user has a role in (any role reads); another is answered as if it did not
    exist."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.store = request.app.state.store

    async def project(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        user = user_of(self.request)
        every = await run_in_threadpool(self.store.list_projects)
        projects = [p for p in every if user.is_owner or p["name"] in user.roles]
        if not projects:
            if user.is_owner:
                raise ApiError(404, "no project yet: create a key with `llmtap keys create`")
            raise ApiError(404, "you have no role in a project yet: ask its admin to invite you")
        wanted = self.request.query_params.get("project")
        for p in projects:
            if p["name"] == wanted:
                return p, projects
        if wanted:
            raise ApiError(404, f"no project {wanted!r}")
        return projects[0], projects


def _filter_params(request: Request) -> dict[str, str]:
    """The events filter in the URL: the API's parameters, and ``attr=KEY=VALUE`` from the
    dashboard's form turned into ``attributes.KEY=VALUE``."""
    params = {k: v for k, v in request.query_params.items() if k not in _PAGE_PARAMS and v}
    for pair in request.query_params.getlist("attr"):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            params[f"attributes.{key.strip()}"] = value.strip()
    return params


async def events_page(request: Request) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    params = _filter_params(request)
    f = event_filter(params)
    # One line per event: summaries, not the bodies (which can be megabytes each).
    page = await run_in_threadpool(query_events, ctx.store, project["id"], project["name"], f, True)
    data = {"project": project["name"], "filters": params, **page}
    # "Delete the matching events": only under a filter (the page never offers to wipe a
    # project), and not counted here: with a text filter a count scans the events (2.6 s on a
    # million), and every view of a filtered page would pay it. The notice after says how many.
    selecting = {k: v for k, v in params.items() if k not in _LISTING}
    next_url = None
    if page["next_cursor"]:
        # Every filter as given, repeated ones too (``attr`` may be): the next page, and the
        # delete form on it, select what this one does.
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        next_url = "/events?" + urlencode([*query, ("cursor", page["next_cursor"])])
    # The sets the matching events can be added to (the form's choice, beside a new one).
    testsets = await run_in_threadpool(ctx.store.list_testsets, project["id"])
    return await render_page(
        request,
        "events.html",
        data,
        projects=projects,
        next_url=next_url,
        attr=request.query_params.get("attr", ""),
        beside=_beside_the_form(request, params),
        selecting=selecting,
        testsets=testsets,
        title="Events",
    )


async def event_page(request: Request) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    event_id = request.path_params["event_id"]
    event = await run_in_threadpool(
        query_event, ctx.store, project["id"], project["name"], event_id
    )
    related: dict[str, list[dict[str, Any]]] = {}
    cut: dict[str, bool] = {}  # the list shows part of the chat or chain
    for field in ("chat_id", "chain_id"):
        if event.get(field):
            related[field], cut[field] = await run_in_threadpool(
                _around, ctx.store, project, event, field
            )
    data = {"project": project["name"], "event": event, "related": related}
    view = await run_in_threadpool(_view, event)
    return await render_page(
        request,
        "event.html",
        data,
        projects=projects,
        **view,
        title=f"Event {event_id[:8]}",
        provider_ready=request.app.state.provider.configured,
        related_cut=cut,
    )


# How many calls of its chat or chain an event's page lists before it, and after.
AROUND = 100


def _around(
    store: Any, project: dict[str, Any], event: dict[str, Any], field: str
) -> tuple[list[dict[str, Any]], bool]:
    """The calls of the event's chat (or chain) around it, in time order: up to ``AROUND``
    before it (itself among them) and as many after, in its environment; and whether there
    are more either side. A long chat's newest calls would leave an early turn's own
    neighbours out, and the turn itself."""
    at = to_us(parse_instant(event["started_at"]))
    shared = {"environment": event.get("environment"), field: event[field]}
    before = query_events(
        store,
        project["id"],
        project["name"],
        EventFilter(limit=AROUND, to_us=at + 1, **shared),
        True,
    )
    after = query_events(
        store,
        project["id"],
        project["name"],
        EventFilter(limit=AROUND, from_us=at + 1, sort="started_at", **shared),
        True,
    )
    events = [*reversed(before["events"]), *after["events"]]
    return events, bool(before["next_cursor"] or after["next_cursor"])


def _view(event: dict[str, Any]) -> dict[str, Any]:
    return {"event": event, "messages": conversation(event), "outputs": output_messages(event)}


async def _timeline(request: Request, field: str) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    value = request.path_params["value"]
    # One environment's turns when the link (or the address) names it: a chat id such as
    # "session-1" used in dev and in prod is two conversations.
    environment = request.query_params.get("environment") or None
    f = EventFilter(limit=500, environment=environment, **{field: value})
    found = await run_in_threadpool(query_events, ctx.store, project["id"], project["name"], f)
    steps = list(reversed(found["events"]))
    older_not_shown = found["next_cursor"] is not None
    # The newest steps that fit in a page's byte budget: older ones are in the events list.
    data = {
        "project": project["name"],
        field: value,
        "environment": environment,
        "events": steps,
        "older_not_shown": older_not_shown,
    }
    views = await run_in_threadpool(lambda: [_view(e) for e in steps])
    kind = "Chat" if field == "chat_id" else "Chain"
    context: list[dict[str, Any]] = []
    steps_left_out = 0
    if kind == "Chain":
        # The steps between the calls (tools, retrieval, agents) sent over OTLP, in time order
        # with the calls: an event's started_at and a span's start are the same instants.
        # Those of the calls shown: from the first of them on when older ones are not.
        first = steps[0]["started_at"] if older_not_shown and steps else None
        since = None if first is None else to_us(parse_instant(first))
        context, steps_left_out = await run_in_threadpool(
            ctx.store.chain_context, project["id"], value, 500, since
        )
        for span in context:
            span["started_at"] = _iso(span["started_us"])
        data["context"] = context
        data["context_left_out"] = steps_left_out
    return await render_page(
        request,
        "timeline.html",
        data,
        projects=projects,
        views=views,
        rows=_with_depths(_in_time_order(views, context), project["id"]),
        kind=kind,
        value=value,
        environment=environment,
        steps_left_out=steps_left_out,
        title=f"{kind} {value}",
    )


def _in_time_order(
    views: list[dict[str, Any]], context: list[dict[str, Any]]
) -> list[tuple[str, str, dict[str, Any]]]:
    """Calls and steps in time order. At the same instant a step comes before a call, and the
    longer of two steps first: what starts with another and lasts longer encloses it (an
    agent's span and its first call start in the same microsecond)."""
    rows = [
        *(("call", v["event"]["started_at"], v) for v in views),
        *(("step", c["started_at"], c) for c in context),
    ]
    return sorted(
        rows,
        key=lambda row: (
            parse_instant(row[1]),
            row[0] == "call",
            -(row[2].get("duration_ms") or 0) if row[0] == "step" else 0,
        ),
    )


# How deep a chain page indents a call or step under its parents (deeper ones stay there).
MAX_DEPTH = 6


def _with_depths(
    rows: list[tuple[str, str, dict[str, Any]]], project_id: int
) -> list[tuple[str, str, dict[str, Any], int]]:
    """Each row with its depth in the chain: how many of its parents (a call's
    ``parent_event_id``, a step's parent span) the page shows, so an agent's tools and calls
    sit under it. Parents can be anything a key sent, a cycle or the row itself: each walk
    stops at a row it has seen."""
    node = {_node(row, project_id): row for row in rows}
    out = []
    for row in rows:
        seen = {_node(row, project_id)}
        depth, parent = 0, _parent_node(row, project_id)
        while parent in node and parent not in seen and depth < MAX_DEPTH:
            seen.add(parent)
            depth += 1
            parent = _parent_node(node[parent], project_id)
        out.append((*row, depth))
    return out


def _node(row: tuple[str, str, dict[str, Any]], project_id: int) -> str:
    """A row's id as its children name it: a call's event id; a step's span, as the event
    id a call of that span would have had (``otlp.common.event_id``)."""
    kind, _, value = row
    if kind == "call":
        return str(value["event"]["id"])
    return span_event_id(project_id, value["trace_id"], value["span_id"])


def _parent_node(row: tuple[str, str, dict[str, Any]], project_id: int) -> str | None:
    kind, _, value = row
    if kind == "call":
        parent = value["event"].get("parent_event_id")
        return str(parent) if parent else None
    if not value.get("parent_span_id"):
        return None
    return span_event_id(project_id, value["trace_id"], value["parent_span_id"])


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat()


async def chat_page(request: Request) -> Response:
    return await _timeline(request, "chat_id")


async def chain_page(request: Request) -> Response:
    return await _timeline(request, "chain_id")


def _line(case: dict[str, Any]) -> dict[str, Any]:
    """A case as a line of the feedback download: its fields, and its original answer as
    ``output`` too (the download's name for it before cases had theirs)."""
    return {**case, "output": case.get("original_output")}


def _attachment(filename: str) -> str:
    """A Content-Disposition naming ``filename`` whatever its characters: an ASCII fallback,
    and the name itself UTF-8 and percent-quoted (RFC 6266), since header values are Latin-1
    and a quote or line break in a project name must not end the header."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def feedback_page(request: Request) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    if request.query_params.get("format") == "jsonl":
        # The rated answers as a test set: the cases a set made from the project's feedback
        # has (what was asked, with its template, model and settings; what came back; what
        # was wanted), each a line ``llmtap testsets import`` takes back as it is.
        def download() -> str:
            cases = feedback_cases(
                ctx.store, project["id"], Source.model_validate({"source": "feedback"})
            )
            return "".join(json.dumps(_line(c), ensure_ascii=False) + "\n" for c in cases)

        body = await run_in_threadpool(download)
        return Response(
            body,
            media_type="application/x-ndjson",
            headers={
                "content-disposition": _attachment(f"llmtap-feedback-{project['name']}.jsonl")
            },
        )
    before = request.query_params.get("before")
    before_id = None if before is None else whole_number(before, 2**63 - 1)
    if before is not None and before_id is None:
        raise ApiError(400, f"before: expected a feedback's id (a whole number), got {before!r}")
    items = await run_in_threadpool(
        ctx.store.list_feedback, project["id"], FEEDBACK_SHOWN + 1, before_id
    )
    # A line each: the rated call's id, template and answer, cut as the events list's are
    # (events can be megabytes each; the download above has them whole).
    shown = items[:FEEDBACK_SHOWN]
    data = {"project": project["name"], "feedback": [_feedback_line(i) for i in shown]}
    older = len(items) > FEEDBACK_SHOWN
    return await render_page(
        request,
        "feedback.html",
        data,
        projects=projects,
        title="Feedback",
        older=page_url("/feedback", project["name"], before=shown[-1]["id"]) if older else None,
    )


FEEDBACK_SHOWN = 200  # feedback a page lists; the next page, from the older link


FEEDBACK_TEXT = 1000  # characters of an answer, and of a better response, a line shows


def _feedback_line(item: dict[str, Any]) -> dict[str, Any]:
    event = item.get("event")
    if event is not None:
        event = {
            "id": event.get("id"),
            "prompt_template_name": event.get("prompt_template_name"),
            "output_text": _cut(event.get("output_text")),
        }
    return {**item, "event": event, "better_response": _cut(item.get("better_response"))}


def _cut(text: Any) -> Any:
    if isinstance(text, str) and len(text) > FEEDBACK_TEXT:
        return text[:FEEDBACK_TEXT] + "…"
    return text
