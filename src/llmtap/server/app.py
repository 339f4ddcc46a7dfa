"""The llmtap server: an ASGI app (Starlette) over a store: the JSON API under ``/api/v1``,
the dashboard everywhere else."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._version import __version__
from ..settings import resolve
from ..store import Store
from .alerts.api import alert_routes
from .alerts.evaluate import Evaluator
from .alerts.notify import Notifier
from .auth import KeyCache
from .boards import board_routes
from .dashboard import AdminAuth, dashboard_routes, ensure_admin_token, error_page
from .dashboard.launch import Provider
from .delete import delete_event, delete_events
from .errors import API_PREFIXES, ApiError, Errors
from .ingest import receive_events, receive_feedback
from .openapi import serve_openapi
from .otlp import receive_logs, receive_traces
from .prices import Pricer, delete_price, list_prices, set_price
from .query import get_event, list_events
from .redaction import Redaction
from .retention import Purger
from .stats import get_stats, list_templates
from .testsets import testset_routes

__all__ = ["app_from_environment", "create_app"]

# Pages run no script but our own files, load nothing from elsewhere, and cannot be framed: a
# prompt that smuggles markup past the escaping still cannot run. Not even images: a remote
# image in a prompt would tell its sender when, and from where, an admin read it; the event
# page links to it instead (opened on a click, in a new tab, without a referrer).
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class FormLimit:
    """Dashboard requests (forms: log in, keys) may carry ``max_bytes`` of body at most: a
    413 before anything is read when the declared length is over, else as soon as the body
    read so far is. Starlette's form parser would buffer whatever comes, and the login form
    is open to anyone. The API has its own, larger limit (``max_body_bytes``)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(API_PREFIXES):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        too_large = f"a dashboard form is at most {limit} bytes"
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            raise ApiError(413, too_large)
        size = 0

        async def capped() -> Message:
            nonlocal size
            message = await receive()
            size += len(message.get("body", b""))
            if size > limit:
                raise ApiError(413, too_large)
            return message

        await self.app(scope, capped, send)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "version": __version__})


def create_app(
    store: Store,
    *,
    max_body_bytes: int | None = None,
    max_field_bytes: int | None = None,
    max_form_bytes: int | None = None,
    redact_fields: dict[str, Any] | None = None,
    admin_token: str | None = None,
    alert_interval: float | None = None,
    retention_days: int | None = None,
) -> Starlette:
    """The server over ``store``. ``admin_token`` (else ``LLMTAP_ADMIN_TOKEN``) guards the
    dashboard; with neither and none stored, one is made: call ``ensure_admin_token`` first
    to learn it."""
    ensure_admin_token(store, resolve("admin_token", admin_token))
    errors = Errors(error_page)
    notifier = Notifier(store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The alert evaluator: a thread of its own (it reads stats, it never runs on the
        # event loop); it evaluates only while this process holds the database's lease.
        evaluator = Evaluator(store, alert_interval, notifier)
        evaluator.start()
        # The retention purge likewise: its own thread, while it holds its lease.
        purger = Purger(store, retention_days)
        purger.start()
        try:
            yield
        finally:
            await run_in_threadpool(purger.close)
            await run_in_threadpool(evaluator.close)

    app = Starlette(
        lifespan=lifespan,
        routes=[
            Route("/healthz", healthz),
            Route("/api/v1/events", receive_events, methods=["POST"]),
            Route("/api/v1/events", list_events, methods=["GET"]),
            Route("/api/v1/events", delete_events, methods=["DELETE"]),
            Route("/api/v1/events/{event_id:text}", get_event, methods=["GET"]),
            Route("/api/v1/events/{event_id:text}", delete_event, methods=["DELETE"]),
            Route("/api/v1/feedback", receive_feedback, methods=["POST"]),
            # OTLP/HTTP's standard path, and one under the API for proxies that route /api.
            Route("/v1/traces", receive_traces, methods=["POST"]),
            Route("/api/v1/otlp/v1/traces", receive_traces, methods=["POST"]),
            Route("/v1/logs", receive_logs, methods=["POST"]),
            Route("/api/v1/otlp/v1/logs", receive_logs, methods=["POST"]),
            Route("/api/v1/openapi.json", serve_openapi),
            Route("/api/v1/stats", get_stats, methods=["GET"]),
            Route("/api/v1/templates", list_templates, methods=["GET"]),
            Route("/api/v1/prices", list_prices, methods=["GET"]),
            Route("/api/v1/prices", set_price, methods=["POST"]),
            Route("/api/v1/prices", delete_price, methods=["DELETE"]),
            *alert_routes(),
            *board_routes(),
            *testset_routes(),
            *dashboard_routes(),
        ],
        exception_handlers=errors.handlers,
    )
    # Outermost last: security headers go on every answer, error pages included.
    app.add_middleware(FormLimit, max_bytes=resolve("max_form_bytes", max_form_bytes))
    app.add_middleware(errors.middleware)
    app.add_middleware(SecurityHeaders)
    app.state.store = store
    app.state.keys = KeyCache(store)
    app.state.pricer = Pricer(store)
    app.state.admin = AdminAuth(store)
    app.state.max_body_bytes = resolve("max_body_bytes", max_body_bytes)
    app.state.max_field_bytes = resolve("max_field_bytes", max_field_bytes)
    app.state.redaction = Redaction(resolve("redact_fields", redact_fields))
    app.state.otlp_context = resolve("otlp_context_spans", None)
    app.state.notifier = notifier
    app.state.retention_days = resolve("retention_days", retention_days)
    # The model provider the dashboard's replays and test runs use; its key is never stored.
    app.state.provider = Provider.from_environment()
    # Per (project, test set): why the last run started from this process's dashboard could
    # not run (its set's page says so; a run that ran has a status of its own).
    app.state.run_failures = {}
    return app


def app_from_environment() -> Starlette:
    """The app on the store ``LLMTAP_DB`` (and ``LLMTAP_READ_DB``) names: what each worker
    process of ``llmtap serve --workers N`` builds for itself (uvicorn imports it by name)."""
    from ..store import open_store
    from ._gc import tune_gc

    app = create_app(open_store(resolve("db"), resolve("read_db")))
    tune_gc()
    return app
