"""The API of the Libretto OpenAI client, recording into llmtap: change one import.

    from llmtap.libretto import Client, LibrettoConfig, LibrettoCreateParams, TemplateChat

    client = Client(api_key="sk-...", libretto=LibrettoConfig(api_key="lt_..."))
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=TemplateChat([{"role": "user", "content": "Emoji: {sport}"}], {"sport": "golf"}),
        libretto=LibrettoCreateParams(prompt_template_name="sport-emoji"),
    )
    key = completion.model_extra["libretto_feedback_key"]
    client.send_feedback(feedback_key=key, rating=0.2, better_response="⚽")

A thin layer over :class:`llmtap.Client`: the Libretto API key *is* an llmtap key (make one
with ``llmtap keys create``; it decides the project and environment, as Libretto's did), read
from ``LIBRETTO_API_KEY`` when not given (then ``LLMTAP_API_KEY``); the server is
``LLMTAP_URL``. As in Libretto, ``allow_unnamed_prompts`` is False by default: a call with no
template name goes to OpenAI and is not recorded. Unlike Libretto, ``AsyncClient`` and
streaming work, as does every other argument of the openai SDK, and failed calls are recorded.

Libretto's v0-style ``openai.ChatCompletion.create(..., libretto=...)`` example runs with
``from llmtap.monitoring import openai``; with this module it is
``client.chat.completions.create(...)``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .sdk import AsyncClient as _AsyncClient
from .sdk import CallParams, Config, TemplateChat, TemplateText
from .sdk import Client as _Client
from .sdk._config import _repr_with_key_masked

__all__ = [
    "FEEDBACK_KEY_FIELD",
    "AsyncClient",
    "Client",
    "LibrettoConfig",
    "LibrettoCreateParams",
    "TemplateChat",
    "TemplateString",
    "TemplateText",
]

log = logging.getLogger("llmtap")

FEEDBACK_KEY_FIELD = "libretto_feedback_key"
API_KEY_ENV = "LIBRETTO_API_KEY"
TemplateString = TemplateText


@dataclass
class LibrettoConfig:
    """The ``libretto=`` argument of :class:`Client`. Every field is optional."""

    api_key: str | None = None  # an llmtap key; else LIBRETTO_API_KEY, else LLMTAP_API_KEY
    prompt_template_name: str | None = None
    allow_unnamed_prompts: bool = False
    redact_pii: bool | None = None  # unset: LLMTAP_REDACT_PII, else False (Libretto's default)
    chat_id: str | None = None
    url: str | None = None  # the llmtap server; else LLMTAP_URL (not in Libretto's API)

    __repr__ = _repr_with_key_masked

    @classmethod
    def coerce(cls, value: LibrettoConfig | Mapping[str, Any] | None) -> LibrettoConfig:
        if value is None:
            return cls()
        if isinstance(value, LibrettoConfig):
            return value
        return cls(**value)

    def to_llmtap(self) -> Config:
        return Config(
            api_key=self.api_key or os.environ.get(API_KEY_ENV) or None,
            url=self.url,
            prompt_template_name=self.prompt_template_name,
            allow_unnamed_prompts=self.allow_unnamed_prompts,
            redact_pii=self.redact_pii,
            chat_id=self.chat_id,
        )


class LibrettoCreateParams(CallParams):
    """The ``libretto=`` argument of a call: ``prompt_template_name``, ``template_params``,
    ``template_chat``, ``template_text``, ``chat_id``, ``chain_id``, ``parent_event_id``,
    ``event_id``, ``feedback_key`` (and llmtap's ``attributes``). Every field is optional; a
    plain dict with some of them works too."""


def _with_feedback_key(result: Any) -> Any:
    """The recorded call's feedback key under Libretto's name too. A call not recorded has
    none, as in Libretto (``model_extra.get("libretto_feedback_key")`` reads None)."""
    extra = getattr(result, "__pydantic_extra__", None)
    if isinstance(extra, dict) and extra.get("llmtap_feedback_key") is not None:
        extra[FEEDBACK_KEY_FIELD] = extra["llmtap_feedback_key"]
    return result


def _libretto_kwarg(kwargs: dict[str, Any]) -> None:
    """``libretto=`` becomes llmtap's ``llmtap=`` (both given: ``libretto=`` wins)."""
    if "libretto" in kwargs:
        kwargs["llmtap"] = kwargs.pop("libretto")


def _sync_create(create: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(create)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _libretto_kwarg(kwargs)
        return _with_feedback_key(create(*args, **kwargs))

    return wrapped


def _async_create(create: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(create)
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        _libretto_kwarg(kwargs)
        return _with_feedback_key(await create(*args, **kwargs))

    return wrapped


class _Libretto:
    """What the two clients share; before the llmtap client in their bases."""

    _adapt: Callable[[Callable[..., Any]], Callable[..., Any]]

    def __init__(
        self,
        *args: Any,
        libretto: LibrettoConfig | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        config = LibrettoConfig.coerce(libretto).to_llmtap()
        given = kwargs.pop("llmtap", None)  # copy() hands the resolved config back this way
        super().__init__(*args, llmtap=config.merged(given), **kwargs)  # type: ignore[call-arg]

    def _adapted(self, resource: Any) -> Any:
        """``resource`` (already recorded by llmtap) with ``create`` taking ``libretto=``, on
        this instance only; ``with_raw_response`` reads it from there too."""
        resource.create = type(self)._adapt(resource.create)
        return resource

    @cached_property
    def chat(self) -> Any:
        chat = super().chat  # type: ignore[misc]
        self._adapted(chat.completions)
        return chat

    @cached_property
    def completions(self) -> Any:
        return self._adapted(super().completions)  # type: ignore[misc]

    @cached_property
    def responses(self) -> Any:
        return self._adapted(super().responses)  # type: ignore[misc]

    @cached_property
    def embeddings(self) -> Any:
        return self._adapted(super().embeddings)  # type: ignore[misc]

    def send_feedback(
        self,
        *,
        feedback_key: str | None,
        better_response: str | None = None,
        rating: float | None = None,
    ) -> None:
        """Queue a user's feedback on a recorded answer: ``rating`` from 0 (wrong) to 1
        (right), ``better_response`` the answer they wanted; either or both. A key of None
        (the call was not recorded: no template name and ``allow_unnamed_prompts`` off) is
        skipped with a warning."""
        if feedback_key is None:
            log.warning("llmtap: send_feedback without a feedback key (call not recorded)")
            return
        super().send_feedback(  # type: ignore[misc]
            feedback_key=feedback_key, rating=rating, better_response=better_response
        )


class Client(_Libretto, _Client):
    """``openai.OpenAI`` that records into llmtap, with Libretto's API (``libretto=``)."""

    _adapt = staticmethod(_sync_create)


class AsyncClient(_Libretto, _AsyncClient):
    """``openai.AsyncOpenAI`` that records into llmtap, with Libretto's API."""

    _adapt = staticmethod(_async_create)
