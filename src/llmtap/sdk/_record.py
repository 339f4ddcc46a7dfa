"""The recorder: one call's request, response or error, turned into an event.

This is the SDK's logic, written once for the sync and async clients and their streams. A
:class:`Call` is made on the caller's thread, where only cheap work happens (copy the
arguments, read the clock, note the template, keep each streamed chunk as it passes);
:meth:`Call.to_event`, which does the real work (serialising the response, putting a stream's
chunks back together, reading usage, naming the template), runs later on the exporter's thread.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pydantic
import pydantic_core
from openai import NotGiven, Omit

from ..pii import redact_event, redact_value
from ..wire import make_event, new_feedback_key, new_id
from ._config import CallParams, Settings
from ._estimate import estimate_usage
from ._extract import complete, output_and_usage, reassemble, shrink
from ._log import warn_limited
from ._templates import TemplateChat, TemplateText, snapshot

# Not the global generator: sampling must not move the host program's random sequence. Seeded
# anew in a forked child, so workers forked from one parent do not sample in step.
_sampling = random.Random()
os.register_at_fork(after_in_child=_sampling.seed)

__all__ = [
    "FEEDBACK_KEY_FIELD",
    "PARAMS_HEADER",
    "Call",
    "FeedbackItem",
    "begin",
    "error_info",
    "put_feedback_key",
]

FEEDBACK_KEY_FIELD = "llmtap_feedback_key"
# Arguments of these types are never iterators to read once (see ``begin``).
_PLAIN = frozenset({str, list, dict, int, float, bool, tuple, type(None)})
_UNFINISHED = ("queued", "in_progress")  # a Responses API answer's status, background ones
# The same key where ``llmtap.libretto`` puts it for its callers: neither was the provider's.
_FEEDBACK_KEY_FIELDS = (FEEDBACK_KEY_FIELD, "libretto_feedback_key")
# How ``llmtap=`` reaches ``create`` through openai's ``.stream()`` helpers, whose signatures
# take no unknown keyword: inside ``extra_headers``, taken out again before openai sees it.
PARAMS_HEADER = "x-llmtap-call-params"
# Arguments that steer the HTTP request rather than say what was asked; never recorded
# (extra_headers and extra_query may carry credentials: a key, a SAS token).
_TRANSPORT_ARGS = frozenset({"extra_headers", "extra_query", "timeout"})
# Names of fields in ``extra_body`` whose values are credentials (Azure's "On Your Data" puts
# a search key in data_sources[].parameters.authentication), recorded as hidden.
_SECRET_FIELDS = frozenset(
    {"authentication", "api_key", "key", "secret", "token", "access_token", "password"}
)
# Where each API keeps its prompt, and so its template.
_PROMPT_ARG = {"chat": "messages", "completion": "prompt", "responses": "input"}
# APIs whose streams report usage only when asked (stream_options.include_usage).
_USAGE_ON_REQUEST = frozenset({"chat", "completion"})


def begin(
    settings: Settings, api: str, provider: str | None, kwargs: dict[str, Any], raw_params: Any
) -> Call | None:
    """A new call to record, or None when this call is not to be recorded. ``kwargs`` are the
    arguments for openai: ``llmtap=`` is already out of them, and when the call streams
    without asking for usage, the request for it is put in (see :attr:`Call.hide_usage`)."""
    if not settings.enabled:
        return None
    params = CallParams.coerce(raw_params)
    name = params.prompt_template_name or settings.prompt_template_name
    if name is None and not settings.allow_unnamed_prompts:
        return None
    if settings.sample_rate < 1.0 and _sampling.random() >= settings.sample_rate:
        return None
    for key, value in kwargs.items():
        # The plain types first: an abstract class's isinstance costs the caller ~0.15 us.
        if type(value) in _PLAIN or not isinstance(value, Iterator) or hasattr(value, "read"):
            continue  # not an iterator, or a file
        # messages=(m for m in history): openai reads it once, as it sends the call, so
        # llmtap would see it empty. Read once here, the call and the record share it.
        kwargs[key] = list(value)
    call = Call(settings, api, provider, kwargs, params, name)
    if (
        kwargs.get("stream") is True
        and api in _USAGE_ON_REQUEST
        and settings.stream_usage
        # Azure's API versions before 2024-09 refuse the field (a 400 the caller would get
        # because of llmtap); a raw stream's reader would see the usage chunk it brings.
        and provider != "azure"
        and not _raw(kwargs)
    ):
        _ask_for_usage(call, kwargs)
    return call


def _raw(kwargs: dict[str, Any]) -> bool:
    """Whether the caller reads the HTTP response itself (``with_raw_response``,
    ``with_streaming_response``), so that what llmtap adds to the stream would reach it."""
    headers = kwargs.get("extra_headers")
    return isinstance(headers, Mapping) and any(
        str(k).lower() == "x-stainless-raw-response" for k in headers
    )


def _ask_for_usage(call: Call, kwargs: dict[str, Any]) -> None:
    options = kwargs.get("stream_options")
    if isinstance(options, Mapping):
        if options.get("include_usage") is None:
            kwargs["stream_options"] = {**options, "include_usage": True}
            call.hide_usage = True
        return
    body = kwargs.get("extra_body")
    body = body if isinstance(body, Mapping) else {}
    if "stream_options" in body:
        return  # the caller's own, in the raw body: theirs to read
    # In the raw body rather than as the stream_options argument: openai checks and converts
    # its arguments against their types, which for this one costs the caller's thread more
    # than everything else llmtap does on a stream.
    kwargs["extra_body"] = {**body, "stream_options": {"include_usage": True}}
    call.hide_usage = True


class Call:
    """One call in flight, then done. For a stream, the chunks as they passed."""

    __slots__ = (
        "api",
        "chunks",
        "done",
        "error",
        "event_id",
        "feedback_key",
        "hide_usage",
        "latency_ms",
        "name",
        "params",
        "prompt",
        "provider",
        "request",
        "response",
        "settings",
        "started_at",
        "status",
        "t0",
        "ttft_ms",
    )

    def __init__(
        self,
        settings: Settings,
        api: str,
        provider: str | None,
        kwargs: Mapping[str, Any],
        params: CallParams,
        name: str | None,
    ) -> None:
        self.settings = settings
        self.api = api
        self.provider = provider
        if params.attributes or params.template_params or params.template_chat:
            # Read on the exporter's thread: as they are now, not as the caller makes them.
            params = replace(
                params,
                attributes=snapshot(params.attributes),
                template_params=snapshot(params.template_params),
                template_chat=snapshot(params.template_chat),
            )
        self.params = params
        self.name = name
        # Made on the exporter's thread (to_event), from the start time, unless given.
        self.event_id: str | None = str(params.event_id) if params.event_id else None
        self.started_at = time.time()
        self.feedback_key = params.feedback_key or new_feedback_key(self.started_at)
        # The caller may append to its messages list once we return (a chat loop does): keep
        # our own copy of every list argument. The prompt object itself keeps its template.
        prompt = kwargs.get(_PROMPT_ARG.get(api, "input"))
        self.prompt = prompt if isinstance(prompt, (TemplateChat, TemplateText)) else None
        self.request = {k: list(v) if isinstance(v, list) else v for k, v in kwargs.items()}
        self.response: Any = None
        self.error: BaseException | None = None
        self.status = "ok"
        self.latency_ms: float | None = None
        self.ttft_ms: float | None = None
        # A list once the call turned out to stream: the raw text of each server-sent event,
        # parsed on the exporter's thread (see _stream.py).
        self.chunks: list[Any] | None = None
        self.hide_usage = False  # llmtap asked for the usage chunk; the caller never sees it
        self.done = False
        self.t0 = time.perf_counter()

    # -- on the caller's thread ---------------------------------------------------------------

    def succeeded(self, response: Any) -> Any:
        self.latency_ms = (time.perf_counter() - self.t0) * 1000.0
        self.response = response
        self.done = True
        if isinstance(response, pydantic.BaseModel):
            self.tag(response)
        return response

    def failed(self, exc: BaseException) -> None:
        self.latency_ms = (time.perf_counter() - self.t0) * 1000.0
        self.error = exc
        self.status = "error" if isinstance(exc, Exception) else "cancelled"
        self.done = True

    def tag(self, model: pydantic.BaseModel) -> None:
        """Put the feedback key where the caller can read it:
        ``model.model_extra["llmtap_feedback_key"]``."""
        put_feedback_key(model, self.feedback_key)

    def ended(self, error: BaseException | None = None, cancelled: bool = False) -> bool:
        """The stream ran out, failed, or was abandoned. False when it had already ended: a
        stream is recorded once, whichever way it ends first."""
        if self.done:
            return False
        self.done = True
        self.latency_ms = (time.perf_counter() - self.t0) * 1000.0
        if error is not None:
            self.failed(error)
        elif cancelled:
            self.status = "cancelled"
        return True

    # -- on the exporter's thread -------------------------------------------------------------

    def to_event(self) -> dict[str, Any]:
        params = self.params
        if self.event_id is None:  # once: an event built again keeps its id
            self.event_id = str(new_id(self.started_at))
        template_chat, template_text, template_params = _template_of(self.prompt, params)
        status, error = self.status, error_info(self.error) if self.error is not None else None
        if self.chunks is not None:
            response = reassemble(self.api, _parsed(self.chunks))
            if status == "cancelled" and complete(self.api, response):
                status = "ok"  # the caller stopped reading after the whole answer arrived
        else:
            response = _dump(self.response)
        if isinstance(response, dict):
            for name in _FEEDBACK_KEY_FIELDS:
                response.pop(name, None)
            if self.api == "responses" and response.get("status") == "failed" and not error:
                status, error = "error", _response_error(response.get("error"))
        output_text, usage = (
            output_and_usage(self.api, response) if isinstance(response, dict) else (None, None)
        )
        model = response.get("model") if isinstance(response, dict) else None
        model = model or _str_or_none(self.request.get("model"))
        request = _request_json(self.request)
        # A background response (``background=True``) answers "queued": what it will cost
        # is not known yet, and an estimate of it would be a measurement of nothing.
        unfinished = isinstance(response, dict) and response.get("status") in _UNFINISHED
        if (
            self.settings.estimate_usage
            and status != "error"
            and not unfinished
            and _no_tokens(usage)
        ):
            try:
                usage = estimate_usage(self.api, model, request, output_text, response) or usage
            except Exception as exc:  # the tokenizer's import at interpreter exit, say
                warn_limited("estimate", "llmtap: cannot estimate usage: %r", exc)
        attributes = dict(self.settings.attributes or {})
        attributes.update(params.attributes or {})
        chat_id = params.chat_id or self.settings.chat_id
        event = make_event(
            id=self.event_id,
            api=self.api,
            provider=self.provider,
            model=model,
            request=shrink(request),
            response=shrink(response),
            output_text=output_text,
            status=status,
            error=error,
            started_at=datetime.fromtimestamp(self.started_at, timezone.utc).isoformat(),
            latency_ms=self.latency_ms,
            ttft_ms=self.ttft_ms,
            usage=usage,
            prompt_template_name=self.name,  # None: the server names it from the template
            template_chat=template_chat,
            template_text=template_text,
            template_params=_jsonable(template_params),
            chat_id=_str_or_none(chat_id),
            chain_id=_str_or_none(params.chain_id),
            parent_event_id=_str_or_none(params.parent_event_id),
            feedback_key=self.feedback_key,
            attributes=_jsonable(attributes),
        )
        if self.settings.redact_pii:
            return redact_event(event, key=self.settings.pii_key)
        return event


def _no_tokens(usage: dict[str, Any] | None) -> bool:
    return usage is None or (usage["input_tokens"] is None and usage["output_tokens"] is None)


def _response_error(raw: Any) -> dict[str, Any]:
    raw = raw if isinstance(raw, dict) else {}
    return {
        "type": str(raw.get("code") or "response.failed"),
        "message": str(raw.get("message") or ""),
        "status_code": None,
    }


def put_feedback_key(model: pydantic.BaseModel, key: str | None) -> None:
    """``key`` as ``model.model_extra["llmtap_feedback_key"]``; None for a call llmtap did not
    record, so that reading it never fails and ``send_feedback`` with it sends nothing."""
    extra = model.__pydantic_extra__
    if extra is None:
        extra = {}
        object.__setattr__(model, "__pydantic_extra__", extra)
    extra[FEEDBACK_KEY_FIELD] = key


class FeedbackItem:
    """Feedback queued for delivery, sent on the exporter's thread like an event."""

    __slots__ = ("_body", "_pii_key", "_redact")

    def __init__(
        self,
        feedback_key: str,
        rating: float | None,
        better_response: str | None,
        redact: bool | str = False,
        pii_key: bytes | None = None,
    ) -> None:
        self._redact, self._pii_key = bool(redact), pii_key
        self._body = {
            # Stable across retries, so a feedback sent twice (a crash between the server's
            # answer and the spool file's removal) is stored once.
            "id": str(new_id()),
            "feedback_key": feedback_key,
            "rating": rating,
            "better_response": better_response,
        }

    @property
    def body(self) -> dict[str, Any]:
        """The feedback as sent; redacted here, when the exporter's thread first reads it,
        not in ``send_feedback`` on the caller's."""
        if self._redact:
            self._body["better_response"] = redact_value(
                self._body["better_response"], self._pii_key
            )
            self._redact = False
        return self._body


def error_info(exc: BaseException) -> dict[str, Any]:
    message = getattr(exc, "message", None) or str(exc)
    status_code = getattr(exc, "status_code", None)
    return {
        "type": type(exc).__name__,
        "message": message,
        "status_code": status_code if isinstance(status_code, int) else None,
    }


def _template_of(prompt: Any, params: CallParams) -> tuple[Any, Any, Any]:
    """(template_chat, template_text, template_params): given explicitly, or read from a
    TemplateChat or TemplateText prompt."""
    template_chat, template_text = params.template_chat, params.template_text
    template_params = params.template_params
    if isinstance(prompt, TemplateChat) and template_chat is None and template_text is None:
        template_chat = prompt.template
        template_params = template_params if template_params is not None else prompt.params
    elif isinstance(prompt, TemplateText) and template_chat is None and template_text is None:
        template_text = prompt.template
        template_params = template_params if template_params is not None else prompt.params
    return _jsonable(template_chat), template_text, template_params


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    return pydantic_core.to_jsonable_python(value, fallback=repr, bytes_mode="base64")


def _dump(response: Any) -> Any:
    if response is None:
        return None
    if isinstance(response, pydantic.BaseModel):
        return response.model_dump(mode="json", by_alias=True, exclude_unset=True, warnings=False)
    return _jsonable(response)


def _parsed(chunks: list[str]) -> list[dict[str, Any]]:
    """A stream's events (their raw text) as JSON objects; what is not one (``[DONE]``) is
    left out."""
    out = []
    for chunk in chunks:
        try:
            value = json.loads(chunk)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def _request_json(request: dict[str, Any]) -> dict[str, Any]:
    kept = {
        k: _schema_of(v, k) if isinstance(v, type) else v
        for k, v in request.items()
        if k not in _TRANSPORT_ARGS and not isinstance(v, (NotGiven, Omit))
    }
    text_format = kept.pop("text_format", None)
    if text_format is not None:  # responses.parse: sent as the request's text.format
        text = kept.get("text")
        kept["text"] = {**(text if isinstance(text, Mapping) else {}), "format": text_format}
    if isinstance(kept.get("extra_body"), Mapping):
        kept["extra_body"] = _hidden_secrets(kept["extra_body"])
    return _jsonable(kept)


def _hidden_secrets(value: Any) -> Any:
    """``value`` with what its secret-named fields hold replaced by ``"[hidden]"``."""
    if isinstance(value, Mapping):
        return {
            k: "[hidden]" if str(k).lower() in _SECRET_FIELDS else _hidden_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_hidden_secrets(v) for v in value]
    return value


def _schema_of(cls: type, argument: str) -> Any:
    """A structured-output class (``response_format=``, ``text_format=``) as openai sends it
    (a strict JSON schema, in the chat API's or the Responses API's shape): what a replay of
    the call sends again."""
    try:
        from openai.lib._parsing._completions import type_to_response_format_param
        from openai.lib._parsing._responses import type_to_text_format_param

        convert = (
            type_to_text_format_param
            if argument == "text_format"
            else type_to_response_format_param
        )
        return dict(convert(cls))  # type: ignore[arg-type]
    except Exception:  # another openai, or a class it cannot convert: its schema, as it is
        if issubclass(cls, pydantic.BaseModel):
            schema = cls.model_json_schema()
            return {"type": "json_schema", "name": cls.__name__, "schema": schema}
        return repr(cls)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
