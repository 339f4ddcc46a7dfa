"""Alert rules, budgets and notification channels: what a user writes (JSON, through the API,
the CLI or the dashboard), validated here once, with errors that name the bad field.

A rule watches one measure of the events its filters select, over a rolling window, per group
when it has a group-by::

    {"name": "errors jump", "measure": "error_rate", "filters": {"model": "gpt-4o"},
     "group_by": "prompt_template_name", "window": "1h", "op": "above", "threshold": 20,
     "compare": "previous_window", "min_events": 20, "severity": "critical",
     "cooldown": "15m", "channels": ["ops"]}

``compare`` (``previous_window`` or ``week_before``) makes the threshold a change in percent
against that window; without it the threshold is the measure's own value. A budget is a cost
limit per calendar month or day (UTC), notified once per fraction per period::

    {"name": "monthly", "limit_usd": 500, "period": "month", "group_by": "attributes.user",
     "notify_at": [0.5, 0.8, 1.0]}

Rules and budgets read only what the stats aggregates keep (see ``store.stats``): so the
filters and the group-by may name one attribute key between them, and a rule cannot use a
text search or a chat id.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ...wire import GOOD_RATING
from ..errors import ApiError

__all__ = [
    "ADDITIVE",
    "DIMENSIONS",
    "MEASURES",
    "Budget",
    "Channel",
    "Rule",
    "measure_of",
    "parse_duration",
    "validated",
]

# What a rule can watch: its value read from one group of a stats answer.
MEASURES: dict[str, str] = {
    "requests": "number of events",
    "errors": "number of events with status error",
    "error_rate": "errors / requests, in percent",
    "cost": "cost in USD (priced events)",
    "tokens": "input + output tokens",
    "cached_tokens": "cached input tokens",
    "reasoning_tokens": "reasoning output tokens",
    "latency_p50": "latency p50, ms",
    "latency_p95": "latency p95, ms",
    "latency_p99": "latency p99, ms",
    "ttft_p50": "time to first token p50, ms",
    "ttft_p95": "time to first token p95, ms",
    "avg_rating": "average feedback rating (0 to 1)",
    "low_rating_share": f"ratings under {GOOD_RATING}, in percent of all ratings",
}
# Counts and sums: zero, not unknown, with no events.
ADDITIVE = ("requests", "errors", "tokens", "cost", "cached_tokens", "reasoning_tokens")
# Fields a rule may filter or group by (besides ``attributes.KEY``); ``user`` is
# ``attributes.user``, the attribute apps set for who made the call.
DIMENSIONS = ("model", "prompt_template_name", "template_revision", "environment", "status")
MIN_WINDOW, MAX_WINDOW = 60, 30 * 86_400
MAX_FILTERS = 16
MAX_TEXT = 512
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration(value: Any) -> int:
    """Seconds, from a number of seconds or a text like ``90s``, ``15m``, ``1h``, ``7d``."""
    if isinstance(value, bool):
        raise ValueError("expected seconds or a duration like 15m, 1h, 7d")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and (match := _DURATION.match(value)) and len(value) < 20:
        return int(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError("expected seconds or a duration like 15m, 1h, 7d")


def measure_of(measure: str, group: dict[str, Any]) -> float | None:
    """The value of ``measure`` in one group of a stats answer (None: not known, e.g. no
    latency recorded, no priced event, no rating)."""
    if measure == "requests":
        return float(group["count"])
    if measure == "errors":
        return float(group["errors"])
    if measure == "error_rate":
        rate = group["error_rate"]
        return None if rate is None else 100.0 * rate
    if measure == "cost":
        return group["cost_usd"]  # type: ignore[no-any-return]
    if measure == "tokens":
        return float(group["input_tokens"] + group["output_tokens"])
    if measure == "avg_rating":
        return group["avg_rating"]  # type: ignore[no-any-return]
    if measure in ("cached_tokens", "reasoning_tokens"):
        return float(group[measure])
    if measure == "low_rating_share":
        share = group["low_rating_share"]
        return None if share is None else 100.0 * share
    family, _, q = measure.partition("_")
    value = group["latency_ms" if family == "latency" else "ttft_ms"][q]
    return None if value is None else float(value)


def _dimension(name: str, where: str) -> str:
    """``name`` as stats know it (``user`` is ``attributes.user``); a ValueError otherwise."""
    if name == "user":
        return "attributes.user"
    if name in DIMENSIONS:
        return name
    if name.startswith("attributes.") and 0 < len(name) - len("attributes.") <= MAX_TEXT:
        return name
    known = ", ".join([*DIMENSIONS, "user", "attributes.KEY"])
    raise ValueError(f"{where}: unknown field {name[:100]!r}; expected one of {known}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=MAX_TEXT)


class _Watch(_Strict):
    """What rules and budgets share: a name, the events they look at, where they notify."""

    name: str = Field(min_length=1, max_length=200)
    filters: dict[str, str] = Field(default_factory=dict)
    group_by: str | None = None
    channels: list[str] = Field(default_factory=list, max_length=20)
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a name needs a visible character")
        if any(ord(c) < 32 for c in value):
            raise ValueError("a name has no control characters")
        return value

    @field_validator("filters")
    @classmethod
    def _filters(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_FILTERS:
            raise ValueError(f"{MAX_FILTERS} filters at most")
        out = {}
        for name, wanted in value.items():
            if wanted == "":
                raise ValueError(f"{name[:100]!r}: an empty value matches nothing")
            out[_dimension(name, "filters")] = wanted
        return out

    @field_validator("group_by")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        return None if value in (None, "") else _dimension(value, "group_by")

    @model_validator(mode="after")
    def _one_attribute(self) -> _Watch:
        # The aggregates are kept per attribute key: a query on two keys would read events.
        keys = {f for f in self.filters if f.startswith("attributes.")}
        if self.group_by and self.group_by.startswith("attributes."):
            keys.add(self.group_by)
        if len(keys) > 1:
            raise ValueError(
                "filters and group_by may name one attribute key between them (the stats"
                f" aggregates answer one at a time), got {', '.join(sorted(keys))}"
            )
        return self

    def event_filter(self) -> dict[str, Any]:
        """The filters as ``EventFilter`` arguments."""
        out: dict[str, Any] = {"attributes": {}}
        for name, value in self.filters.items():
            if name.startswith("attributes."):
                out["attributes"][name.removeprefix("attributes.")] = value
            else:
                out[name] = value
        return out


class Rule(_Watch):
    """An alert rule (see the module's docstring)."""

    kind: Literal["rule"] = "rule"
    description: str = Field(default="", max_length=2000)
    measure: str
    window: int = Field(ge=MIN_WINDOW, le=MAX_WINDOW)
    op: Literal["above", "below"] = "above"
    threshold: float
    compare: Literal["previous_window", "week_before"] | None = None
    min_events: int = Field(default=1, ge=0, le=10**9)
    severity: Literal["info", "warning", "critical"] = "warning"
    cooldown: int = Field(default=300, ge=0, le=MAX_WINDOW)

    @field_validator("name")
    @classmethod
    def _addressable(cls, value: str) -> str:
        # /api/v1/alerts/export and /import are the routes of those: a rule so named could
        # be made and never read, changed or deleted by its name.
        if value in ("export", "import"):
            raise ValueError(f"{value!r} names the API's {value}: pick another name")
        return value

    @field_validator("measure")
    @classmethod
    def _measure(cls, value: str) -> str:
        if value not in MEASURES:
            raise ValueError(
                f"unknown measure {value[:100]!r}; expected one of {', '.join(MEASURES)}"
            )
        return value

    @field_validator("window", "cooldown", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> int:
        return parse_duration(value)

    @field_validator("window")
    @classmethod
    def _whole_minutes(cls, value: int) -> int:
        # Windows end on a whole minute: then stats read only aggregates, never events.
        if value % 60:
            raise ValueError("a window is a whole number of minutes")
        return value

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value) or abs(value) > 1e15:
            raise ValueError("a finite number is needed")
        return value


class Budget(_Watch):
    """A cost budget (see the module's docstring)."""

    kind: Literal["budget"] = "budget"
    limit_usd: float = Field(gt=0, le=1e12)
    period: Literal["month", "day"] = "month"
    notify_at: list[float] = Field(
        default_factory=lambda: [0.5, 0.8, 1.0], min_length=1, max_length=10
    )

    @field_validator("notify_at")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if any(not (0 < f <= 10) for f in value):  # also refuses NaN
            raise ValueError("each fraction is above 0 and at most 10 (1 is the limit)")
        return sorted(set(value))


class _Webhook(_Strict):
    kind: Literal["webhook"]
    name: str = Field(min_length=1, max_length=200)
    url: str = Field(min_length=1, max_length=2048)
    secret: str | None = Field(default=None, max_length=256)
    format: Literal["json", "slack"] = "json"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (raises on a port out of range)
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("put no credentials in the URL: use the secret (it signs the body)")
        return value


class _Email(_Strict):
    kind: Literal["email"]
    name: str = Field(min_length=1, max_length=200)
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password: str | None = None
    sender: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[str] = Field(min_length=1, max_length=20)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not re.fullmatch(r"[^@\s,;<>]+@[^@\s,;<>]+", address) or len(address) > 320:
                raise ValueError(f"not an e-mail address: {address[:100]!r}")
        return value


class Channel(BaseModel):
    """Where notifications go: a webhook (generic JSON or Slack's body, HMAC-signed when it has
    a secret) or e-mail over SMTP."""

    channel: _Webhook | _Email = Field(discriminator="kind")


_WATCHES: dict[str, type[Rule] | type[Budget]] = {"rule": Rule, "budget": Budget}


def _describe(exc: ValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p not in ("channel", "webhook", "email"))
        message = err["msg"].removeprefix("Value error, ")
        out.append({"field": loc or "(body)", "error": message})
    return out


def validated(kind: str, payload: Any) -> Rule | Budget | _Webhook | _Email:
    """``payload`` (parsed JSON) as a rule, budget or channel; a 400 naming each bad field."""
    try:
        if kind == "channel":
            return Channel.model_validate({"channel": payload}).channel
        if not isinstance(payload, dict):
            raise ApiError(400, f"invalid {kind}: expected a JSON object")
        return _WATCHES[kind].model_validate({**payload, "kind": payload.get("kind", kind)})
    except ValidationError as exc:
        errors = _describe(exc)
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ApiError(
            400, f"invalid {kind}: {first['field']}: {first['error']}{more}", errors
        ) from None
