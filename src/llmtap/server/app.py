"""The llmtap server: an ASGI app (Starlette) over a store."""

from __future__ import annotations

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
from .prices import Pricer, delete_price, list_prices, set_price
from .query import get_event, list_events
from .stats import get_stats, list_templates

__all__ = ["create_app"]


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "version": __version__})


def create_app(store: Store, *, max_body_bytes: int | None = None) -> Starlette:
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/api/v1/events", receive_events, methods=["POST"]),
            Route("/api/v1/events", list_events, methods=["GET"]),
            Route("/api/v1/events/{event_id}", get_event, methods=["GET"]),
            Route("/api/v1/feedback", receive_feedback, methods=["POST"]),
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
    return app
