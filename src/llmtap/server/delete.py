"""``DELETE /api/v1/events/{id}`` and ``DELETE /api/v1/events?<filters>``: forgetting events
(admin keys only). The filters are the events list's; an empty one is refused unless
``all=true``, so a slip cannot wipe a project.

A deleted event is forgotten entirely, its id too: the same event sent again (from an SDK's
disk spool, say) is stored again, as new.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..store import EventFilter, Store, search_words
from .auth import confine
from .errors import ApiError
from .query import SELECTING, event_filter

__all__ = ["delete_event", "delete_events", "delete_matching", "deletion_filter", "is_empty"]

_BOOL = {"true": True, "1": True, "false": False, "0": False}


def is_empty(f: EventFilter) -> bool:
    """True when ``f`` selects every event (no filter at all)."""
    return f == EventFilter(limit=f.limit, sort=f.sort)


def deletion_filter(query: Any) -> EventFilter:
    """The events a delete asks for: the list's filters; a 400 for none unless ``all=true``."""
    f = event_filter(query, SELECTING, also=("all",))
    everything = query.get("all", "false").lower()
    if everything not in _BOOL:
        raise ApiError(400, "all: expected true or false")
    if f.q is not None and not search_words(f.q):
        # The list ignores such a q (it shows everything): a delete must not.
        raise ApiError(400, f"q: no word to search for in {f.q!r}")
    if is_empty(f) and not _BOOL[everything]:
        raise ApiError(
            400,
            "refusing to delete every event of the project: give a filter, or all=true",
            [{"parameter": "all", "known": sorted(SELECTING | {"all", "attributes.KEY"})}],
        )
    return f


def delete_matching(
    store: Store, project_id: int, f: EventFilter, ids: list[str] | None = None
) -> dict[str, Any]:
    return {"ok": True, "deleted": store.delete_events(project_id, f, ids)}


async def delete_events(request: Request) -> JSONResponse:
    state = request.app.state
    key = await run_in_threadpool(state.keys.authenticate, request, "admin")
    f = confine(key, deletion_filter(request.query_params))
    answer = await run_in_threadpool(delete_matching, state.store, key.project_id, f)
    return JSONResponse(answer)


async def delete_event(request: Request) -> JSONResponse:
    state = request.app.state
    key = await run_in_threadpool(state.keys.authenticate, request, "admin")
    event_id = request.path_params["event_id"]
    f = confine(key, EventFilter())
    answer = await run_in_threadpool(delete_matching, state.store, key.project_id, f, [event_id])
    if not answer["deleted"]:
        raise ApiError(404, f"no event {event_id!r} in project {key.project!r}")
    return JSONResponse(answer)
