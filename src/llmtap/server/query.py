"""``GET /api/v1/events`` and ``GET /api/v1/events/{id}``: a key reads its own project only."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.convertors import IntegerConvertor, PathConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..store import EventFilter, Store, decode_cursor, to_us
from ..wire import MAX_ATTRIBUTE_FILTERS, parse_instant
from .auth import confine
from .errors import ApiError

__all__ = [
    "SELECTING",
    "event_filter",
    "get_event",
    "json_answer",
    "list_events",
    "query_event",
    "query_events",
    "whole_number",
]


def whole_number(text: str, most: int) -> int | None:
    """``text`` as a whole number from 1 to ``most``, or None. ASCII digits only: ``isdigit``
    alone admits "²" (which ``int`` refuses) and other scripts' digits; and bounded in length
    before ``int`` reads it."""
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(most))):
        return None
    number = int(text)
    return number if 1 <= number <= most else None


class _AnyText(PathConvertor):
    """``{name:text}`` in a route: the rest of the path, whatever it holds. Starlette's
    ``path`` stops at a line break (its ``.`` does not match one), and an event, chat or
    template id can hold any text."""

    regex = "(?s:.*)"


class _Id(IntegerConvertor):
    """``{name:id}`` in a route: a row's number, at most 19 digits (the database's integers).
    Starlette's ``int`` takes any run of digits, and past 4,300 of them Python's ``int``
    refuses the text: a 500, before any login was asked for."""

    regex = "[0-9]{1,19}"


register_url_convertor("text", _AnyText())
register_url_convertor("id", _Id())

MAX_LIMIT = 1000
# Parameters that select events (the events list, stats and export take them all).
SELECTING = frozenset(EventFilter.EQUALS) | {
    "from",
    "to",
    "q",
    "has_feedback",
    "rating_min",
    "rating_max",
}
_PLAIN = SELECTING | {"limit", "cursor", "sort"}
_BOOL = {"true": True, "1": True, "false": False, "0": False}


def _time(name: str, value: str) -> int:
    try:
        moment = parse_instant(value)
    except ValueError:
        raise ApiError(400, f"{name}: expected an ISO 8601 time, got {value!r}") from None
    try:
        return to_us(moment)
    except OverflowError:  # year 1 with a positive offset, say: before year 1 in UTC
        raise ApiError(400, f"{name}: {value!r} is out of range") from None


def _rating(name: str, value: str) -> float:
    try:
        rating = float(value)
    except ValueError:
        rating = -1.0
    if not 0 <= rating <= 1:
        raise ApiError(400, f"{name}: expected a number from 0 to 1, got {value!r}")
    return rating


def event_filter(
    query: Any, known: frozenset[str] = _PLAIN, also: tuple[str, ...] = ()
) -> EventFilter:
    """The filter the query string asks for; a 400 naming any parameter it does not know
    (``known`` are the parameters of this endpoint, ``also`` others its handler reads)."""
    unknown = [
        k for k in query if k not in known and k not in also and not k.startswith("attributes.")
    ]
    if unknown:
        raise ApiError(
            400,
            f"unknown query parameter(s): {', '.join(sorted(unknown))}",
            [
                {"parameter": k, "known": [*sorted(known | set(also)), "attributes.KEY"]}
                for k in unknown
            ],
        )
    f = EventFilter()
    if "q" in query:
        f.q = query["q"]
    if "has_feedback" in query:
        if query["has_feedback"].lower() not in _BOOL:
            raise ApiError(400, "has_feedback: expected true or false")
        f.has_feedback = _BOOL[query["has_feedback"].lower()]
    if "rating_min" in query:
        f.rating_min = _rating("rating_min", query["rating_min"])
    if "rating_max" in query:
        f.rating_max = _rating("rating_max", query["rating_max"])
    if "sort" in query:
        if query["sort"] not in EventFilter.SORTS:
            raise ApiError(400, f"sort: expected one of {', '.join(EventFilter.SORTS)}")
        f.sort = query["sort"]
    for name in EventFilter.EQUALS:
        if name in query:
            setattr(f, name, query[name])
    if "from" in query:
        f.from_us = _time("from", query["from"])
    if "to" in query:
        f.to_us = _time("to", query["to"])
    if "limit" in query:
        limit = whole_number(query["limit"], MAX_LIMIT)
        if limit is None:
            raise ApiError(400, f"limit: expected a whole number from 1 to {MAX_LIMIT}")
        f.limit = limit
    if "cursor" in query:
        try:
            f.cursor = decode_cursor(query["cursor"], f.sort)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
    f.attributes = {
        k.removeprefix("attributes."): v for k, v in query.items() if k.startswith("attributes.")
    }
    if len(f.attributes) > MAX_ATTRIBUTE_FILTERS:
        raise ApiError(
            400, f"{len(f.attributes)} attribute filters: {MAX_ATTRIBUTE_FILTERS} at most"
        )
    return f


# The queries behind the API, shared with the dashboard's pages so the two cannot drift.


def query_events(
    store: Store, project_id: int, project: str, f: EventFilter, summary: bool = False
) -> dict[str, Any]:
    """A page of events, newest first: ``{"events": [...], "next_cursor": ...}`` (fewer than
    asked when they are large; ``summary``: see ``Store.list_events``)."""
    events, cursor = store.list_events(project_id, f, summary=summary)
    return {"events": [{"project": project, **e} for e in events], "next_cursor": cursor}


def query_event(store: Store, project_id: int, project: str, event_id: str) -> dict[str, Any]:
    """One event with its feedback; a 404 when the project has no such event."""
    event = store.get_event(project_id, event_id)
    if event is None:
        raise ApiError(404, f"no event {event_id!r} in project {project!r}")
    return {"project": project, **event}


async def json_answer(data: Any) -> JSONResponse:
    """``data`` as a JSON response, serialised on a worker thread: a page of events or
    templates may be megabytes, and the event loop serves everyone else meanwhile."""
    return await run_in_threadpool(JSONResponse, data)


async def list_events(request: Request) -> JSONResponse:
    state = request.app.state
    key = await run_in_threadpool(state.keys.authenticate, request, "read")
    f = confine(key, event_filter(request.query_params))
    page = await run_in_threadpool(query_events, state.store, key.project_id, key.project, f)
    return await json_answer(page)


async def get_event(request: Request) -> JSONResponse:
    state = request.app.state
    key = await run_in_threadpool(state.keys.authenticate, request, "read")
    event_id = request.path_params["event_id"]
    event = await run_in_threadpool(query_event, state.store, key.project_id, key.project, event_id)
    if key.env_only and event.get("environment") != key.environment:
        raise ApiError(404, f"no event {event_id!r} in project {key.project!r}")
    return await json_answer(event)
