"""The settings page: projects, their API keys and members (each seen by whoever may manage
it), one's own account; and the key forms."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ...settings import resolve
from ...store import ROLES, Store
from ..auth import SCOPES, check_scopes, create_key, names_problem
from ..errors import ApiError
from ..retention import NEXT_PURGE, retention_of
from .auth import MIN_PASSWORD, User, check_csrf, now_us, require_admin, user_of
from .render import render_page

__all__ = [
    "create_key_form",
    "key_scopes_form",
    "managed_project",
    "path_id",
    "retention_form",
    "revoke_key_form",
    "revoke_link_form",
    "settings_page",
]


def _iso_us(value: int | str | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) / 1_000_000, timezone.utc).isoformat()


def _settings_data(store: Store, user: User, default_days: int) -> dict[str, Any]:
    """What this user may see of the settings: their projects with their role, and (where they
    manage) keys and members; every user for the owner."""
    projects = []
    next_purge = store.get_meta(NEXT_PURGE)
    for project in store.list_projects():
        if not (user.is_owner or project["name"] in user.roles):
            continue
        manages = user.may_admin(project["name"])
        project["role"] = "admin" if user.is_owner else user.role(project["name"])
        project["keys"] = store.list_keys(project["id"]) if manages else []
        project["members"] = store.list_users(project["id"]) if manages else []
        project["links"] = store.list_shares(project["id"]) if manages else []
        if manages:
            own = store.retention_days(project["id"])
            project["retention"] = {
                "own": own,
                "days": retention_of(store, project["id"], default_days),
                "oldest": _iso_us(store.oldest_event_us(project["id"])),
            }
        projects.append(project)
    return {
        "me": {"id": user.id, "name": user.name, "is_owner": user.is_owner},
        "projects": projects,
        "users": store.list_users() if user.is_owner else [],
        "scopes": SCOPES,
        "roles": ROLES,
        "retention": {
            "default_days": default_days,
            "keep_stats": resolve("retention_keep_stats"),
            "next_purge": _iso_us(next_purge),
            # Past by more than a minute: no server purges (all stopped, or with their
            # retention_interval at 0), and the time shown is the last one planned.
            "overdue": next_purge is not None and int(next_purge) < now_us() - _OVERDUE_US,
        },
    }


_OVERDUE_US = 60_000_000


async def settings_page(
    request: Request,
    new_key: str | None = None,
    new_invite: str | None = None,
    notice: str | None = None,
) -> Response:
    user = user_of(request)
    data = await run_in_threadpool(
        _settings_data, request.app.state.store, user, request.app.state.retention_days
    )
    projects = data["projects"]
    current = request.query_params.get("project") or (projects[0]["name"] if projects else "")
    # A key or an invitation link made by this request, in the answer's data too: a client
    # asking for JSON had been given neither, and the key worked with nobody holding it.
    secrets = {k: v for k, v in (("new_key", new_key), ("new_invite", new_invite)) if v}
    page = await render_page(
        request,
        "settings.html",
        {**data, **secrets},
        new_key=new_key,
        new_invite=new_invite,
        notice=notice,
        project_name=current,
        may_create_keys=user.is_owner or any(p["role"] == "admin" for p in projects),
        min_password=MIN_PASSWORD,
        title="Settings",
    )
    if secrets:  # shown once: not kept by a browser's or a proxy's cache
        page.headers["cache-control"] = "no-store"
    return page


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
    problem = names_problem(project, environment)
    if problem:
        raise ApiError(400, problem)
    # A new project (the key makes it) is the owner's to create; a project admin's, a key.
    require_admin(request, project)
    scopes, env_only = _scopes_of(form, default=("ingest",))  # as `llmtap keys create`
    key = await run_in_threadpool(
        create_key, request.app.state.store, project, environment, scopes, env_only
    )
    # Shown once, on this response only: the store keeps its hash.
    return await settings_page(request, new_key=key)


async def revoke_key_form(request: Request) -> Response:
    form = await check_csrf(request)
    store = request.app.state.store
    pid = await managed_project(request, form)
    key_id = path_id(request, "key_id")
    if not await run_in_threadpool(store.revoke_key, pid, key_id):
        raise ApiError(404, "no such active key in that project")
    request.app.state.keys.changed()  # refused from now on here, within a second elsewhere
    return RedirectResponse("/settings", status_code=303)


async def revoke_link_form(request: Request) -> Response:
    """Revoke a published board's link: it answers 404 from now on."""
    form = await check_csrf(request)
    pid = await managed_project(request, form)
    share_id = request.path_params["share_id"]
    if not await run_in_threadpool(request.app.state.store.revoke_share, pid, share_id):
        raise ApiError(404, "no such live link in that project")
    return RedirectResponse("/settings", status_code=303)


async def key_scopes_form(request: Request) -> Response:
    """Change what a key may do (at once on this server, within a second on the others)."""
    form = await check_csrf(request)
    store = request.app.state.store
    pid = await managed_project(request, form)
    scopes, env_only = _scopes_of(form)
    key_id = path_id(request, "key_id")
    if not await run_in_threadpool(store.set_key_scopes, pid, key_id, scopes, env_only):
        raise ApiError(404, "no such active key in that project")
    request.app.state.keys.changed()
    return RedirectResponse("/settings", status_code=303)


async def retention_form(request: Request) -> Response:
    """A project's own retention in days (0: forever), or empty: the server's setting."""
    form = await check_csrf(request)
    pid = await managed_project(request, form)
    raw = str(form.get("days") or "").strip()
    days: int | None = None
    if raw:
        if not re.fullmatch(r"[0-9]{1,6}", raw):  # not isdigit(): it takes other scripts' digits
            raise ApiError(400, "retention: a whole number of days (0: forever), at most 999999")
        days = int(raw)
    await run_in_threadpool(request.app.state.store.set_retention_days, pid, days)
    return RedirectResponse("/settings", status_code=303)


def path_id(request: Request, name: str) -> int:
    """A numeric id from the path; one past SQLite's integers is no row's (404), not a 500."""
    value = int(request.path_params[name])
    if value > 2**63 - 1:
        raise ApiError(404, f"no such {name.removesuffix('_id')}")
    return value


async def managed_project(request: Request, form: Any) -> int:
    """The id of the project the form names, once the user may manage it (else 403) and it
    exists (else 404)."""
    project = str(form.get("project") or "")
    require_admin(request, project)
    pid = await run_in_threadpool(request.app.state.store.project_id, project)
    if pid is None:
        raise ApiError(404, f"no project {project!r}")
    return pid
