"""The dashboard: server-rendered pages over the same queries as the JSON API, for logged-in
users, each page limited to the projects its user has a role in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from . import admin, analysis, pages, users
from .auth import AdminAuth, ensure_admin_token, logged_in_user, login_redirect
from .render import HERE, wants_json

__all__ = ["AdminAuth", "dashboard_routes", "ensure_admin_token"]

Handler = Callable[[Request], Awaitable[Response]]


def _logged_in(handler: Handler) -> Handler:
    @wraps(handler)
    async def guarded(request: Request) -> Response:
        if await logged_in_user(request) is None:
            if wants_json(request) or request.method != "GET":
                return JSONResponse(
                    {"ok": False, "error": "log in first", "errors": [], "status": 401},
                    status_code=401,
                )
            return login_redirect(request)
        return await handler(request)

    return guarded


def dashboard_routes() -> list[BaseRoute]:
    return [
        Route("/login", users.login_form, methods=["GET"]),
        Route("/login", users.login_submit, methods=["POST"]),
        Route("/logout", _logged_in(users.logout), methods=["POST"]),
        Route("/invite/{token}", users.invite_form, methods=["GET"]),
        Route("/invite/{token}", users.invite_submit, methods=["POST"]),
        Route("/", _logged_in(analysis.overview_page)),
        Route("/groups", _logged_in(analysis.groups_page)),
        Route("/templates", _logged_in(analysis.templates_page)),
        Route("/templates/{name:path}", _logged_in(analysis.template_page)),
        Route("/events", _logged_in(pages.events_page)),
        Route("/events/{event_id}", _logged_in(pages.event_page)),
        Route("/chats/{value:path}", _logged_in(pages.chat_page)),
        Route("/chains/{value:path}", _logged_in(pages.chain_page)),
        Route("/feedback", _logged_in(pages.feedback_page)),
        Route("/settings", _logged_in(admin.settings_page), methods=["GET"]),
        Route("/settings/keys", _logged_in(admin.create_key_form), methods=["POST"]),
        Route(
            "/settings/keys/{key_id:int}/scopes",
            _logged_in(admin.key_scopes_form),
            methods=["POST"],
        ),
        Route(
            "/settings/keys/{key_id:int}/revoke",
            _logged_in(admin.revoke_key_form),
            methods=["POST"],
        ),
        Route("/settings/password", _logged_in(users.change_password), methods=["POST"]),
        Route("/settings/invitations", _logged_in(users.create_invitation), methods=["POST"]),
        Route("/settings/members/{user_id:int}/role", _logged_in(users.set_role), methods=["POST"]),
        Route(
            "/settings/members/{user_id:int}/remove",
            _logged_in(users.remove_member),
            methods=["POST"],
        ),
        Route(
            "/settings/users/{user_id:int}/delete", _logged_in(users.delete_user), methods=["POST"]
        ),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
