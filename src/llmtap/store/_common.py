"""What every store backend shares: the row an event becomes, the filters a query takes, and
the cursor of a page."""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypedDict
from urllib.parse import unquote

from ..wire import Event
from ._facts import Facts, facts_of_event

__all__ = [
    "EVENT_COLUMNS",
    "ROLES",
    "EventFilter",
    "EventRow",
    "Invitation",
    "KeyInfo",
    "NameTaken",
    "SessionUser",
    "StoreUnavailable",
    "UserRecord",
    "decode_cursor",
    "encode_cursor",
    "event_row",
    "is_partition_name",
    "mask_url",
    "search_words",
    "to_us",
    "url_secrets",
]

# PostgreSQL's partitions of events (see ``_pg_partitions``): a month, or the DEFAULT one.
_PARTITION_NAME = re.compile(r"events_(p\d{6}|default)$")


def is_partition_name(name: str) -> bool:
    """A partition of PostgreSQL's ``events`` (or one detached, not dropped yet): its rows are
    read through ``events``, never as a table of their own."""
    return _PARTITION_NAME.match(name) is not None


# The columns of the events table an ingested event fills, in order.
EVENT_COLUMNS = (
    "id",
    "project_id",
    "environment",
    "api",
    "provider",
    "model",
    "status",
    "started_us",
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
    "prompt_template_name",
    "template_revision",
    "chat_id",
    "chain_id",
    "parent_event_id",
    "feedback_key",
    "received_us",
    "sdk",
    "body",
)


class EventRow(tuple):  # type: ignore[type-arg]
    """An events-table row (a tuple in ``EVENT_COLUMNS`` order) that also carries the facts
    the derived tables need, taken from the validated event: the store then need not parse
    the body again under its write lock."""

    facts: Facts | None = None


@dataclass(frozen=True)
class KeyInfo:
    """An API key as the server sees it: where its events go and what it may do."""

    key_id: int
    project_id: int
    project: str
    environment: str
    scopes: frozenset[str] = frozenset({"ingest"})
    # A read key limited to its own environment's events.
    env_only: bool = False


# A user's role in a project, weakest first.
ROLES = ("viewer", "member", "admin")


# libpq's query parameters that hold a secret (``postgresql://u@h/db?password=...``).
_SECRET_PARAMS = frozenset({"password", "sslpassword"})


class _DbUrl(NamedTuple):
    scheme: str
    user: str | None  # None: no user part (no "@")
    password: str | None  # as written; None: none in the user part
    where: str  # host, port and database
    query: list[tuple[str, str, str]]  # (name, "=", value) pairs


def _db_url(url: str) -> _DbUrl | None:
    """A database URL taken apart; None when ``url`` has no ``scheme://``. Split by hand, not
    by ``urlsplit``: libpq takes a password holding an unescaped ``#``, ``?`` or ``/`` (where
    ``urlsplit`` ends the user part early) and URLs ``urlsplit`` refuses, and every password
    must still be found. The user part ends at the last ``@``: a query holding one is masked
    more than it needs, never less."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    userinfo, at, rest = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    where, _, query = rest.partition("?")
    return _DbUrl(
        scheme,
        user if at else None,
        password if at and colon else None,
        where,
        [p.partition("=") for p in query.split("&")] if query else [],
    )


def mask_url(url: str) -> str:
    """``url`` with its passwords (in its user part, or as a ``password`` query parameter)
    replaced by ``***``: what may be printed or logged."""
    u = _db_url(url)
    if u is None:
        return url
    who = "" if u.user is None else f"{u.user}:***@" if u.password is not None else f"{u.user}@"
    query = "&".join(
        f"{k}=***" if unquote(k).lower() in _SECRET_PARAMS else f"{k}{eq}{v}"
        for k, eq, v in u.query
    )
    return f"{u.scheme}://{who}{u.where}" + (f"?{query}" if u.query else "")


def url_secrets(url: str) -> list[str]:
    """The passwords ``url`` holds, as written in it and decoded: what no message may show."""
    u = _db_url(url)
    if u is None:
        return []
    found = [u.password or ""]
    found += [v for k, _, v in u.query if unquote(k).lower() in _SECRET_PARAMS]
    # Longest first: a decoded password inside its encoded form is masked whole.
    return sorted({s for raw in found for s in (raw, unquote(raw)) if s}, key=len, reverse=True)


class StoreUnavailable(Exception):
    """The database cannot be reached (a PostgreSQL server down or restarting): what was
    asked was not done, and may be asked again. The message never holds a password."""


class NameTaken(ValueError):
    """Another user has that name (names are compared without case)."""


class UserRecord(TypedDict):
    """A dashboard user as a login checks it."""

    id: int
    name: str
    password_hash: str
    is_owner: bool


class SessionUser(TypedDict):
    """The user of a live session: its CSRF token and roles, ``{project name: (project id,
    role)}`` (the owner is ``admin`` in every project)."""

    id: int
    name: str
    is_owner: bool
    csrf: str
    roles: dict[str, tuple[int, str]]


class Invitation(TypedDict):
    """An invitation that can still be used."""

    project: str
    role: str
    email: str | None


@dataclass
class EventFilter:
    """Which events a list query wants, newest first."""

    from_us: int | None = None
    to_us: int | None = None
    model: str | None = None
    prompt_template_name: str | None = None
    status: str | None = None
    environment: str | None = None
    chat_id: str | None = None
    chain_id: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    limit: int = 50
    cursor: tuple[Any, int] | None = None
    template_revision: str | None = None
    q: str | None = None  # words searched in prompts and outputs, all of them must match
    has_feedback: bool | None = None
    rating_min: float | None = None  # some feedback rating >= this
    rating_max: float | None = None  # some feedback rating <= this
    sort: str = "-started_at"  # one of SORTS; "-" is descending
    api: str | None = None  # chat, completion, responses, embeddings
    sdk: str | None = None  # the name of what sent the event: llmtap's SDK, an instrumentation

    # Columns compared for equality, named as in the API.
    EQUALS = (
        "model",
        "prompt_template_name",
        "template_revision",
        "status",
        "environment",
        "chat_id",
        "chain_id",
        "api",
        "sdk",
    )
    SORTS = ("-started_at", "started_at", "-latency_ms", "latency_ms", "-cost_usd", "cost_usd")


def search_words(text: str) -> list[str]:
    """The words a text search (``EventFilter.q``) looks for; none: it cannot match."""
    return re.findall(r"\w+", text)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch, for a time-zone-aware datetime."""
    return int(moment.timestamp() * 1_000_000)


def event_row(
    event: Event,
    project_id: int,
    environment: str,
    revision: str | None,
    cost_usd: float | None,
    received_us: int,
) -> tuple[Any, ...]:
    """The events-table row of a validated event."""
    usage = event.usage
    row = EventRow(
        (
            event.id,
            project_id,
            environment,
            event.api,
            event.provider,
            event.model,
            event.status,
            to_us(event.started_at),
            event.latency_ms,
            event.ttft_ms,
            usage.input_tokens if usage else None,
            usage.output_tokens if usage else None,
            usage.total_tokens if usage else None,
            cost_usd,
            event.prompt_template_name,
            revision,
            event.chat_id,
            event.chain_id,
            event.parent_event_id,
            event.feedback_key,
            received_us,
            event.sdk.name if event.sdk else None,
            # The validated event's JSON, from pydantic's Rust serializer: the body the API
            # serves.
            event.model_dump_json(),
        )
    )
    row.facts = facts_of_event(event)
    return row


def encode_cursor(value: Any, seq: int, sort: str = "-started_at") -> str:
    """The position after a row that sorted at ``value`` (with ``seq`` breaking ties)."""
    text = f"{value}:{seq}" if sort == "-started_at" else f"{sort}:{value!r}:{seq}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str = "-started_at") -> tuple[Any, int]:
    """The position a cursor names; ValueError when it is not one of ours, or was made for
    another sort order."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = base64.urlsafe_b64decode(padded).decode().split(":")
        if sort == "-started_at" and len(parts) == 2:
            return _int64(parts[0]), _int64(parts[1])
        if len(parts) == 3 and parts[0] == sort:
            number = float(parts[1])
            if not math.isfinite(number):
                raise ValueError(parts[1])
            value = _int64(parts[1]) if sort.endswith("started_at") else number
            return value, _int64(parts[2])
    except Exception:
        pass
    raise ValueError(f"not a valid cursor for sort={sort}: {cursor!r}")


def _int64(text: str) -> int:
    """``text`` as an integer the store's 64-bit columns can compare with (a bigger one makes
    SQLite's driver raise OverflowError)."""
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(text)
    return value
