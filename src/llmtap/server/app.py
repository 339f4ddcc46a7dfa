"""The llmtap server: an ASGI app (Starlette) over a store."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .._version import __version__
from ..settings import resolve
from ..store import Store
from .auth import KeyCache
from .errors import exception_handlers
from .ingest import receive_events, receive_feedback
from .openapi import serve_openapi
from .prices import Pricer, delete_price, list_prices, set_price
from .query import get_event, list_events
from .redaction import Redaction
from .stats import get_stats, list_templates

__all__ = ["app_from_environment", "create_app"]


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "version": __version__})


def create_app(
    store: Store,
    *,
    max_body_bytes: int | None = None,
    max_field_bytes: int | None = None,
    redact_fields: dict[str, Any] | None = None,
) -> Starlette:
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/api/v1/events", receive_events, methods=["POST"]),
            Route("/api/v1/events", list_events, methods=["GET"]),
            Route("/api/v1/events/{event_id}", get_event, methods=["GET"]),
            Route("/api/v1/feedback", receive_feedback, methods=["POST"]),
            Route("/api/v1/openapi.json", serve_openapi),
            Route("/api/v1/stats", get_stats, methods=["GET"]),
            Route("/api/v1/templates", list_templates, methods=["GET"]),
            Route("/api/v1/prices", list_prices, methods=["GET"]),
            Route("/api/v1/prices", set_price, methods=["POST"]),
            Route("/api/v1/prices", delete_price, methods=["DELETE"]),
        ],
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
    )
    app.state.store = store
    app.state.keys = KeyCache(store)
    app.state.pricer = Pricer(store)
    app.state.max_body_bytes = resolve("max_body_bytes", max_body_bytes)
    app.state.max_field_bytes = resolve("max_field_bytes", max_field_bytes)
    app.state.redaction = Redaction(resolve("redact_fields", redact_fields))
    return app


def app_from_environment() -> Starlette:
    """The app on the store ``LLMTAP_DB`` names: what each worker process of ``llmtap serve
    --workers N`` builds for itself (uvicorn imports it by name)."""
    from ..store import open_store

    return create_app(open_store(resolve("db")))
