"""The HTTP protocol ``llmtap serve`` speaks: uvicorn's (httptools), with the limits it lacks
for clients that have not said who they are yet.

uvicorn bounds concurrent requests (``limit_concurrency``: 503 past it) and idle keep-alive
connections, but not how long a client may take to send a request, nor how large its request
line and headers may be (llhttp keeps reading a header as long as it comes). So a client that
sends a byte a second, or headers without end, would hold a connection, and its memory,
forever. Here:

- a request's line and headers must fit in ``max_header_bytes`` (431 past it);
- they must arrive within ``header_timeout`` seconds of the connection or of their first byte;
- the body within ``body_timeout`` seconds of the headers (408, then the connection closes).

An answer sent from here never reached the app: it is the error shape, written directly.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from ..settings import resolve

__all__ = ["LimitedHttpProtocol", "Limits", "uvicorn_limits"]


def uvicorn_limits() -> dict[str, Any]:
    """uvicorn's options that bound what clients may cost, from the settings."""
    limits = Limits(
        max_header_bytes=resolve("max_header_bytes"),
        header_timeout=resolve("header_timeout"),
        body_timeout=resolve("body_timeout"),
    )
    return {
        # A partial, not a class made here: the workers of --workers get it pickled.
        "http": functools.partial(LimitedHttpProtocol, limits=limits),
        "limit_concurrency": resolve("max_connections"),
    }


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int
    header_timeout: float
    body_timeout: float


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`Limits`; give it to uvicorn as
    ``functools.partial(LimitedHttpProtocol, limits=...)`` (picklable, for ``--workers``)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: Limits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._head_bytes = 0  # of this request's line and headers, as parsed
        self._head_raw = 0  # received while its head is still incomplete
        self._head_open = False
        self._begins = 0
        self._oversized = False
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None

    # -- deadlines ----------------------------------------------------------------------------

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, what: str) -> None:
        self._deadline = None
        if self.cycle is not None and self.cycle.response_started:
            # Answered already (say, 401 without reading the body), or answering a request
            # before this one: a second answer would garble the stream, so just hang up.
            self.transport.close()
        else:
            self._refuse(408, f"the request's {what} took too long to arrive")

    def _refuse(self, status: int, message: str) -> None:
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        body = json.dumps({"ok": False, "error": message, "errors": [], "status": status})
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body.encode())
        self.transport.close()

    # -- the connection -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        begins = self._begins
        super().data_received(data)
        if self._head_open and self._begins == begins:
            # All of it was head, and the head is still not over: llhttp holds a header's
            # unfinished value in memory, so a header without end is cut here.
            self._head_raw += len(data)
            self._count(0)
        if self._oversized:
            limit = self.limits.max_header_bytes
            self._refuse(431, f"request line and headers are over the {limit} byte limit")

    # -- the parser's callbacks: count the head, time the head and the body --------------------

    def _count(self, size: int) -> bool:
        self._head_bytes += size
        over = max(self._head_bytes, self._head_raw) > self.limits.max_header_bytes
        self._oversized = self._oversized or over
        return not self._oversized

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._head_raw = 0
        self._head_open = True
        self._begins += 1
        if self._deadline is None:  # a keep-alive connection's next request
            self._arm(self.limits.header_timeout, "headers")

    def on_url(self, url: bytes) -> None:
        if self._count(len(url)):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._count(len(name) + len(value) + 4):  # kept no longer once over the limit
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        if self._oversized:
            return
        super().on_headers_complete()
        self._arm(self.limits.body_timeout, "body")

    def on_body(self, body: bytes) -> None:
        if not self._oversized:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        if not self._oversized:
            super().on_message_complete()
