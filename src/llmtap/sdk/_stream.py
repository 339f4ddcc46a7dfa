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

import functools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
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
        _watch_stream(tap, call, result, _watched, _events)
    elif isinstance(result, openai.AsyncStream):
        _watch_stream(tap, call, result, _awatched, _aevents)
    elif isinstance(result, LegacyAPIResponse):
        # with_raw_response: the body is read already (or is a stream); parsing it now is what
        # the caller's parse() would do, and openai caches it, so the caller gets the same
        # object, feedback key and watched stream included. A body that does not parse
        # (structured output that does not fit its format) is the call's error, as without
        # the raw wrapper; the caller's own parse() raises it.
        try:
            parsed = result.parse()
        except Exception as exc:
            tap.failed(call, exc)
            return result
        watch(tap, call, parsed)
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


def _watch_stream(tap: Tap, call: Call, stream: Any, generator: Any, events: Any) -> None:
    inner = stream._iterator
    call.chunks = []
    # openai's generator asks for its server-sent events on its first step, not before: each
    # event's raw text is kept there, before openai parses it, and the usage chunk llmtap
    # asked for is taken out.
    stream._iter_events = functools.partial(events, stream._iter_events, tap, call)
    stream._iterator = generator(inner, _Guard(tap, call))
    _on_close(tap, call, stream.response, inner)


# The caller's loop runs these for every chunk. They keep the event's raw text (a str: no
# object for the garbage collector to follow) and put the feedback key on the chunk openai
# built from it, no more. Parsing and putting the chunks together happen once the stream is
# over, on the exporter's thread (Call.to_event).


def _events(events: Callable[[], Iterator[Any]], tap: Tap, call: Call) -> Iterator[Any]:
    for sse in events():
        if _kept(tap, call, sse.data):
            yield sse


async def _aevents(
    events: Callable[[], AsyncIterator[Any]], tap: Tap, call: Call
) -> AsyncIterator[Any]:
    async for sse in events():
        if _kept(tap, call, sse.data):
            yield sse


def _kept(tap: Tap, call: Call, data: str) -> bool:
    """Keep one event's text; whether openai gets it (not the usage chunk llmtap asked for).
    The caller pays a substring search per event, and one ``json.loads`` for the usage
    chunk, instead of openai's parsing and model building for it. Once the stream has ended
    (and its event gone to the exporter), nothing more is kept; and nothing raises into the
    caller's loop."""
    try:
        if call.done:
            return True
        chunks = call.chunks
        if not chunks:
            call.ttft_ms = (time.perf_counter() - call.t0) * 1000.0
        chunks.append(data)  # type: ignore[union-attr]
        # "[]" in the raw text is what makes an event worth parsing here: the usage chunk has
        # empty choices.
        return not (call.hide_usage and "[]" in data and _is_usage(data))
    except Exception as exc:
        tap.internal("recording a stream's chunk", exc)
        return True


def _is_usage(data: str) -> bool:
    try:
        parsed = json.loads(data)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("choices") == [] and bool(parsed.get("usage"))


def _watched(inner: Iterator[Any], guard: _Guard) -> Iterator[Any]:
    tap, call = guard.tap, guard.call
    try:
        for chunk in inner:
            _tag(chunk, call)
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
            _tag(chunk, call)
            yield chunk
    except GeneratorExit:
        tap.ended(call, cancelled=True)
        raise
    except BaseException as exc:
        tap.ended(call, error=exc)
        raise
    tap.ended(call)


def _tag(chunk: Any, call: Call) -> None:
    """The feedback key on every chunk (``Call.tag``). Never raises into the caller's loop."""
    try:  # noqa: SIM105 (per chunk: a bare try costs nothing, contextlib.suppress does)
        call.tag(chunk)
    except AttributeError:  # not a pydantic model: nothing to put it on
        pass


def _on_close(tap: Tap, call: Call, response: Any, inner: Any) -> None:
    """Record the stream as cancelled when its HTTP response is closed by anyone but openai's
    own stream generator, while that generator is suspended before its end: not while it runs
    (it closes the response as the stream runs out or fails), nor once it is over (httpx closes
    the response again when openai's abandoned byte iterator is collected: the stream's own
    end, which the watching generator records)."""
    if hasattr(response, "aclose") and hasattr(inner, "ag_running"):
        aclose = response.aclose

        async def closed() -> None:
            try:
                await aclose()
            finally:
                if not inner.ag_running and inner.ag_frame is not None:
                    tap.ended(call, cancelled=True)

        response.aclose = closed
    else:
        close = response.close

        def closed_sync() -> None:
            try:
                close()
            finally:
                # Not a generator (no gi_frame): every close by another is a cancel.
                suspended = getattr(inner, "gi_frame", True) is not None
                if suspended and not getattr(inner, "gi_running", False):
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
