"""The event schema (wire v1), shared by the SDK, which builds events, and the server, which
validates them.

An event is one recorded LLM call. The SDK sends the fields of :class:`Event`; the server adds
``project``, ``environment``, ``template_revision``, ``cost_usd`` and ``feedback`` when it
answers queries. Changing a field's meaning means a new ``WIRE_VERSION``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._version import __version__

__all__ = [
    "EARLIEST",
    "EVENT_FIELDS",
    "GOOD_RATING",
    "LATEST",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_FILTERS",
    "MAX_ATTRIBUTE_KEY",
    "MAX_BATCH_EVENTS",
    "MAX_DURATION_MS",
    "MAX_GROUP_BY",
    "MAX_NAME_BYTES",
    "MAX_PRICE_PER_MTOK",
    "MAX_TEXT_CHARS",
    "MAX_TOKENS",
    "SDK_NAME",
    "TEXT_FIELDS",
    "WIRE_VERSION",
    "Batch",
    "ErrorInfo",
    "Event",
    "Feedback",
    "Usage",
    "ValidationError",
    "check_instant",
    "finite_number",
    "make_event",
    "new_feedback_key",
    "new_id",
    "parse_instant",
    "random_bytes",
    "replace_surrogates",
    "template_of",
    "template_revision",
    "truncate_strings",
    "unnamed_template_name",
]

WIRE_VERSION = 1
SDK_NAME = "llmtap-python"

Api = Literal["chat", "completion", "responses", "embeddings"]
Status = Literal["ok", "error", "cancelled"]


class _Strict(BaseModel):
    # Unknown fields are errors, not silently dropped: a typo in an event should be seen.
    model_config = ConfigDict(extra="forbid")


# The bounds of what can be true of one call. The schema rejects anything past them (naming the
# event), so nothing stored can break a read: a sum of token counts stays far inside the 64-bit
# integer columns (9 billion events of the largest count would be needed to overflow), times
# stay inside what datetime and the time buckets can show, and every number is finite.
MAX_TOKENS = 10**9  # tokens of one kind in one call; context windows are ~10^6
MAX_DURATION_MS = 86_400_000.0  # latency or time to first token: one day
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)  # started_at, and a price's since
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)
MAX_PRICE_PER_MTOK = 1_000_000.0  # USD per million tokens, in a price override
MAX_TEXT_CHARS = 1_000_000  # a feedback's better_response
# And of a query: each attribute filter or group is a subquery or join of its own.
MAX_ATTRIBUTE_FILTERS = 20  # attributes.KEY=VALUE in one query
MAX_GROUP_BY = 10  # fields in one group_by
MAX_BATCH_EVENTS = 10_000  # events in one request (the SDK sends 100)
MAX_ATTRIBUTES = 1_000  # attributes of one event
MAX_NAME_BYTES = 1_024  # of a model's or a template's name, in UTF-8
MAX_ATTRIBUTE_KEY = 200  # characters of an attribute's name (a picker's and a group-by's bound)
# A feedback rating (0 to 1) at or above this is good: a rated output may stand as a prompt
# test's expected answer; one under it is low (the stats' ``low_rating_share``).
GOOD_RATING = 0.7


def _tokens() -> Any:
    return Field(None, ge=0, le=MAX_TOKENS)


def _duration() -> Any:
    return Field(None, ge=0, le=MAX_DURATION_MS, allow_inf_nan=False)


def finite_number(value: Any) -> TypeGuard[float]:
    """Whether ``value`` is a finite number (not a bool): what a page or a sum computes with
    (JSON admits ``1e999`` and integers past a float's range; Python's parser NaN too)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer past a float's range
        return False


def parse_instant(text: str) -> datetime:
    """An ISO 8601 time as an aware datetime: ``Z`` read as UTC (Python 3.10's
    ``fromisoformat`` does not), and a time without a zone taken as UTC. ValueError when it is
    not one; OverflowError when it falls outside the years 1 to 9999 in UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


def check_instant(value: datetime, name: str) -> datetime:
    """``value`` when it is a time-zone-aware instant from EARLIEST to LATEST; else a
    ValueError saying why (pydantic reports it as the field's error)."""
    if value.tzinfo is None:
        raise ValueError(f"{name} needs a time zone (ISO 8601 with Z or an offset)")
    # Comparing aware datetimes converts to UTC first, which overflows for year 1 with a
    # positive offset or year 9999 with a negative one: compare the naive UTC reading instead.
    offset = value.utcoffset()
    naive = value.replace(tzinfo=None)
    low, high = EARLIEST.replace(tzinfo=None), LATEST.replace(tzinfo=None)
    if offset is not None and not (low + offset <= naive <= high + offset):
        raise ValueError(
            f"{name} must be from {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} (UTC), got {value}"
        )
    return value


class Usage(_Strict):
    input_tokens: int | None = _tokens()
    output_tokens: int | None = _tokens()
    cached_tokens: int | None = _tokens()  # of the input tokens: read from the prompt cache
    reasoning_tokens: int | None = _tokens()  # of the output tokens
    total_tokens: int | None = _tokens()
    # Of the input tokens: written to the prompt cache (Anthropic's), priced above input.
    cache_creation_tokens: int | None = _tokens()
    estimated: bool = False  # counted by a local tokenizer, not reported by the provider


class ErrorInfo(_Strict):
    type: str = Field(max_length=512)
    message: str = ""
    status_code: int | None = Field(None, ge=0, le=999)  # an HTTP status, when there was one


class Sdk(_Strict):
    name: str = Field(max_length=200)
    version: str = Field(max_length=200)


class Event(_Strict):
    id: str = Field(min_length=1, max_length=128)
    wire_version: Literal[1] = 1
    api: Api
    # Names, not texts: short, and never cut to a limit as texts are (see TEXT_FIELDS).
    provider: str | None = Field(None, max_length=512)
    model: str | None = Field(None, max_length=512)
    request: dict[str, Any] = Field(default_factory=dict)
    response: dict[str, Any] | list[Any] | None = None
    output_text: str | None = None
    status: Status
    error: ErrorInfo | None = None
    started_at: datetime
    latency_ms: float | None = _duration()
    ttft_ms: float | None = _duration()
    usage: Usage | None = None
    prompt_template_name: str | None = Field(None, max_length=512)
    template_chat: list[dict[str, Any]] | None = None
    template_text: str | None = None
    template_params: dict[str, Any] | None = None
    chat_id: str | None = Field(None, max_length=512)
    chain_id: str | None = Field(None, max_length=512)
    parent_event_id: str | None = Field(None, max_length=128)
    feedback_key: str | None = Field(None, max_length=512)
    attributes: dict[str, Any] = Field(default_factory=dict)
    sdk: Sdk | None = None
    # Paths of the fields whose text was cut to the size limit ("request.messages.0.content"),
    # by the SDK or the server; absent when nothing was.
    truncated: list[str] | None = Field(None, max_length=10_000)

    @field_validator("id", "parent_event_id", "chat_id", "chain_id", "prompt_template_name")
    @classmethod
    def _no_dot_segment(cls, value: str | None) -> str | None:
        # Each names a dashboard page (/events/ID, /chats/ID...): a browser reads "." and ".."
        # there as a way to another page, however they are escaped.
        if value in (".", ".."):
            raise ValueError(f"{value!r} names no page: a link to it would lead elsewhere")
        return value

    @field_validator("model", "prompt_template_name")
    @classmethod
    def _short_in_bytes(cls, value: str | None) -> str | None:
        # The two name an aggregate's dimensions together, in one index row: PostgreSQL's
        # holds at most 2,704 bytes, and 512 emoji are 2,048.
        if value is not None and len(value) > MAX_NAME_BYTES // 4:  # else short enough
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > MAX_NAME_BYTES:
                raise ValueError(f"{size} bytes in UTF-8: {MAX_NAME_BYTES} at most")
        return value

    @field_validator("attributes")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Keys are names a query groups and filters by, as "attributes.KEY".
        if len(value) > MAX_ATTRIBUTES:
            raise ValueError(f"{len(value)} attributes: {MAX_ATTRIBUTES} at most")
        long = next((k for k in value if len(k) > MAX_ATTRIBUTE_KEY), None)
        if long is not None:
            raise ValueError(f"an attribute's name is {MAX_ATTRIBUTE_KEY} characters at most")
        return value

    @field_validator("started_at")
    @classmethod
    def _sane(cls, value: datetime) -> datetime:
        return check_instant(value, "started_at")


class Batch(BaseModel):
    """The body of ``POST /api/v1/events``."""

    events: list[Event] = Field(max_length=MAX_BATCH_EVENTS)


class Feedback(_Strict):
    # Set by the SDK, once per feedback: the server stores an id once (absent: no such check).
    id: str | None = Field(None, min_length=1, max_length=128)
    feedback_key: str = Field(min_length=1, max_length=512)
    # A number: not ``true`` (had been stored as 1.0) nor a string of digits.
    rating: float | None = Field(None, ge=0, le=1, allow_inf_nan=False, strict=True)
    better_response: str | None = Field(None, max_length=MAX_TEXT_CHARS)

    @field_validator("better_response")
    @classmethod
    def _said(cls, value: str | None) -> str | None:
        # An empty answer says nothing: as absent (alone, the feedback is refused).
        return value or None

    @model_validator(mode="after")
    def _something(self) -> Feedback:
        if self.rating is None and self.better_response is None:
            raise ValueError("feedback needs a rating, a better_response, or both")
        return self


EVENT_FIELDS = frozenset(Event.model_fields)
# The fields of an event that carry free text (prompts, outputs, parameters, attributes): the
# ones that can be long, and the ones personal data can be in. The others are ids, names,
# numbers and times, with short bounds in the schema.
TEXT_FIELDS = (
    "request",
    "response",
    "output_text",
    "template_chat",
    "template_text",
    "template_params",
    "attributes",
    "error",
)
_SDK = {"name": SDK_NAME, "version": __version__}


def make_event(**fields: Any) -> dict[str, Any]:
    """An event in its JSON-ready dict form, stamped with the wire version and the SDK.

    Building a dict (not a model) keeps the SDK cheap; the server validates with :class:`Event`.
    """
    unknown = fields.keys() - EVENT_FIELDS
    if unknown:
        raise TypeError(f"not event fields: {sorted(unknown)}")
    fields["wire_version"] = WIRE_VERSION
    fields.setdefault("sdk", _SDK)
    return fields


def replace_surrogates(value: Any) -> Any:
    """``value`` with half a UTF-16 surrogate pair in any text replaced by ``?``: JSON's
    escapes can carry one (a provider's answer, a judge's), and no UTF-8 text holds it, so the
    whole value could neither be sent nor stored. Texts in ASCII are passed over at C speed."""
    if isinstance(value, str):
        return value if value.isascii() else value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {k: replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_surrogates(v) for v in value]
    return value


def truncate_strings(value: Any, limit: int, path: str, cut: list[str]) -> Any:
    """``value`` with every string longer than ``limit`` bytes (UTF-8) cut to at most that, at a
    character boundary; the path of each one cut is appended to ``cut``. Dicts and lists are
    copied only where something inside them was cut."""
    if isinstance(value, str):
        # A character is at most 4 bytes: shorter strings need no encoding to be sure.
        if len(value) * 4 <= limit or len(value.encode("utf-8", "surrogatepass")) <= limit:
            return value
        cut.append(path)
        head = value.encode("utf-8", "surrogatepass")[:limit]
        return head.decode("utf-8", "ignore")
    if isinstance(value, (dict, list)):
        out: Any = None
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            new = truncate_strings(item, limit, f"{path}.{key}" if path else str(key), cut)
            if new is not item:
                if out is None:
                    out = value.copy()
                out[key] = new
        return value if out is None else out
    return value


class _RandomBytes:
    """``os.urandom``'s bytes, read 4 KiB at a time and handed out in slices.

    The SDK takes random bytes on the caller's thread for every call (an event id, a feedback
    key). Each ``os.urandom`` is a system call made with the GIL released, and a thread of the
    exporter that is ready to run takes the GIL then: measured, that hand-over was most of
    what a recorded stream added to its caller's CPU. One read per 4 KiB keeps the bytes
    the kernel's (unguessable: a feedback key is a bearer secret) at one release per ~150
    calls. A forked child drops the parent's unread bytes, so the two never share any."""

    _SIZE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._buffer, self._at = b"", 0

    def __call__(self, n: int) -> bytes:
        if n > self._SIZE:
            return os.urandom(n)
        with self._lock:
            at = self._at
            if at + n > len(self._buffer):
                self._buffer, at = os.urandom(self._SIZE), 0
            self._at = at + n
            return self._buffer[at : at + n]


random_bytes = _RandomBytes()


def new_id(at: float | None = None) -> uuid.UUID:
    """A time-ordered UUID (version 7, RFC 9562): 48 bits of Unix milliseconds (of ``at``, a
    ``time.time()``, or now), then 74 random bits. Events recorded together get ids close
    together, so the store's id index grows at its end instead of at a random page per event
    (ingest measured ~10% faster than with random ids), and ids sort by time."""
    value = _unix_ms(at) << 80 | int.from_bytes(random_bytes(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the RFC's variant
    return uuid.UUID(int=value)


def new_feedback_key(at: float | None = None) -> str:
    """A call's feedback key: 32 hex digits, the first 12 Unix milliseconds (of ``at``, a
    ``time.time()``, or now) and the other 20 random (80 bits: a bearer secret, unguessable).
    Time first for the same reason as ``new_id``: the store's index of feedback keys then
    grows at its end (measured: random keys in that index and the id's cost a third of raw
    SQLite's insert rate, ``BENCHMARKS.md``, issue 13)."""
    return f"{_unix_ms(at) & 0xFFFF_FFFF_FFFF:012x}{random_bytes(10).hex()}"


def _unix_ms(at: float | None) -> int:
    """Unix milliseconds of ``at`` (a ``time.time()``), or of now."""
    return time.time_ns() // 1_000_000 if at is None else int(at * 1000)


def template_revision(template: Any) -> str | None:
    """A stable short hash of a template's content (a chat template's messages, or a text
    template): equal templates, equal revision."""
    if template is None:
        return None
    canonical = json.dumps(
        template, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


_PROMPT_ARG = {"chat": "messages", "completion": "prompt", "responses": "input"}


def template_of(event: Event) -> Any:
    """What an event's revision is a hash of: its template, or for a call made without one,
    its prompt as sent (a plain call is its own template)."""
    if event.template_chat is not None:
        return event.template_chat
    if event.template_text is not None:
        return event.template_text
    return event.request.get(_PROMPT_ARG.get(event.api, "input"))


def unnamed_template_name(api: str, revision: str | None) -> str:
    """The name an event recorded without a template name is filed under: stable for the
    same template, so its calls group together."""
    return f"unnamed-{api}-{revision[:8] if revision else 'empty'}"
