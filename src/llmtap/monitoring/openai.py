"""openai's v0 calling style, recorded: ``ChatCompletion.create`` and ``Completion.create``.

    from llmtap.monitoring import openai
    r = openai.ChatCompletion.create(model="gpt-4o-mini", messages=[...],
                                     monitor_attributes={"team": "blue"})
    r["choices"][0]["message"]["content"]      # dict-like, as in openai 0.x
    r.choices[0].message.content               # and attribute access

Calls go through the client of the current monitor (see ``init_monitor``); ``stream=True``
returns the openai SDK's own stream, passed through live and recorded as one event, with token
counts (``stream_options={"include_usage": True}`` is asked for unless given).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from ._monitor import current_monitor

__all__ = ["ChatCompletion", "Completion", "OpenAIObject", "message_from_stream"]


class OpenAIObject(dict):  # type: ignore[type-arg]
    """A response as openai 0.x gave it: a dict whose keys are also attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @classmethod
    def of(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return cls({k: cls.of(v) for k, v in value.items()})
        if isinstance(value, list):
            return [cls.of(v) for v in value]
        return value


def _prepare(kwargs: dict[str, Any]) -> dict[str, Any]:
    """openai 0.x arguments as the 1.x SDK takes them, plus llmtap's."""
    attributes = kwargs.pop("monitor_attributes", None)
    params = kwargs.pop("libretto", None) or kwargs.pop("llmtap", None)
    if attributes:
        params = dict(_as_dict(params) or {})
        params["attributes"] = {**(params.get("attributes") or {}), **attributes}
    if params is not None:
        kwargs["llmtap"] = params
    if kwargs.get("stream") and "stream_options" not in kwargs:
        kwargs["stream_options"] = {"include_usage": True}
    return kwargs


def _as_dict(params: Any) -> dict[str, Any] | None:
    if params is None or isinstance(params, Mapping):
        return dict(params) if params is not None else None
    return {k: v for k, v in vars(params).items() if v is not None}


def _result(response: Any, stream: bool) -> Any:
    if stream:
        return response
    return OpenAIObject.of(response.model_dump(mode="json", warnings=False))


class ChatCompletion:
    """``openai.ChatCompletion`` of openai 0.x."""

    @staticmethod
    def create(**kwargs: Any) -> Any:
        stream = bool(kwargs.get("stream"))
        response = current_monitor().client.chat.completions.create(**_prepare(kwargs))
        return _result(response, stream)

    @staticmethod
    async def acreate(**kwargs: Any) -> Any:
        stream = bool(kwargs.get("stream"))
        client = current_monitor().async_client
        return _result(await client.chat.completions.create(**_prepare(kwargs)), stream)


class Completion:
    """``openai.Completion`` of openai 0.x."""

    @staticmethod
    def create(**kwargs: Any) -> Any:
        stream = bool(kwargs.get("stream"))
        response = current_monitor().client.completions.create(**_prepare(kwargs))
        return _result(response, stream)

    @staticmethod
    async def acreate(**kwargs: Any) -> Any:
        stream = bool(kwargs.get("stream"))
        client = current_monitor().async_client
        return _result(await client.completions.create(**_prepare(kwargs)), stream)


def _piece(chunk: Any) -> str | None:
    if isinstance(chunk, Mapping):
        choices = chunk.get("choices") or []
        if not choices:
            return None
        first = choices[0]
        delta = first.get("delta") or {}
        return delta.get("content") if isinstance(delta, Mapping) else first.get("text")
    choices = getattr(chunk, "choices", None) or []
    if not choices:
        return None  # the usage chunk at the end
    first = choices[0]
    delta = getattr(first, "delta", None)
    return getattr(delta, "content", None) if delta is not None else getattr(first, "text", None)


def message_from_stream(stream: Any) -> Iterator[str]:
    """The text pieces of a streamed chat or completion response, as they arrive. The
    stream is consumed to its end, so it is recorded whole, as one event."""
    for chunk in stream:
        piece = _piece(chunk)
        if piece:
            yield piece


async def amessage_from_stream(stream: Any) -> AsyncIterator[str]:
    """:func:`message_from_stream` for an async stream."""
    async for chunk in stream:
        piece = _piece(chunk)
        if piece:
            yield piece
