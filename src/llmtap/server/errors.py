"""Errors, rendered for whoever asked (as datasette's ``handle_exception`` does).

An API client, ``?format=json``, and anything that does not accept HTML get the one JSON error
shape ``{"ok": false, "error": "...", "errors": [...], "status": N}``; a browser on a dashboard
page gets an HTML page saying the same. Handlers raise :class:`ApiError`; anything else is a
bug, answered 500 and logged once, with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..store import StoreUnavailable

__all__ = ["ApiError", "Errors", "error_response", "wants_html"]

log = logging.getLogger("llmtap.server")

# Renders an error as an HTML page: (request, status, message) -> response.
ErrorPage = Callable[[Request, int, str], Response]
# Paths of the API (llmtap's own and OTLP's): JSON answers only, their own body limits.
API_PREFIXES = ("/api/", "/v1/")
_JSON_ONLY = (*API_PREFIXES, "/healthz")


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []


def error_response(status: int, message: str, errors: list[Any] | None = None) -> JSONResponse:
    body = {"ok": False, "error": message, "errors": errors or [], "status": status}
    return JSONResponse(body, status_code=status)


# OTLP/HTTP's endpoints: their errors are google.rpc.Status messages, as its spec asks.
_OTLP_PATHS = ("/v1/traces", "/v1/logs", "/api/v1/otlp/")
_PROTOBUF = "application/x-protobuf"
# The gRPC code a Status carries for an HTTP status (the spec lets clients only log it).
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 413: 8, 415: 3, 429: 8, 503: 14}


def otlp_error(
    request: Request, status: int, message: str, errors: list[Any] | None = None
) -> Response:
    """An error of an OTLP endpoint: a ``google.rpc.Status`` in the request's encoding. In
    JSON, llmtap's own error fields beside its ``code`` and ``message``, so either reader
    finds what it looks for."""
    from google.rpc.status_pb2 import Status

    code = _GRPC_CODES.get(status, 2)  # UNKNOWN
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == _PROTOBUF:
        body = Status(code=code, message=message).SerializeToString()
        return Response(body, status_code=status, media_type=_PROTOBUF)
    shape = {"ok": False, "error": message, "errors": errors or [], "status": status}
    return JSONResponse({"code": code, "message": message, **shape}, status_code=status)


def wants_html(request: Request) -> bool:
    """A browser asking for a dashboard page (not the API, not ``?format=json``)."""
    if request.url.path.startswith(_JSON_ONLY) or request.query_params.get("format") == "json":
        return False
    return "text/html" in request.headers.get("accept", "")


class Errors:
    """The server's error answers: Starlette's exception handlers (:attr:`handlers`) and the
    outermost guard against unexpected exceptions (:meth:`middleware`), both rendering through
    ``page`` for a browser."""

    def __init__(self, page: ErrorPage | None = None) -> None:
        self.page = page

    def respond(
        self, request: Request, status: int, message: str, errors: list[Any] | None = None
    ) -> Response:
        if request.url.path.startswith(_OTLP_PATHS):
            return otlp_error(request, status, message, errors)
        if self.page is not None and wants_html(request):
            try:
                return self.page(request, status, message)
            except Exception:  # a broken page must not hide the error it reports
                log.exception("cannot render the error page for %s", request.url.path)
        return error_response(status, message, errors)

    @property
    def handlers(self) -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
        async def api_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, ApiError)
            return self.respond(request, exc.status, exc.message, exc.errors)

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            messages = {
                404: f"no such endpoint: {request.method} {request.url.path}",
                405: f"method {request.method} not allowed on {request.url.path}",
            }
            status = exc.status_code
            return self.respond(request, status, messages.get(status, str(exc.detail)))

        async def client_gone(request: Request, exc: Exception) -> Response:
            # The client hung up before its body was read (a process exiting mid-send, a
            # timeout): nothing was stored, nobody reads this answer, and the client sends
            # again (the SDK has the batch spooled). Not a server error.
            log.info("client went away during %s %s", request.method, request.url.path)
            return error_response(400, "the client disconnected before its request body was read")

        async def unavailable(request: Request, exc: Exception) -> Response:
            # The database is down or restarting (PostgreSQL): nothing was stored, and a
            # client may send again (the SDK keeps the batch spooled and retries on 503).
            log.warning("%s %s: %s", request.method, request.url.path, exc)
            response = self.respond(request, 503, str(exc))
            response.headers["retry-after"] = "1"
            return response

        return {
            ApiError: api_error,
            HTTPException: http_error,
            ClientDisconnect: client_gone,
            StoreUnavailable: unavailable,
        }

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """``app``, with an :class:`ApiError` a middleware raises answered, and any other
        exception it lets out answered 500 and logged once. Starlette's
        own handler for ``Exception`` answers and then re-raises (for the server to log), so
        every 500 was in the log twice: ours, then uvicorn's."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = False

            async def watch(message: Message) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send(message)

            try:
                await app(scope, receive, watch)
            except Exception as exc:
                if started:  # too late to answer: let the server log it and drop the line
                    raise
                request = Request(scope)
                if isinstance(exc, ApiError):  # from a middleware, outside Starlette's handlers
                    response = self.respond(request, exc.status, exc.message, exc.errors)
                else:
                    log.exception("unexpected error on %s %s", request.method, request.url.path)
                    message = "internal server error; see the server's log"
                    response = self.respond(request, 500, message)
                await response(scope, receive, send)

        return guarded
