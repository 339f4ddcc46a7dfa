"""Drop-in openai clients that record every call.

``Client`` is an ``openai.OpenAI`` (and ``AsyncClient`` an ``openai.AsyncOpenAI``, and so on)
whose recorded methods take one more keyword, ``llmtap=``. Everything else passes through to
openai untouched: arguments, return values, exceptions. The sync and async clients differ only
in the thin shells below (``_record_sync``, ``_record_async``); the logic lives in ``_record``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

import anyio.to_thread
import openai
import pydantic

from ._config import Config
from ._log import internal_error, log
from ._record import PARAMS_HEADER, Call, FeedbackItem, begin, put_feedback_key
from ._registry import exporter_for
from ._stats import ExportStats
from ._stream import watch

__all__ = ["AsyncAzureClient", "AsyncClient", "AzureClient", "Client"]

# (resource path on the client, api name in the event, methods recorded). Each recorded method
# is one call; ``stream`` is not among them: openai's ``.stream()`` helpers call ``create`` on
# the same resource, which records them (see ``_forward_params``).
_RECORDED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("chat.completions", "chat", ("create", "parse")),
    ("completions", "completion", ("create",)),
    ("responses", "responses", ("create", "parse")),
    ("embeddings", "embeddings", ("create",)),
)
# Resources whose ``.stream()`` helper must carry ``llmtap=`` through to ``create``.
_STREAM_HELPERS = frozenset({"chat.completions", "responses"})


class Tap:
    """What one client records with: its config, resolved settings, exporter and provider."""

    def __init__(self, config: Any, client: Any) -> None:
        self.config = Config.coerce(config)
        self.settings = self.config.resolve()
        self.exporter = exporter_for(self.settings)
        self.provider = _provider(client)

    def begin(self, api: str, kwargs: dict[str, Any]) -> Call | None:
        raw = kwargs.pop("llmtap", None)  # always removed: openai would reject it
        headers = kwargs.get("extra_headers")
        if headers and PARAMS_HEADER in headers:
            headers = dict(headers)
            raw = headers.pop(PARAMS_HEADER)
            kwargs["extra_headers"] = headers
        try:
            return begin(self.settings, api, self.provider, kwargs, raw)
        except Exception as exc:
            self.internal("begin", exc)
            return None

    def returned(self, call: Call, result: Any) -> Any:
        try:
            watch(self, call, result)
        except Exception as exc:
            self.internal("recording a response", exc)
        return result

    def succeeded(self, call: Call, result: Any) -> None:
        try:
            call.succeeded(result)
            self.exporter.submit(call)
        except Exception as exc:
            self.internal("recording a response", exc)

    def failed(self, call: Call, error: BaseException) -> None:
        try:
            call.failed(error)
            self.exporter.submit(call)
        except Exception as exc:
            self.internal("recording an error", exc)

    def ended(
        self, call: Call, error: BaseException | None = None, cancelled: bool = False
    ) -> None:
        """A stream ran out, failed or was abandoned: record it, unless it already was."""
        try:
            if call.ended(error, cancelled):
                self.exporter.submit(call)
        except Exception as exc:
            self.internal("recording a stream", exc)

    def feedback(self, key: str, rating: float | None, better: str | None) -> None:
        """Queue a feedback; as with calls, llmtap's own trouble never reaches the caller."""
        try:
            settings = self.settings
            item = FeedbackItem(key, rating, better, settings.redact_pii, settings.pii_key)
            self.exporter.submit(item)
        except Exception as exc:
            self.internal("queueing a feedback", exc)

    def internal(self, where: str, exc: BaseException) -> None:
        internal_error(where, exc, self.settings.raise_internal_errors)


def _record_sync(method: Callable[..., Any], tap: Tap, api: str) -> Callable[..., Any]:
    @functools.wraps(method)
    def recorded(*args: Any, **kwargs: Any) -> Any:
        call = tap.begin(api, kwargs)
        if call is None:
            return _unrecorded(method(*args, **kwargs))
        try:
            result = method(*args, **kwargs)
        except BaseException as exc:
            tap.failed(call, exc)
            raise
        return tap.returned(call, result)

    return recorded


def _record_async(method: Callable[..., Any], tap: Tap, api: str) -> Callable[..., Any]:
    @functools.wraps(method)
    async def recorded(*args: Any, **kwargs: Any) -> Any:
        call = tap.begin(api, kwargs)
        if call is None:
            return _unrecorded(await method(*args, **kwargs))
        try:
            result = await method(*args, **kwargs)
        except BaseException as exc:
            tap.failed(call, exc)
            raise
        return tap.returned(call, result)

    return recorded


def _unrecorded(result: Any) -> Any:
    """The answer of a call llmtap does not record (sampled out, switched off, unnamed when
    unnamed calls are not recorded), with a feedback key of None: the documented
    ``completion.model_extra["llmtap_feedback_key"]`` had raised KeyError in the application
    when recording was turned down. Streams and raw responses carry no key either way."""
    if isinstance(result, pydantic.BaseModel):
        put_feedback_key(result, None)
    return result


def _forward_params(method: Callable[..., Any]) -> Callable[..., Any]:
    """``.stream()`` with ``llmtap=``: openai's helper takes no unknown keyword, so the call
    params ride in ``extra_headers`` to the recorded ``create``, which takes them out."""

    @functools.wraps(method)
    def stream(*args: Any, **kwargs: Any) -> Any:
        raw = kwargs.pop("llmtap", None)
        # A stream taken up again (``response_id=``) is read through ``retrieve``, no call
        # llmtap records: the params would reach the HTTP headers as they are.
        if raw is not None and kwargs.get("response_id") is None:
            kwargs["extra_headers"] = {**(kwargs.get("extra_headers") or {}), PARAMS_HEADER: raw}
        return method(*args, **kwargs)

    return stream


_instrumenting = threading.Lock()


def _as_the_class_has_it(resource: Any, name: str) -> Callable[..., Any]:
    """``resource``'s method ``name``, looked up on its class at each call, as openai's own
    client does: a patch of the class made after this client was (a test's mock, an
    OpenTelemetry instrumentation) applies to it, and one that ended no longer does."""
    original = getattr(resource, name)

    @functools.wraps(original)
    def method(*args: Any, **kwargs: Any) -> Any:
        return getattr(type(resource), name).__get__(resource)(*args, **kwargs)

    return method


def _provider(client: Any) -> str:
    if isinstance(client, (openai.AzureOpenAI, openai.AsyncAzureOpenAI)):
        return "azure"
    host = client.base_url.host
    return "openai" if host == "api.openai.com" else host


class _Recording:
    """What the four clients share. Placed before the openai class in their bases, so that
    ``super()`` is the openai client."""

    _llmtap: Tap
    _wrap: Callable[[Callable[..., Any], Tap, str], Callable[..., Any]]

    def __init__(self, *args: Any, llmtap: Config | Mapping[str, Any] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._llmtap = Tap(llmtap, self)

    def _instrument(self, resource: Any, path: str) -> Any:
        """``resource`` with the recorded methods of ``path`` wrapped, on this instance only:
        ``with_raw_response`` and ``with_streaming_response`` read them from it, so they are
        recorded too. Once per resource, whatever the threads (Python 3.12's cached_property
        no longer locks: two threads may both get here)."""
        with _instrumenting:
            if resource.__dict__.get("_llmtap_recorded"):
                return resource
            for resource_path, api, methods in _RECORDED:
                if resource_path != path:
                    continue
                for name in methods:
                    if not hasattr(resource, name):  # beta.responses has no parse
                        continue
                    method = _as_the_class_has_it(resource, name)
                    setattr(resource, name, type(self)._wrap(method, self._llmtap, api))
            if path in _STREAM_HELPERS and hasattr(resource, "stream"):
                resource.stream = _forward_params(_as_the_class_has_it(resource, "stream"))
            resource.__dict__["_llmtap_recorded"] = True
        return resource

    @cached_property
    def chat(self) -> Any:
        chat = super().chat  # type: ignore[misc]
        self._instrument(chat.completions, "chat.completions")
        return chat

    @cached_property
    def beta(self) -> Any:
        """``beta.chat.completions`` (``parse``, ``stream``) and ``beta.responses`` are the
        same calls: recorded too."""
        beta = super().beta  # type: ignore[misc]
        self._instrument(beta.chat.completions, "chat.completions")
        self._instrument(beta.responses, "responses")
        return beta

    @cached_property
    def completions(self) -> Any:
        return self._instrument(super().completions, "completions")  # type: ignore[misc]

    @cached_property
    def responses(self) -> Any:
        return self._instrument(super().responses, "responses")  # type: ignore[misc]

    @cached_property
    def embeddings(self) -> Any:
        return self._instrument(super().embeddings, "embeddings")  # type: ignore[misc]

    def copy(
        self,
        *,
        llmtap: Config | Mapping[str, Any] | None = None,
        _extra_kwargs: Mapping[str, Any] = {},
        **kwargs: Any,
    ) -> Any:
        """A new client with some options changed; the llmtap config is kept, and fields given
        in ``llmtap`` replace its own."""
        config = self._llmtap.config.merged(llmtap)
        extra = {**_extra_kwargs, "llmtap": config}
        return super().copy(_extra_kwargs=extra, **kwargs)  # type: ignore[misc]

    with_options = copy

    def send_feedback(
        self,
        *,
        feedback_key: str | None,
        rating: float | None = None,
        better_response: str | None = None,
    ) -> None:
        """Queue a user's feedback on a recorded answer; sent in the background.

        ``rating`` goes from 0 (wrong) to 1 (right); ``better_response`` is the answer the user
        would have wanted. Either or both. A ``feedback_key`` of None (a call llmtap did not
        record, see ``Config.sample_rate``) sends nothing."""
        if rating is None and better_response is None:
            raise ValueError("send_feedback needs a rating, a better_response, or both")
        score = _rating(rating)
        if better_response is not None and not isinstance(better_response, str):
            raise TypeError(f"better_response must be a str, got {type(better_response).__name__}")
        if feedback_key is None or feedback_key == "":
            # The key of a call llmtap did not record (see ``_unrecorded``): nothing to rate.
            log.debug("feedback without a feedback key (a call not recorded): not sent")
            return
        self._llmtap.feedback(str(feedback_key), score, better_response)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every queued event is delivered, at most ``timeout`` seconds (default:
        the ``flush_timeout`` setting). True when nothing is left."""
        return self._llmtap.exporter.flush(timeout)

    def stats(self) -> ExportStats:
        """What became of the recorded events so far: queued, delivered, dropped, failed,
        pending (of which spooled), and adopted from a previous run; always
        ``queued + adopted == delivered + failed + dropped + pending``. Counted by the exporter,
        which this client shares with the clients that send to the same server with the same
        key and delivery settings."""
        return self._llmtap.exporter.stats()


def _rating(rating: Any) -> float | None:
    """``rating`` as the float sent: any real number from 0 to 1 (a numpy float, a Fraction,
    which JSON could not carry as they are); a ValueError for anything else, booleans and
    strings too."""
    if rating is None:
        return None
    try:
        if isinstance(rating, (bool, str, bytes)):  # float() would read "0.5" and True
            raise TypeError
        score = float(rating)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"rating must be a number from 0 to 1, got {rating!r}") from None
    if not 0 <= score <= 1:  # NaN too
        raise ValueError(f"rating must be between 0 and 1, got {rating}")
    return score


class _SyncRecording(_Recording):
    _wrap = staticmethod(_record_sync)

    def close(self) -> None:
        """Deliver what is queued (within ``flush_timeout``) and close the HTTP client."""
        self.flush()
        super().close()  # type: ignore[misc]


class _AsyncRecording(_Recording):
    _wrap = staticmethod(_record_async)

    async def aflush(self, timeout: float | None = None) -> bool:
        """:meth:`flush`, without blocking the event loop."""
        return await anyio.to_thread.run_sync(self._llmtap.exporter.flush, timeout)

    async def close(self) -> None:
        """Deliver what is queued (within ``flush_timeout``) and close the HTTP client."""
        await self.aflush()
        await super().close()  # type: ignore[misc]

    aclose = close


class Client(_SyncRecording, openai.OpenAI):
    """``openai.OpenAI`` that records every call. Takes every ``openai.OpenAI`` argument, and
    ``llmtap=`` (a :class:`llmtap.Config` or a dict)."""


class AsyncClient(_AsyncRecording, openai.AsyncOpenAI):
    """``openai.AsyncOpenAI`` that records every call."""


class AzureClient(_SyncRecording, openai.AzureOpenAI):
    """``openai.AzureOpenAI`` that records every call."""


class AsyncAzureClient(_AsyncRecording, openai.AsyncAzureOpenAI):
    """``openai.AsyncAzureOpenAI`` that records every call."""
