"""What a recorded method returned, watched without changing it: streams, and the raw
responses of ``with_raw_response`` and ``with_streaming_response``.

A stream stays the SDK's own object (``openai.Stream``, ``openai.AsyncStream``); only its
inner iterator is swapped for one that keeps each chunk as it passes (see :meth:`Call.chunk`)
and yields it at once. It ends one of four ways, and is recorded on the first of them: it
runs out (ok), raises (error), its response is closed while it is not being read (cancelled:
``close()``, a ``with`` block left early, ``.stream()`` helpers), or it is garbage collected
unread to the end (cancelled). The sync and async generators are the only code written twice.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import openai
from openai._legacy_response import LegacyAPIResponse

from ._record import Call

if TYPE_CHECKING:
    from ._client import Tap

__all__ = ["watch"]


def watch(tap: Tap, call: Call, result: Any) -> Any:
    """Record ``result`` now (a plain response) or once it is done (a stream, a response not
    read yet); ``result`` itself is returned unchanged."""
    if isinstance(result, openai.Stream):
        _watch_stream(tap, call, result, _watched)
    elif isinstance(result, openai.AsyncStream):
        _watch_stream(tap, call, result, _awatched)
    elif isinstance(result, LegacyAPIResponse):
        # with_raw_response: the body is read already (or is a stream); parsing it now is what
        # the caller's parse() would do, and openai caches it, so the caller gets the same
        # object, feedback key and watched stream included.
        watch(tap, call, result.parse())
    elif isinstance(result, openai.APIResponse):
        _watch_api_response(tap, call, result)
    elif isinstance(result, openai.AsyncAPIResponse):
        _watch_async_api_response(tap, call, result)
    else:
        tap.succeeded(call, result)
    return result


class _Guard:
    """Records a stream dropped before it was ever read, when it is garbage collected."""

    __slots__ = ("call", "tap")

    def __init__(self, tap: Tap, call: Call) -> None:
        self.tap, self.call = tap, call

    def __del__(self) -> None:
        if not self.call.done:
            self.tap.ended(self.call, cancelled=True)


def _watch_stream(tap: Tap, call: Call, stream: Any, generator: Any) -> None:
    inner = stream._iterator
    call.chunks = []
    stream._iterator = generator(inner, _Guard(tap, call))
    _on_close(tap, call, stream.response, inner)


def _keep(tap: Tap, call: Call, chunk: Any) -> bool:
    """Record one chunk; whether the caller sees it. Never raises into the caller's loop."""
    try:
        return call.chunk(chunk)
    except Exception as exc:
        tap.internal("recording a chunk", exc)
        return True


def _watched(inner: Iterator[Any], guard: _Guard) -> Iterator[Any]:
    tap, call = guard.tap, guard.call
    try:
        for chunk in inner:
            if _keep(tap, call, chunk):
                yield chunk
    except GeneratorExit:
        tap.ended(call, cancelled=True)
        raise
    except BaseException as exc:
        tap.ended(call, error=exc)
        raise
    tap.ended(call)


async def _awatched(inner: AsyncIterator[Any], guard: _Guard) -> AsyncIterator[Any]:
    tap, call = guard.tap, guard.call
    try:
        async for chunk in inner:
            if _keep(tap, call, chunk):
                yield chunk
    except GeneratorExit:
        tap.ended(call, cancelled=True)
        raise
    except BaseException as exc:
        tap.ended(call, error=exc)
        raise
    tap.ended(call)


def _on_close(tap: Tap, call: Call, response: Any, inner: Any) -> None:
    """Record the stream as cancelled when its HTTP response is closed by anyone but openai's
    own stream generator (which closes it as the stream runs out or fails, while running)."""
    if hasattr(response, "aclose") and hasattr(inner, "ag_running"):
        aclose = response.aclose

        async def closed() -> None:
            try:
                await aclose()
            finally:
                if not inner.ag_running:
                    tap.ended(call, cancelled=True)

        response.aclose = closed
    else:
        close = response.close

        def closed_sync() -> None:
            try:
                close()
            finally:
                if not getattr(inner, "gi_running", False):
                    tap.ended(call, cancelled=True)

        response.close = closed_sync


# -- with_streaming_response: the body is read later, by the caller ---------------------------


def _watch_api_response(tap: Tap, call: Call, response: Any) -> None:
    parse, close = response.parse, response.close

    def parsed(**kwargs: Any) -> Any:
        result = parse(**kwargs)
        if not kwargs and not call.done and call.chunks is None:
            tap.returned(call, result)
        return result

    def closed() -> None:
        try:
            close()
        finally:
            _read_without_parse(tap, call, response)

    response.parse, response.close = parsed, closed


def _watch_async_api_response(tap: Tap, call: Call, response: Any) -> None:
    parse, close = response.parse, response.close

    async def parsed(**kwargs: Any) -> Any:
        result = await parse(**kwargs)
        if not kwargs and not call.done and call.chunks is None:
            tap.returned(call, result)
        return result

    async def closed() -> None:
        try:
            await close()
        finally:
            _read_without_parse(tap, call, response)

    response.parse, response.close = parsed, closed


def _read_without_parse(tap: Tap, call: Call, response: Any) -> None:
    """The caller closed a streaming response without parse(): record what it read, if it
    read the body whole (read(), json(), text()); else the call with no response."""
    if call.done or call.chunks is not None:
        return
    body: Any = None
    content = getattr(response.http_response, "_content", None)
    if content:
        try:
            body = json.loads(content)
        except ValueError:
            body = None
    tap.succeeded(call, body)
