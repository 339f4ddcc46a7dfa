"""The dashboard's delete buttons (event page, chat page, events page): one form handler, as
the API's delete, then back to the events list with a notice."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ...store import EventFilter
from ..delete import delete_matching, deletion_filter
from ..errors import ApiError
from .admin import managed_project
from .auth import check_csrf

__all__ = ["delete_form"]

# Form fields that are not event filters.
_FORM_FIELDS = {"csrf_token", "project", "id"}


async def delete_form(request: Request) -> Response:
    """``POST /events/delete``: the event ``id``, or every event the other fields select (the
    events list's filters, as the API's; at least one: the dashboard never deletes a whole
    project at once)."""
    form = await check_csrf(request)
    store = request.app.state.store
    project = str(form.get("project") or "")
    pid = await managed_project(request, form)  # the project's admins (and the owner) only
    event_id = form.get("id")
    if isinstance(event_id, str) and event_id:
        ids: list[str] | None = [event_id]
        f = EventFilter()
    else:
        ids = None
        fields = {k: v for k, v in form.items() if k not in _FORM_FIELDS and isinstance(v, str)}
        f = deletion_filter({k: v for k, v in fields.items() if v and k != "all"})
    answer = await run_in_threadpool(delete_matching, store, pid, f, ids)
    if ids and not answer["deleted"]:
        raise ApiError(404, f"no event {event_id!r} in project {project!r}")
    query = urlencode({"project": project, "deleted": answer["deleted"]})
    return RedirectResponse(f"/events?{query}", status_code=303)
