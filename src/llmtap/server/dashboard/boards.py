"""The boards pages: the list (new from a template, duplicate, delete), a board (its panels
drawn by ``static/boards.js`` from ``/api/v1/boards/{id}/data``, and its editor), and a
published board at ``/b/{token}``, read-only, for anyone with the link (and, when its maker
allowed it, the summaries of the events behind a panel's point, bar or row: ``/b/{token}/events``).

A published board's page and data name nothing but the token: the board and project come from
the link's row, never from the request, so no edit of the URL reaches other data."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from datetime import datetime, timezone
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ...store import Store
from ..auth import hash_key
from ..boards.api import access, create_board, read_board, templates_offered
from ..boards.data import board_data, drill_filter
from ..boards.spec import ALIASES, BUCKETS, GROUP_BYS, MEASURES, RANGES, VIEWS, parse_board
from ..errors import ApiError
from .auth import check_csrf
from .pages import Context
from .render import page_url, render_page

__all__ = [
    "board_form",
    "board_page",
    "boards_page",
    "new_board_form",
    "shared_board_data",
    "shared_board_events",
    "shared_board_page",
]

# What the editor's pickers offer besides what the project holds (fetched from the API).
_CHOICES = {
    "measures": {name: list(path) for name, path in MEASURES.items()},
    "views": list(VIEWS),
    "buckets": list(BUCKETS),
    "group_bys": list(GROUP_BYS),
    "aliases": ALIASES,
    "ranges": list(RANGES),
}


async def boards_page(request: Request) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    a = await access(request, False)

    def work(store: Store) -> dict[str, Any]:
        return {
            "project": project["name"],
            "boards": store.list_boards(project["id"]),
            "templates": templates_offered(store),
            "may_write": a.may_write,
        }

    data = await run_in_threadpool(work, ctx.store)
    return await render_page(request, "boards.html", data, projects=projects, title="Boards")


async def board_page(request: Request) -> Response:
    ctx = Context(request)
    project, projects = await ctx.project()
    a = await access(request, False)
    board = await run_in_threadpool(
        read_board, ctx.store, project["id"], request.path_params["board_id"]
    )
    data = {"project": project["name"], "board": board, "may_write": a.may_write}
    return await render_page(
        request,
        "board.html",
        data,
        projects=projects,
        choices=_CHOICES,
        shared=None,
        title=board["name"],
    )


async def new_board_form(request: Request) -> Response:
    """A new board, blank or from a template; then its page."""
    form = await check_csrf(request)
    a = await access(request, True, form=True)
    template = str(form.get("template") or "")
    data: dict[str, Any] = (
        {"template": template} if template else {"name": str(form.get("name") or "New board")}
    )
    board = await run_in_threadpool(create_board, request.app.state.store, a, data)
    return RedirectResponse(page_url(f"/boards/{board['id']}", a.project), status_code=303)


async def board_form(request: Request) -> Response:
    """Duplicate or delete a board (``action``), then the list (or the copy)."""
    form = await check_csrf(request)
    a = await access(request, True, form=True)
    board_id = request.path_params["board_id"]
    store = request.app.state.store
    action = form.get("action")
    if action == "delete":
        if not await run_in_threadpool(store.delete_board, a.project_id, board_id):
            raise ApiError(404, f"no board {board_id!r}")
        return RedirectResponse(page_url("/boards", a.project), status_code=303)
    if action != "duplicate":
        raise ApiError(400, "action: duplicate or delete")

    def copy() -> dict[str, Any]:
        old = read_board(store, a.project_id, board_id)
        return create_board(store, a, {"name": f"Copy of {old['name']}"[:200], "spec": old["spec"]})

    board = await run_in_threadpool(copy)
    return RedirectResponse(page_url(f"/boards/{board['id']}", a.project), status_code=303)


# The newest events a published drill-down shows.
_DRILL_EVENTS = 100


def _shared(request: Request, takes: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """(link, board) of the token in the path; a 404 for any token that does not open one
    now (unknown, revoked, expired, its board deleted), all alike. The query string may
    hold only ``takes``, once each."""
    query = request.query_params
    if any(k not in takes or len(query.getlist(k)) > 1 for k in query):
        raise ApiError(400, f"a published board takes {', '.join(takes) or 'no'} query parameters")
    store = request.app.state.store
    token = request.path_params["token"]
    link = store.share_by_hash(hash_key(token), int(time.time() * 1_000_000))
    board = None if link is None else store.board(link["project_id"], link["board_id"])
    if link is None or board is None:
        raise ApiError(404, "no such board: the link is wrong, revoked or expired")
    return link, board


async def shared_board_page(request: Request) -> Response:
    link, board = await run_in_threadpool(_shared, request)
    data = {"project": "", "board": _public(board), "may_write": False}
    return await render_page(
        request,
        "board.html",
        data,
        choices=_CHOICES,
        shared=request.url.path,
        bodies=link["allow_bodies"],
        title=board["name"],
    )


def _public(board: dict[str, Any]) -> dict[str, Any]:
    """What a link shows of its board: not who made or changed it, nor when."""
    return {k: board[k] for k in ("id", "name", "spec")}


def _iso_us(us: int) -> str | None:
    """The instant, or None past what a date can hold (a board's range may end there)."""
    try:
        return datetime.fromtimestamp(us / 1_000_000, timezone.utc).isoformat()
    except (OverflowError, ValueError, OSError):
        return None


# Seconds since 1970 of the year 10000: a later bucket is no date (and no event's).
_LAST_SECOND = 253_402_300_800


def _drill_bucket(value: str | None) -> int | None:
    if value is None:
        return None
    ok = value.isascii() and value.isdigit() and len(value) <= 20
    if not ok or int(value) >= _LAST_SECOND - 604_800:  # a week's room for the bucket's end
        raise ApiError(400, "bucket: a time in seconds since 1970, before the year 10000")
    return int(value)


async def shared_board_events(request: Request) -> Response:
    """The summaries of the events behind one panel's point, bar or row (``panel``, and the
    ``group`` value and/or ``bucket`` second clicked), the newest first; only where the link's
    maker allowed it (404 otherwise, as for a link that does not exist). Every filter comes
    from the board: the request only narrows it (see ``drill_filter``)."""

    def work() -> dict[str, Any]:
        link, board = _shared(request, ("panel", "group", "bucket"))
        if not link["allow_bodies"]:
            raise ApiError(404, "this link shows the board's panels only, not their events")
        spec = parse_board({"name": board["name"], "spec": board["spec"]}).spec
        query = request.query_params
        panel = next((p for p in spec.panels if p.id == query.get("panel")), None)
        if panel is None:
            raise ApiError(404, "no such panel on this board")
        group = query.get("group")
        if group is not None and len(group) > 1000:
            raise ApiError(400, "group: 1000 characters at most")
        f = drill_filter(spec, panel, time.time(), group, _drill_bucket(query.get("bucket")))
        f.limit = _DRILL_EVENTS
        events, _ = request.app.state.store.list_events(link["project_id"], f, summary=True)
        return {
            "board": _public(board),
            "panel": panel.model_dump(),
            "group": group,
            "from": None if f.from_us is None else _iso_us(f.from_us),
            "to": None if f.to_us is None else _iso_us(f.to_us),
            "events": events,
            "limit": _DRILL_EVENTS,
            "back": "/b/" + request.path_params["token"],
        }

    data = await run_in_threadpool(work)
    return await render_page(request, "shared_events.html", data, title=data["board"]["name"])


class Recent:
    """Answers kept for ``seconds`` (at most ``most`` of them): however many ask for one at
    once, it is computed once. A link is anyone's to read as often as they like, and a board
    of eight panels over a million events takes a good part of a second to compute."""

    def __init__(self, seconds: float = 5.0, most: int = 256) -> None:
        self.seconds, self.most = seconds, most
        self._answers: dict[Hashable, tuple[float, Any]] = {}
        self._making: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if (answer := self._fresh(key)) is not None:
            return answer
        with self._lock:
            making = self._making.setdefault(key, threading.Lock())
        with making:  # the others asking meanwhile wait here, then read what it made
            if (answer := self._fresh(key)) is not None:
                return answer
            answer = make()
            with self._lock:
                self._answers.pop(key, None)
                self._answers[key] = (time.monotonic(), answer)
                while len(self._answers) > self.most:
                    oldest = next(iter(self._answers))
                    del self._answers[oldest]
                    self._making.pop(oldest, None)
            return answer

    def _fresh(self, key: Hashable) -> Any:
        found = self._answers.get(key)
        if found is None or time.monotonic() - found[0] >= self.seconds:
            return None
        return found[1]


async def shared_board_data(request: Request) -> Response:
    """A published board's panels, computed at most once every few seconds for all its
    readers (an edit of the board shows at once: its version is in the key)."""
    state = request.app.state
    recent = getattr(state, "shared_answers", None)
    if recent is None:
        recent = state.shared_answers = Recent()

    def work() -> dict[str, Any]:
        link, board = _shared(request)
        spec = parse_board({"name": board["name"], "spec": board["spec"]}).spec
        key = (link["project_id"], link["id"], board["version"])
        answer: dict[str, Any] = recent.get(
            key, lambda: board_data(state.store, link["project_id"], spec)
        )
        return answer

    return JSONResponse(await run_in_threadpool(work))
