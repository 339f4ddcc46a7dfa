"""The one error shape every endpoint answers with:
``{"ok": false, "error": "...", "errors": [...], "status": N}``."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

__all__ = ["ApiError", "error_response", "exception_handlers"]

log = logging.getLogger("llmtap.server")


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []


def error_response(status: int, message: str, errors: list[Any] | None = None) -> JSONResponse:
    body = {"ok": False, "error": message, "errors": errors or [], "status": status}
    return JSONResponse(body, status_code=status)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    messages = {
        404: f"no such endpoint: {request.method} {request.url.path}",
        405: f"method {request.method} not allowed on {request.url.path}",
    }
    return error_response(exc.status_code, messages.get(exc.status_code, str(exc.detail)))


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    # The client hung up before its body was read (a process exiting mid-send, a timeout):
    # nothing was stored, nobody reads this answer, and the client sends again (the SDK has
    # the batch spooled). Not a server error.
    log.info("client went away during %s %s", request.method, request.url.path)
    return error_response(400, "the client disconnected before its request body was read")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal server error; see the server's log")


exception_handlers = {
    ApiError: _api_error,
    HTTPException: _http_error,
    ClientDisconnect: _client_gone,
    Exception: _unexpected,
}
