"""Login and logout (the first user made with the admin token), invitations by one-time link,
and the settings forms that manage people: roles, removal, one's own password."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ...store import ROLES, NameTaken
from ..errors import ApiError, error_response
from .admin import managed_project, path_id, settings_page
from .auth import (
    MAX_NAME,
    SESSION_COOKIE,
    account_problem,
    check_csrf,
    client_of,
    hash_password,
    logged_in_user,
    now_us,
    set_session_cookie,
    sha256_hex,
    user_of,
)
from .render import render, wants_json

__all__ = [
    "change_password",
    "create_invitation",
    "delete_user",
    "invite_form",
    "invite_submit",
    "login_form",
    "login_submit",
    "logout",
    "remove_member",
    "set_role",
]

INVITE_SECONDS = 7 * 24 * 3600


def _safe_next(target: object) -> str:
    # Only a path on this server: never an open redirect to another site.
    if isinstance(target, str) and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


def _login_page(
    request: Request,
    target: str,
    bootstrap: bool,
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    if error and wants_json(request):
        response: Response = error_response(status, error)
        response.headers.update(headers or {})
        return response
    response = render(
        request,
        "login.html",
        {"bootstrap": bootstrap, **({"error": error} if error else {})},
        next=target,
        error=error,
        title="Log in",
    )
    response.status_code = status
    response.headers.update(headers or {})
    return response


async def login_form(request: Request) -> Response:
    bootstrap = await run_in_threadpool(request.app.state.admin.needs_bootstrap)
    return _login_page(request, _safe_next(request.query_params.get("next")), bootstrap)


async def login_submit(request: Request) -> Response:
    form = await check_csrf(request)
    auth = request.app.state.admin
    target = _safe_next(form.get("next"))
    client = client_of(request)
    name = str(form.get("name") or "").strip()
    password = str(form.get("password") or "")
    bootstrap = await run_in_threadpool(auth.needs_bootstrap)
    # While no user exists, guesses at the admin token are counted under one name.
    counted_as = "(admin token)" if bootstrap else name
    wait = await run_in_threadpool(auth.attempt, client, counted_as)
    if wait:
        minutes = -(-wait // 60)
        message = f"Too many failed logins: try again in {minutes} minute(s)."
        return _login_page(request, target, bootstrap, message, 429, {"retry-after": str(wait)})
    if bootstrap:
        if not auth.check_token(str(form.get("token") or "").strip()):
            await run_in_threadpool(auth.failed, client, counted_as, "wrong admin token")
            return _login_page(request, target, True, "That is not the admin token.", 401)
        await run_in_threadpool(auth.store.clear_failures, counted_as)
        problem = account_problem(name, password)
        if problem:
            return _login_page(request, target, True, problem, 400)
        password_hash = await run_in_threadpool(hash_password, password)
        user_id = await run_in_threadpool(
            auth.store.create_user, name, password_hash, True, None, None, True
        )
        if user_id is None:  # another browser made the first user meanwhile
            return _login_page(request, target, False, "The first user exists now: log in.", 409)
    else:
        found = await run_in_threadpool(auth.check_password, name, password)
        if found is None:
            await run_in_threadpool(auth.failed, client, name, "wrong name or password")
            return _login_page(request, target, False, "Wrong name or password.", 401)
        user_id = found["id"]
    session_id = await run_in_threadpool(auth.start_session, user_id, name)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, session_id)
    return response


async def logout(request: Request) -> Response:
    await check_csrf(request)
    await run_in_threadpool(request.app.state.admin.end_session, user_of(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# -- invitations -------------------------------------------------------------------------


def _token_hash(request: Request) -> str:
    token = request.path_params["token"]
    return sha256_hex(token) if len(token) <= 100 else ""


async def _invite_page(
    request: Request, error: str | None = None, status: int = 200, name: str = ""
) -> Response:
    store = request.app.state.store
    found = await run_in_threadpool(store.invitation, _token_hash(request), now_us())
    if found is None:
        error, status = "This invitation link is used, expired or unknown.", 404
    if error and wants_json(request):
        return error_response(status, error)
    response = render(
        request,
        "invite.html",
        {"invitation": found, **({"error": error} if error else {})},
        error=error,
        name=name or (found or {}).get("email") or "",
        title="Invitation",
    )
    response.status_code = status
    return response


async def invite_form(request: Request) -> Response:
    await logged_in_user(request)  # logged in, one joins as oneself
    return await _invite_page(request)


async def invite_submit(request: Request) -> Response:
    """Accept an invitation: as the logged-in user, or as a new one (name and password)."""
    user = await logged_in_user(request)
    form = await check_csrf(request)
    auth, store = request.app.state.admin, request.app.state.store
    token_hash, now = _token_hash(request), now_us()
    if user is not None:
        joined = await run_in_threadpool(store.accept_invitation, token_hash, now, user.id)
        name = user.name
    else:
        name = str(form.get("name") or "").strip()
        password = str(form.get("password") or "")
        problem = account_problem(name, password)
        if problem:
            return await _invite_page(request, problem, 400, name)
        if await run_in_threadpool(store.invitation, token_hash, now) is None:
            return await _invite_page(request)  # no hashing for a link that opens nothing
        password_hash = await run_in_threadpool(hash_password, password)
        try:
            joined = await run_in_threadpool(
                store.accept_invitation, token_hash, now, None, (name, password_hash)
            )
        except NameTaken:
            return await _invite_page(request, "That name is taken: pick another.", 409, name)
    if joined is None:
        return await _invite_page(request)  # used or expired meanwhile: the page says so
    response = RedirectResponse("/", status_code=303)
    if user is None:
        session_id = await run_in_threadpool(auth.start_session, joined, name)
        set_session_cookie(request, response, session_id)
    return response


async def create_invitation(request: Request) -> Response:
    """A one-time link that joins its opener to a project with a role; shown once."""
    form = await check_csrf(request)
    pid = await managed_project(request, form)
    role = _role(form)
    email = str(form.get("email") or "").strip()[:MAX_NAME] or None
    store = request.app.state.store
    token = secrets.token_urlsafe(32)
    await run_in_threadpool(
        store.create_invitation,
        sha256_hex(token),
        pid,
        role,
        email,
        user_of(request).id,
        now_us() + INVITE_SECONDS * 1_000_000,
    )
    link = f"{str(request.base_url).rstrip('/')}/invite/{token}"
    return await settings_page(request, new_invite=link)


# -- members and users -------------------------------------------------------------------


def _role(form: Any) -> str:
    role = form.get("role")
    if role not in ROLES:
        raise ApiError(400, f"role: one of {', '.join(ROLES)}")
    return str(role)


async def _member_form(request: Request) -> tuple[Any, int, int]:
    """The form, its project's id (once the user may manage it) and the member's id."""
    form = await check_csrf(request)
    return form, await managed_project(request, form), path_id(request, "user_id")


async def set_role(request: Request) -> Response:
    form, pid, member = await _member_form(request)
    role = _role(form)
    if not await run_in_threadpool(request.app.state.store.set_role, member, pid, role):
        raise ApiError(404, "no such member of that project")
    return RedirectResponse("/settings", status_code=303)


async def remove_member(request: Request) -> Response:
    """Take a member out of a project: their next request no longer sees it (roles are read
    on every request)."""
    _, pid, member = await _member_form(request)
    if not await run_in_threadpool(request.app.state.store.remove_member, member, pid):
        raise ApiError(404, "no such member of that project")
    return RedirectResponse("/settings", status_code=303)


async def delete_user(request: Request) -> Response:
    """Remove a user (the owner only): their sessions end at once."""
    await check_csrf(request)
    user = user_of(request)
    if not user.is_owner:
        raise ApiError(403, "removing users needs the owner")
    target = path_id(request, "user_id")
    if target == user.id:
        raise ApiError(400, "the owner cannot remove themselves")
    if not await run_in_threadpool(request.app.state.store.delete_user, target):
        raise ApiError(404, "no such user")
    return RedirectResponse("/settings", status_code=303)


async def change_password(request: Request) -> Response:
    """A new password for oneself; one's other sessions end."""
    form = await check_csrf(request)
    user = user_of(request)
    auth, client = request.app.state.admin, client_of(request)
    current, new = str(form.get("current") or ""), str(form.get("password") or "")
    if await run_in_threadpool(auth.throttled, client, user.name):
        raise ApiError(429, "too many failed attempts: try again later")
    if await run_in_threadpool(auth.check_password, user.name, current) is None:
        await run_in_threadpool(auth.failed, client, user.name, "wrong current password")
        raise ApiError(400, "that is not your current password")
    problem = account_problem(user.name, new)
    if problem:
        raise ApiError(400, problem)
    new_hash = await run_in_threadpool(hash_password, new)
    await run_in_threadpool(auth.store.set_password, user.id, new_hash, now_us(), user.session_hash)
    return await settings_page(request, notice="Password changed; your other sessions ended.")
