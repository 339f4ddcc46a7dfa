"""``/api/v1/boards``: boards as JSON, for programs (a key: ``read`` to read, ``admin`` to
change) and for the dashboard's editor (the session: any role reads, ``member`` and
``admin`` change; its writes carry the ``X-CSRF-Token`` header).

    GET    /api/v1/boards                      the project's boards and the templates offered
    POST   /api/v1/boards                      a new board: {"name", "spec"} or {"template"}
    POST   /api/v1/boards/preview              data of an unsaved spec (the editor's preview)
    POST   /api/v1/boards/validate             checks a board, stores nothing (import)
    GET    /api/v1/boards/fields               what exists to pick: models, templates, keys...
    GET    /api/v1/boards/{id}                 one board; PUT saves it, DELETE removes it
    GET    /api/v1/boards/{id}/data            its panels' data
    GET    /api/v1/boards/{id}/versions[/{n}]  its history; POST .../restore {"version"}
    POST   /api/v1/boards/{id}/duplicate       a copy, named {"name"} or "Copy of ..."
    GET    /api/v1/boards/{id}/shares          its links; POST makes one, DELETE .../{sid}
"""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ...store import LIVE_LINKS, EventFilter, Store
from ..auth import hash_key, refuse_one_environment
from ..errors import ApiError
from ..ingest import parse_json
from ..query import json_answer
from .builtin import BUILTIN
from .data import board_data
from .spec import BoardIn, Spec, parse_board

__all__ = ["Access", "access", "board_routes", "create_board", "read_board", "templates_offered"]

_MAX_BODY = 1_000_000  # a board's JSON; far above any real one (40 panels)
_WRITER_ROLES = ("member", "admin")
MAX_PICKED = 500  # values a picker offers, the most frequent
_FIELD_GROUPS = ("model", "prompt_template_name", "environment", "status", "template_revision")


@dataclass
class Access:
    """Who asks, for which project, and whether they may change its boards."""

    project_id: int
    project: str
    who: str
    may_write: bool
    environment: str | None  # an env_only key's: its panels read only that environment


async def access(request: Request, write: bool, form: bool = False) -> Access:
    """The caller's project and rights: by key when the request carries one, else by the
    dashboard session (``?project=``); a 401, 403 or 404 otherwise. ``form``: a dashboard form
    whose CSRF token was checked already (not the header)."""
    state = request.app.state
    if "authorization" in request.headers:
        key = await run_in_threadpool(
            state.keys.authenticate, request, "admin" if write else "read"
        )
        asked = request.query_params.get("project")
        if asked is not None and asked != key.project:
            raise ApiError(404, f"no project {asked!r} for this key")
        return Access(
            key.project_id,
            key.project,
            f"key #{key.key_id}",
            "admin" in key.scopes,
            key.environment if key.env_only else None,
        )
    # Imported here: the dashboard imports this package for its pages.
    from ..dashboard.auth import logged_in_user
    from ..dashboard.pages import Context

    user = await logged_in_user(request)
    if user is None:
        raise ApiError(401, "send an API key ('Authorization: Bearer <key>') or log in")
    project, _ = await Context(request).project()
    may_write = user.is_owner or user.role(project["name"]) in _WRITER_ROLES
    if write:
        if not may_write:
            raise ApiError(403, f"changing boards of {project['name']!r} needs a member role")
        sent = request.headers.get("x-csrf-token", "")
        if not form and not hmac.compare_digest(sent.encode(), user.csrf.encode()):
            raise ApiError(403, "CSRF check failed: reload the page and try again")
    return Access(project["id"], project["name"], user.name, may_write, None)


async def _json_body(request: Request) -> Any:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            raise ApiError(413, f"a board is at most {_MAX_BODY} bytes of JSON")
    return parse_json(body or b"{}")


def read_board(store: Store, project_id: int, board_id: str) -> dict[str, Any]:
    found = store.board(project_id, board_id)
    if found is None:
        raise ApiError(404, f"no board {board_id!r}")
    return found


def _spec(board: dict[str, Any]) -> Spec:
    return parse_board({"name": board["name"], "spec": board["spec"]}).spec


def _template(store: Store, name: str) -> dict[str, Any]:
    """A built-in template by name, or a board marked as a template (``board:ID``)."""
    if name in BUILTIN:
        return BUILTIN[name]
    for t in store.list_board_templates():
        if f"board:{t['id']}" == name:
            return {"name": t["name"], "spec": t["spec"]}
    raise ApiError(400, f"template: no template {name!r}", [{"known": list(BUILTIN)}])


def templates_offered(store: Store) -> list[dict[str, Any]]:
    """The built-in templates and the boards marked as templates, by id and name (not their
    project's name: a template is shared, the project it lives in is not)."""
    offered = [{"id": k, "name": v["name"], "builtin": True} for k, v in BUILTIN.items()]
    offered += [
        {"id": f"board:{t['id']}", "name": t["name"], "builtin": False}
        for t in store.list_board_templates()
    ]
    return offered


# Boards a project may have (Grafana's own default is none; a team's is dozens).
MAX_BOARDS = 1_000


def create_board(store: Store, a: Access, data: Any) -> dict[str, Any]:
    if isinstance(data, dict) and "template" in data:
        name = data.get("template")
        if not isinstance(name, str) or set(data) - {"template", "name"}:
            raise ApiError(400, "template: give {'template': NAME} and optionally a 'name'")
        data = {**_template(store, name), **({"name": data["name"]} if "name" in data else {})}
    board = parse_board(data)
    spec = board.spec.model_dump(by_alias=True, exclude_none=True)
    if len(store.list_boards(a.project_id)) >= MAX_BOARDS:
        # Each board is computed when shown, and every list of them is read whole: a key
        # that may write boards is not a way to fill the store with them.
        raise ApiError(409, f"the project has {MAX_BOARDS} boards: delete one first")
    while True:  # 48 random bits: a taken id is next to impossible, and then another is drawn
        board_id = uuid.uuid4().hex[:12]
        if store.create_board(a.project_id, board_id, board.name, spec, a.who, board.is_template):
            return read_board(store, a.project_id, board_id)


def _save(store: Store, a: Access, board_id: str, board: BoardIn) -> dict[str, Any]:
    if a.environment is not None and any(
        s["board_id"] == board_id and s["revoked_at"] is None
        for s in store.list_shares(a.project_id)
    ):
        # A link shows whatever the board holds, to anyone and in every environment: a key
        # that reads one environment could otherwise publish another's through it.
        refuse_one_environment(a.environment, "a board with a link")
    spec = board.spec.model_dump(by_alias=True, exclude_none=True)
    if (
        store.update_board(a.project_id, board_id, board.name, spec, board.is_template, a.who)
        is None
    ):
        raise ApiError(404, f"no board {board_id!r}")
    return read_board(store, a.project_id, board_id)


def _version_number(value: Any) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise ApiError(400, "version: expected a whole number from 1")
    return value


def _version(store: Store, a: Access, board_id: str, version: Any) -> dict[str, Any]:
    found = store.board_version(a.project_id, board_id, _version_number(version))
    if found is None:
        raise ApiError(404, f"no version {version!r} of board {board_id!r}")
    return found


def _offered(answer: dict[str, Any], field: str) -> dict[str, Any]:
    """A picker's values of ``field``: the ``MAX_PICKED`` most frequent, with counts, and
    how many it left out (a template per untemplated prompt: 20,000 options had been 1.6 MB
    of picker)."""
    values = sorted(
        ({"value": g["key"][field], "count": g["count"]} for g in answer["groups"]),
        key=lambda v: -v["count"],
    )
    return {"values": values[:MAX_PICKED], "left_out": max(0, len(values) - MAX_PICKED)}


def _fields(store: Store, a: Access, key: str | None) -> dict[str, Any]:
    """What a picker offers: each dimension's values and the attribute keys, with counts (from
    the stats query); with ``key``, that attribute's values. Of the keys, none to a key of one
    environment."""
    f = EventFilter(environment=a.environment)
    if key is not None:
        answer = store.stats(a.project_id, f, [f"attributes.{key}"])
        return {"key": key, **_offered(answer, f"attributes.{key}")}
    answers = store.stats_many(a.project_id, f, [[g] for g in _FIELD_GROUPS])
    out: dict[str, Any] = {}
    for g, answer in zip(_FIELD_GROUPS, answers, strict=True):
        offered = _offered(answer, g)
        out[g], out[f"{g}_left_out"] = offered["values"], offered["left_out"]
    # The names (and value counts) span the project's environments: not for a key confined
    # to one (it still reads the values of a name it knows, from its environment's events).
    out["attributes"] = store.attribute_keys(a.project_id) if a.environment is None else []
    return out


def _new_share(store: Store, a: Access, board_id: str, data: Any) -> dict[str, Any]:
    read_board(store, a.project_id, board_id)
    if not isinstance(data, dict) or set(data) - {"expires_in_days", "allow_bodies"}:
        raise ApiError(400, "a link takes expires_in_days (a number) and allow_bodies (true/false)")
    days = data.get("expires_in_days")
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 3650
    ):
        raise ApiError(400, "expires_in_days: a number of days from 1 to 3650")
    allow = data.get("allow_bodies", False)
    if not isinstance(allow, bool):
        raise ApiError(400, "allow_bodies: true or false")
    token = secrets.token_urlsafe(24)
    share_id = uuid.uuid4().hex[:12]
    expires = None if days is None else int((time.time() + days * 86400) * 1_000_000)
    if not store.create_share(
        a.project_id, share_id, board_id, hash_key(token), a.who, expires, allow
    ):
        raise ApiError(409, f"board {board_id!r} has {LIVE_LINKS} live links: revoke one first")
    return {"id": share_id, "url": f"/b/{token}", "token": token, "expires_us": expires}


async def _run(request: Request, write: bool, work: Any, *args: Any) -> JSONResponse:
    a = await access(request, write)
    return await json_answer(await run_in_threadpool(work, request.app.state.store, a, *args))


async def boards(request: Request) -> Response:
    if request.method == "POST":
        data = await _json_body(request)
        a = await access(request, True)
        created = await run_in_threadpool(create_board, request.app.state.store, a, data)
        return JSONResponse(created, status_code=201)

    def listing(store: Store, a: Access) -> dict[str, Any]:
        return {"boards": store.list_boards(a.project_id), "templates": templates_offered(store)}

    return await _run(request, False, listing)


async def preview(request: Request) -> Response:
    data = await _json_body(request)
    a = await access(request, False)
    spec = parse_board(data).spec

    def work(store: Store) -> dict[str, Any]:
        return board_data(store, a.project_id, spec, a.environment)

    return await json_answer(await run_in_threadpool(work, request.app.state.store))


async def validate(request: Request) -> Response:
    data = await _json_body(request)
    await access(request, False)
    parse_board(data)  # a 400 naming the field, when it is not a board
    return JSONResponse({"ok": True})


async def fields(request: Request) -> Response:
    key = request.query_params.get("key")
    if key is not None and not 0 < len(key) <= 200:
        raise ApiError(400, "key: an attribute key of 1 to 200 characters")
    return await _run(request, False, _fields, key)


async def one_board(request: Request) -> Response:
    board_id = request.path_params["board_id"]
    if request.method == "GET":
        return await _run(request, False, lambda s, a: read_board(s, a.project_id, board_id))
    if request.method == "DELETE":

        def delete(store: Store, a: Access) -> dict[str, Any]:
            if not store.delete_board(a.project_id, board_id):
                raise ApiError(404, f"no board {board_id!r}")
            return {"ok": True}

        return await _run(request, True, delete)
    board = parse_board(await _json_body(request))
    return await _run(request, True, _save, board_id, board)


async def data_of(request: Request) -> Response:
    board_id = request.path_params["board_id"]

    def work(store: Store, a: Access) -> dict[str, Any]:
        spec = _spec(read_board(store, a.project_id, board_id))
        return board_data(store, a.project_id, spec, a.environment)

    return await _run(request, False, work)


async def versions(request: Request) -> Response:
    board_id = request.path_params["board_id"]
    version = request.path_params.get("version")
    if version is not None:
        return await _run(request, False, _version, board_id, version)

    def work(store: Store, a: Access) -> dict[str, Any]:
        read_board(store, a.project_id, board_id)
        return {"versions": store.board_versions(a.project_id, board_id)}

    return await _run(request, False, work)


async def restore(request: Request) -> Response:
    board_id = request.path_params["board_id"]
    data = await _json_body(request)
    if not isinstance(data, dict) or set(data) != {"version"}:
        raise ApiError(400, "give {'version': N}")

    def work(store: Store, a: Access) -> dict[str, Any]:
        old = _version(store, a, board_id, data["version"])
        current = read_board(store, a.project_id, board_id)
        board = parse_board(
            {"name": old["name"], "spec": old["spec"], "is_template": current["is_template"]}
        )
        return _save(store, a, board_id, board)

    return await _run(request, True, work)


async def duplicate(request: Request) -> Response:
    board_id = request.path_params["board_id"]
    data = await _json_body(request)
    if not isinstance(data, dict) or set(data) - {"name"}:
        raise ApiError(400, "give {} or {'name': NEW_NAME}")

    def work(store: Store, a: Access) -> dict[str, Any]:
        old = read_board(store, a.project_id, board_id)
        name = data.get("name", f"Copy of {old['name']}"[:200])
        return create_board(store, a, {"name": name, "spec": old["spec"]})

    a = await access(request, True)
    created = await run_in_threadpool(work, request.app.state.store, a)
    return JSONResponse(created, status_code=201)


async def shares(request: Request) -> Response:
    board_id = request.path_params["board_id"]
    if request.method == "POST":
        data = await _json_body(request)
        a = await access(request, True)
        # A link is read by anyone, with no key: it cannot keep a key's environment.
        refuse_one_environment(a.environment, "board links")
        made = await run_in_threadpool(_new_share, request.app.state.store, a, board_id, data)
        return JSONResponse(made, status_code=201)

    def listing(store: Store, a: Access) -> dict[str, Any]:
        read_board(store, a.project_id, board_id)
        every = store.list_shares(a.project_id)
        return {"shares": [s for s in every if s["board_id"] == board_id]}

    return await _run(request, False, listing)


async def revoke(request: Request) -> Response:
    board_id, share_id = request.path_params["board_id"], request.path_params["share_id"]

    def work(store: Store, a: Access) -> dict[str, Any]:
        mine = [s for s in store.list_shares(a.project_id) if s["board_id"] == board_id]
        if share_id not in {s["id"] for s in mine} or not store.revoke_share(
            a.project_id, share_id
        ):
            raise ApiError(404, f"no live link {share_id!r} to board {board_id!r}")
        return {"ok": True}

    return await _run(request, True, work)


def board_routes() -> list[Route]:
    base = "/api/v1/boards"
    one = base + "/{board_id}"
    return [
        Route(base, boards, methods=["GET", "POST"]),
        Route(base + "/preview", preview, methods=["POST"]),
        Route(base + "/validate", validate, methods=["POST"]),
        Route(base + "/fields", fields, methods=["GET"]),
        Route(one, one_board, methods=["GET", "PUT", "DELETE"]),
        Route(one + "/data", data_of, methods=["GET"]),
        Route(one + "/versions", versions, methods=["GET"]),
        Route(one + "/versions/{version}", versions, methods=["GET"]),
        Route(one + "/restore", restore, methods=["POST"]),
        Route(one + "/duplicate", duplicate, methods=["POST"]),
        Route(one + "/shares", shares, methods=["GET", "POST"]),
        Route(one + "/shares/{share_id}", revoke, methods=["DELETE"]),
    ]
