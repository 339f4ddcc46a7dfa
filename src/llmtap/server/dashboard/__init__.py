"""The dashboard: server-rendered pages over the same queries as the JSON API, for logged-in
users, each page limited to the projects its user has a role in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import ApiError
from . import admin, alerts, analysis, boards, forget, launch, pages, tests_pages, users
from .auth import AdminAuth, ensure_admin_token, logged_in_user, login_redirect
from .render import HERE, error_page, wants_json

__all__ = ["AdminAuth", "dashboard_routes", "ensure_admin_token", "error_page"]

Handler = Callable[[Request], Awaitable[Response]]


def _logged_in(handler: Handler) -> Handler:
    @wraps(handler)
    async def guarded(request: Request) -> Response:
        if await logged_in_user(request) is None:
            if wants_json(request) or request.method != "GET":
                raise ApiError(401, "log in first")  # rendered for whoever asked
            return login_redirect(request)
        return await handler(request)

    return guarded


def _form(path: str, handler: Handler) -> Route:
    """A form's POST, for logged-in users (the handler checks CSRF and the user's role)."""
    return Route(path, _logged_in(handler), methods=["POST"])


def dashboard_routes() -> list[BaseRoute]:
    return [
        Route("/login", users.login_form, methods=["GET"]),
        Route("/login", users.login_submit, methods=["POST"]),
        _form("/logout", users.logout),
        Route("/invite/{token}", users.invite_form, methods=["GET"]),
        Route("/invite/{token}", users.invite_submit, methods=["POST"]),
        Route("/", _logged_in(analysis.overview_page)),
        Route("/groups", _logged_in(analysis.groups_page)),
        Route("/templates", _logged_in(analysis.templates_page)),
        Route("/templates/{name:text}", _logged_in(analysis.template_page)),
        Route("/events", _logged_in(pages.events_page)),
        _form("/events/delete", forget.delete_form),
        _form("/events/{event_id:text}/replay", launch.replay_form),
        Route("/events/{event_id:text}", _logged_in(pages.event_page)),
        Route("/chats/{value:text}", _logged_in(pages.chat_page)),
        Route("/chains/{value:text}", _logged_in(pages.chain_page)),
        Route("/feedback", _logged_in(pages.feedback_page)),
        Route("/alerts", _logged_in(alerts.alerts_page), methods=["GET"]),
        _form("/alerts/new", alerts.alert_form),
        _form("/alerts/test", alerts.alert_test_form),
        _form("/alerts/delete", alerts.alert_delete_form),
        Route("/boards", _logged_in(boards.boards_page)),
        _form("/boards/new", boards.new_board_form),
        Route("/boards/{board_id}", _logged_in(boards.board_page)),
        _form("/boards/{board_id}", boards.board_form),
        # Published boards: no session, the token is the only key.
        Route("/b/{token}", boards.shared_board_page),
        Route("/b/{token}/data", boards.shared_board_data),
        Route("/b/{token}/events", boards.shared_board_events),
        Route("/testsets", _logged_in(tests_pages.testsets_page), methods=["GET"]),
        _form("/testsets", tests_pages.new_testset_form),
        _form("/testsets/{testset_id:id}/delete", tests_pages.delete_testset_form),
        _form("/testsets/{testset_id:id}/run", launch.run_form),
        _form("/testsets/{testset_id:id}/cases/{case_id:id}", tests_pages.case_form),
        Route("/testsets/{testset_id:id}", _logged_in(tests_pages.testset_page)),
        Route("/runs/{run_id}", _logged_in(tests_pages.run_page)),
        Route("/settings", _logged_in(admin.settings_page), methods=["GET"]),
        _form("/settings/keys", admin.create_key_form),
        _form("/settings/keys/{key_id:id}/scopes", admin.key_scopes_form),
        _form("/settings/keys/{key_id:id}/revoke", admin.revoke_key_form),
        _form("/settings/password", users.change_password),
        _form("/settings/invitations", users.create_invitation),
        _form("/settings/members/{user_id:id}/role", users.set_role),
        _form("/settings/members/{user_id:id}/remove", users.remove_member),
        _form("/settings/users/{user_id:id}/delete", users.delete_user),
        _form("/settings/links/{share_id}/revoke", admin.revoke_link_form),
        _form("/settings/retention", admin.retention_form),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
