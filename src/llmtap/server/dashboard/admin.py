"""Login, logout, and the settings page: projects, environments, API keys."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ...store._admin import list_keys, list_projects, project_id, revoke_key, set_key_scopes
from ..auth import SCOPES, check_scopes, create_key
from ..errors import ApiError
from .auth import check_csrf
from .render import render

__all__ = [
    "create_key_form",
    "key_scopes_form",
    "login_form",
    "login_submit",
    "logout",
    "revoke_key_form",
    "settings_page",
]


def _safe_next(target: object) -> str:
    # Only a path on this server: never an open redirect to another site.
    if isinstance(target, str) and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


async def login_form(request: Request) -> Response:
    return render(
        request,
        "login.html",
        {},
        next=_safe_next(request.query_params.get("next")),
        error=None,
        title="Log in",
    )


async def login_submit(request: Request) -> Response:
    form = await check_csrf(request)
    auth = request.app.state.admin
    token = form.get("token")
    target = _safe_next(form.get("next"))
    if not isinstance(token, str) or not auth.check_token(token.strip()):
        response = render(
            request,
            "login.html",
            {},
            next=target,
            title="Log in",
            error="That is not the admin token.",
        )
        response.status_code = 401
        return response
    response = RedirectResponse(target, status_code=303)
    auth.start_session(response, secure=request.url.scheme == "https")
    return response


async def logout(request: Request) -> Response:
    await check_csrf(request)
    response = RedirectResponse("/login", status_code=303)
    request.app.state.admin.end_session(response)
    return response


async def settings_page(request: Request, new_key: str | None = None) -> Response:
    store = request.app.state.store
    projects = await run_in_threadpool(list_projects, store)
    for project in projects:
        project["keys"] = await run_in_threadpool(list_keys, store, project["id"])
    current = request.query_params.get("project") or (projects[0]["name"] if projects else "")
    data = {"projects": projects, "scopes": SCOPES}
    return render(
        request, "settings.html", data, new_key=new_key, project_name=current, title="Settings"
    )


def _scopes_of(form: Any, default: tuple[str, ...] = ()) -> tuple[list[str], bool]:
    try:
        scopes = check_scopes([str(s) for s in form.getlist("scope")] or default)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return scopes, form.get("env_only") == "on"


async def create_key_form(request: Request) -> Response:
    form = await check_csrf(request)
    project = str(form.get("project") or "").strip()
    environment = str(form.get("environment") or "dev").strip() or "dev"
    if not project or len(project) > 200:
        raise ApiError(400, "a project name is needed (at most 200 characters)")
    scopes, env_only = _scopes_of(form, default=("ingest",))  # as `llmtap keys create`
    key = await run_in_threadpool(
        create_key, request.app.state.store, project, environment, scopes, env_only
    )
    # Shown once, on this response only: the store keeps its hash.
    return await settings_page(request, new_key=key)


async def revoke_key_form(request: Request) -> Response:
    form = await check_csrf(request)
    store = request.app.state.store
    pid = await run_in_threadpool(project_id, store, str(form.get("project") or ""))
    key_id = request.path_params["key_id"]
    if pid is None or not await run_in_threadpool(revoke_key, store, pid, key_id):
        raise ApiError(404, "no such active key in that project")
    return RedirectResponse("/settings", status_code=303)


async def key_scopes_form(request: Request) -> Response:
    """Change what a key may do (a running server sees it within the key cache's 30 s)."""
    form = await check_csrf(request)
    store = request.app.state.store
    pid = await run_in_threadpool(project_id, store, str(form.get("project") or ""))
    scopes, env_only = _scopes_of(form)
    key_id = request.path_params["key_id"]
    if pid is None or not await run_in_threadpool(
        set_key_scopes, store, pid, key_id, scopes, env_only
    ):
        raise ApiError(404, "no such active key in that project")
    return RedirectResponse("/settings", status_code=303)
