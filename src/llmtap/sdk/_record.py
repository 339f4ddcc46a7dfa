"""The recorder: one call's request, response or error, turned into an event.

This is the SDK's logic, written once for the sync and async clients. A :class:`Call` is made
on the caller's thread, where only cheap work happens (copy the arguments, read the clock,
note the template); :meth:`Call.to_event`, which does the real work (serialising the response,
reading usage, naming the template), runs later on the exporter's thread.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pydantic
import pydantic_core
from openai import NotGiven, Omit

from ..pii import redact_event, redact_value
from ..wire import make_event
from ._config import CallParams, Settings
from ._templates import TemplateChat, TemplateText

__all__ = ["FEEDBACK_KEY_FIELD", "Call", "FeedbackItem", "begin", "error_info"]

FEEDBACK_KEY_FIELD = "llmtap_feedback_key"
# Arguments that steer the HTTP request rather than say what was asked; never recorded
# (extra_headers may carry credentials).
_TRANSPORT_ARGS = frozenset({"extra_headers", "timeout"})
# Where each API keeps its prompt, and so its template.
_PROMPT_ARG = {"chat": "messages", "completion": "prompt", "responses": "input"}


def begin(
    settings: Settings, api: str, provider: str | None, kwargs: dict[str, Any], raw_params: Any
) -> Call | None:
    """A new call to record, or None when this call is not to be recorded."""
    if not settings.enabled:
        return None
    params = CallParams.coerce(raw_params)
    name = params.prompt_template_name or settings.prompt_template_name
    if name is None and not settings.allow_unnamed_prompts:
        return None
    if settings.sample_rate < 1.0 and random.random() >= settings.sample_rate:
        return None
    return Call(settings, api, provider, kwargs, params, name)


class Call:
    """One call in flight, then done."""

    __slots__ = (
        "api",
        "error",
        "event_id",
        "feedback_key",
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
        self.params = params
        self.name = name
        self.event_id = str(params.event_id) if params.event_id else str(uuid.uuid4())
        self.feedback_key = params.feedback_key or uuid.uuid4().hex
        # The caller may append to its messages list once we return (a chat loop does): keep
        # our own copy of every list argument. The prompt object itself keeps its template.
        prompt = kwargs.get(_PROMPT_ARG.get(api, "input"))
        self.prompt = prompt if isinstance(prompt, (TemplateChat, TemplateText)) else None
        self.request = {k: list(v) if isinstance(v, list) else v for k, v in kwargs.items()}
        self.response: Any = None
        self.error: BaseException | None = None
        self.status = "ok"
        self.latency_ms: float | None = None
        self.started_at = time.time()
        self.t0 = time.perf_counter()

    # -- on the caller's thread ---------------------------------------------------------------

    def succeeded(self, response: Any) -> Any:
        self.latency_ms = (time.perf_counter() - self.t0) * 1000.0
        self.response = response
        if isinstance(response, pydantic.BaseModel):
            extra = response.__pydantic_extra__
            if extra is None:
                extra = {}
                object.__setattr__(response, "__pydantic_extra__", extra)
            extra[FEEDBACK_KEY_FIELD] = self.feedback_key
        return response

    def failed(self, exc: BaseException) -> None:
        self.latency_ms = (time.perf_counter() - self.t0) * 1000.0
        self.error = exc
        self.status = "error" if isinstance(exc, Exception) else "cancelled"

    # -- on the exporter's thread -------------------------------------------------------------

    def to_event(self) -> dict[str, Any]:
        params = self.params
        template_chat, template_text, template_params = _template_of(self.prompt, params)
        response = _dump(self.response)
        if isinstance(response, dict):
            response.pop(FEEDBACK_KEY_FIELD, None)
        extract = _EXTRACTORS.get(self.api, _extract_nothing)
        output_text, usage = extract(response) if isinstance(response, dict) else (None, None)
        model = response.get("model") if isinstance(response, dict) else None
        attributes = dict(self.settings.attributes or {})
        attributes.update(params.attributes or {})
        chat_id = params.chat_id or self.settings.chat_id
        event = make_event(
            id=self.event_id,
            api=self.api,
            provider=self.provider,
            model=model or _str_or_none(self.request.get("model")),
            request=_request_json(self.request),
            response=response,
            output_text=output_text,
            status=self.status,
            error=error_info(self.error) if self.error is not None else None,
            started_at=datetime.fromtimestamp(self.started_at, timezone.utc).isoformat(),
            latency_ms=self.latency_ms,
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
        return redact_event(event) if self.settings.redact_pii else event


class FeedbackItem:
    """Feedback queued for delivery, sent on the exporter's thread like an event."""

    __slots__ = ("body",)

    def __init__(
        self,
        feedback_key: str,
        rating: float | None,
        better_response: str | None,
        redact: bool = False,
    ) -> None:
        if redact:
            better_response = redact_value(better_response)
        self.body = {
            "feedback_key": feedback_key,
            "rating": rating,
            "better_response": better_response,
        }


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


def _request_json(request: dict[str, Any]) -> dict[str, Any]:
    kept = {
        k: v
        for k, v in request.items()
        if k not in _TRANSPORT_ARGS and not isinstance(v, (NotGiven, Omit))
    }
    return _jsonable(kept)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _usage(raw: Any, input_key: str, output_key: str) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    input_details = raw.get(input_key.replace("tokens", "tokens_details")) or {}
    output_details = raw.get(output_key.replace("tokens", "tokens_details")) or {}
    return {
        "input_tokens": raw.get(input_key),
        "output_tokens": raw.get(output_key),
        "cached_tokens": input_details.get("cached_tokens"),
        "reasoning_tokens": output_details.get("reasoning_tokens"),
        "total_tokens": raw.get("total_tokens"),
    }


def _joined(texts: list[Any]) -> str | None:
    """The text of one choice, or of several (n > 1) one per line."""
    texts = [t for t in texts if isinstance(t, str)]
    if not texts:
        return None
    return texts[0] if len(texts) == 1 else "\n".join(texts)


def _extract_chat(response: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    texts = [(c.get("message") or {}).get("content") for c in response.get("choices") or ()]
    return _joined(texts), _usage(response.get("usage"), "prompt_tokens", "completion_tokens")


def _extract_completion(response: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    texts = [c.get("text") for c in response.get("choices") or ()]
    return _joined(texts), _usage(response.get("usage"), "prompt_tokens", "completion_tokens")


def _extract_nothing(response: dict[str, Any]) -> tuple[None, None]:
    return None, None


_EXTRACTORS = {"chat": _extract_chat, "completion": _extract_completion}
