"""The dashboard: server-rendered pages over the same queries as the JSON API, behind the
admin token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from . import admin, analysis, pages
from .auth import AdminAuth, ensure_admin_token, login_redirect
from .render import HERE, wants_json

__all__ = ["AdminAuth", "dashboard_routes", "ensure_admin_token"]

Handler = Callable[[Request], Awaitable[Response]]


def _admin_only(handler: Handler) -> Handler:
    @wraps(handler)
    async def guarded(request: Request) -> Response:
        if not request.app.state.admin.logged_in(request):
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
        Route("/login", admin.login_form, methods=["GET"]),
        Route("/login", admin.login_submit, methods=["POST"]),
        Route("/logout", _admin_only(admin.logout), methods=["POST"]),
        Route("/", _admin_only(analysis.overview_page)),
        Route("/groups", _admin_only(analysis.groups_page)),
        Route("/templates", _admin_only(analysis.templates_page)),
        Route("/templates/{name:text}", _admin_only(analysis.template_page)),
        Route("/events", _admin_only(pages.events_page)),
        Route("/events/{event_id:text}", _admin_only(pages.event_page)),
        Route("/chats/{value:text}", _admin_only(pages.chat_page)),
        Route("/chains/{value:text}", _admin_only(pages.chain_page)),
        Route("/feedback", _admin_only(pages.feedback_page)),
        Route("/settings", _admin_only(admin.settings_page), methods=["GET"]),
        Route("/settings/keys", _admin_only(admin.create_key_form), methods=["POST"]),
        Route(
            "/settings/keys/{key_id:int}/revoke",
            _admin_only(admin.revoke_key_form),
            methods=["POST"],
        ),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
