"""What a call cost: prices from ``genai-prices`` (bundled with the package, dated, per token
kind; it never fetches at run time unless its ``UpdatePrices`` is started, which llmtap does
not do), or a project's own price overrides.

``GET /api/v1/prices`` lists a project's overrides and the models it has events of without a
price; ``POST /api/v1/prices`` sets an override, ``DELETE /api/v1/prices?model=M[&since=T]``
removes one. Setting or removing one prices that model's stored events again.

Token semantics are OpenAI's: ``input_tokens`` includes ``cached_tokens`` (read from the prompt
cache) and ``cache_creation_tokens`` (written to it: Anthropic's, through OpenTelemetry),
``output_tokens`` includes ``reasoning_tokens``; each part is priced at its own rate.
"""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime, time, timezone
from functools import lru_cache
from time import monotonic
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..store import Store, to_us
from ..wire import MAX_PRICE_PER_MTOK, Event, check_instant, parse_instant
from .auth import project_wide_key
from .errors import ApiError

__all__ = ["Billing", "PriceOverride", "Pricer", "billing_of", "library_cost", "override_cost"]

Usage = dict[str, Any]
log = logging.getLogger("llmtap.server")


# OpenTelemetry's names of providers (``gen_ai.provider.name``; the dotted ones would read as
# API hosts) as the price library's ids.
_OTEL_PROVIDERS = {
    "aws.bedrock": "aws",
    "azure.ai.inference": "azure",
    "azure.ai.openai": "azure",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "gcp.vertex_ai": "google",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
}


@lru_cache(maxsize=4096)
def _match(model: str, provider: str | None) -> tuple[dict[str, str], str] | None:
    """How genai-prices knows ``model``: (provider argument, model ref), or None. Tries the
    event's provider (an id or an API host: ``openai/gpt-oss-120b`` on Groq is Groq's price),
    then a provider prefix (``openai/gpt-4o``), then the model name alone (dated suffixes like
    ``-2024-08-06`` match by the library's own rules)."""
    from genai_prices import Usage as LibUsage
    from genai_prices import calc_price

    attempts: list[tuple[dict[str, str], str]] = []
    if provider:
        provider = _OTEL_PROVIDERS.get(provider, provider)
        key = "provider_api_url" if "." in provider else "provider_id"
        value = f"https://{provider}/" if key == "provider_api_url" else provider
        attempts.append(({key: value}, model))
    if "/" in model:
        prefix, rest = model.split("/", 1)
        attempts += [({"provider_id": prefix}, rest), ({}, rest)]
    attempts.append(({}, model))
    for kwargs, ref in attempts:
        try:
            calc_price(LibUsage(input_tokens=1), ref, **kwargs)  # type: ignore[call-overload]
        except LookupError:
            continue
        return kwargs, ref
    return None


def _tokens(usage: Usage) -> tuple[int, int, int, int, int]:
    """Input, output, cached, reasoning and cache-writing tokens; the parts no larger than
    their wholes (cached and written tokens together no more than the input)."""
    input_tokens = usage.get("input_tokens") or 0
    output_tokens = usage.get("output_tokens") or 0
    cached = min(usage.get("cached_tokens") or 0, input_tokens)
    written = min(usage.get("cache_creation_tokens") or 0, input_tokens - cached)
    reasoning = min(usage.get("reasoning_tokens") or 0, output_tokens)
    return input_tokens, output_tokens, cached, reasoning, written


# A service tier (the answer's ``service_tier``: OpenAI's flex, priority...) is priced as the
# library prices it; past this length it is no tier the library knows.
_TIER_CHARS = 32


class Billing(NamedTuple):
    """What an answer says of how it is billed, beside its usage: the service tier it was
    served at, and how many of its input and output tokens were audio (dearer than text)."""

    tier: str | None = None
    audio_input: int = 0
    audio_output: int = 0


STANDARD = Billing()  # what an answer that tells nothing is billed as


def billing_of(response: Any) -> Billing:
    """The billing an answer (OpenAI's, as stored) tells, when it tells."""
    if not isinstance(response, dict):
        return STANDARD
    tier = response.get("service_tier")
    usage = response.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return Billing(
        tier if isinstance(tier, str) and 0 < len(tier) <= _TIER_CHARS else None,
        _audio(usage, "prompt_tokens_details", "input_tokens_details"),
        _audio(usage, "completion_tokens_details", "output_tokens_details"),
    )


def _audio(usage: dict[str, Any], *details: str) -> int:
    for name in details:  # chat completions' name, then the Responses API's
        found = usage.get(name)
        if isinstance(found, dict):
            tokens = found.get("audio_tokens")
            if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0:
                return tokens
    return 0


@lru_cache(maxsize=8192)
def _linear_rates(
    model: str, provider: str | None, day: date, tier: str | None = None
) -> tuple[float, ...] | None:
    """USD per request (a fee some models have), and per input, cached, output, reasoning,
    cache-writing, audio input and audio output token on ``day`` at the service ``tier``,
    asked of the library itself, when the model's price that day is linear in tokens (no
    long-context tiers, no time-of-day prices); None otherwise. Pricing an event is then a
    few multiplications instead of ~100 us in the library."""
    from genai_prices import Usage as LibUsage
    from genai_prices import calc_price
    from genai_prices.data_snapshot import get_snapshot
    from genai_prices.types import ModelPrice, TieredPrices, TimeOfDateConstraint

    found = _match(model, provider)
    if found is None:
        return None
    kwargs, ref = found
    context = {"service_tier": tier} if tier else None
    _, info = get_snapshot().find_provider_model(
        ref, None, kwargs.get("provider_id"), kwargs.get("provider_api_url")
    )
    if not isinstance(info.prices, ModelPrice) and any(
        isinstance(p.constraint, TimeOfDateConstraint) for p in info.prices
    ):
        return None
    when = datetime.combine(day, time(12), timezone.utc)  # start dates are whole UTC days
    if any(isinstance(v, TieredPrices) for v in vars(info.get_prices(when, context)).values()):
        return None
    m = 1_000_000

    def price(**tokens: int) -> float:
        result = calc_price(  # type: ignore[call-overload]
            LibUsage(**tokens), ref, genai_request_timestamp=when, price_context=context, **kwargs
        )
        return float(result.total_price)

    fee = price()

    def per_token(**tokens: int) -> float:
        return (price(**tokens) - fee) / m

    return (
        fee,
        per_token(input_tokens=m),
        per_token(input_tokens=m, cache_read_tokens=m),
        per_token(output_tokens=m),
        per_token(output_tokens=m, output_reasoning_tokens=m),
        per_token(input_tokens=m, cache_write_tokens=m),
        per_token(input_tokens=m, input_audio_tokens=m),
        per_token(output_tokens=m, output_audio_tokens=m),
    )


def library_cost(
    model: str,
    provider: str | None,
    usage: Usage,
    started_at: datetime,
    billing: Billing = STANDARD,
) -> float | None:
    """The cost in USD from genai-prices at the price in force at ``started_at`` (at the
    service tier and with the audio tokens the answer tells of); None when the library has
    no price for the model."""
    from genai_prices import Usage as LibUsage
    from genai_prices import calc_price

    found = _match(model, provider)
    if found is None:
        return None
    kwargs, ref = found
    input_tokens, output_tokens, cached, reasoning, written = _tokens(usage)
    # Audio tokens are of the input's uncached part, and of the output's answer.
    audio_in = min(billing.audio_input, input_tokens - cached - written)
    audio_out = min(billing.audio_output, output_tokens - reasoning)
    day = started_at.astimezone(timezone.utc).date()
    rates = _linear_rates(model, provider, day, billing.tier)
    if rates is not None:
        return (
            rates[0]
            + (input_tokens - cached - written - audio_in) * rates[1]
            + cached * rates[2]
            + (output_tokens - reasoning - audio_out) * rates[3]
            + reasoning * rates[4]
            + written * rates[5]
            + audio_in * rates[6]
            + audio_out * rates[7]
        )
    lib_usage = LibUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cached or None,
        cache_write_tokens=written or None,
        output_reasoning_tokens=reasoning or None,
        input_audio_tokens=audio_in or None,
        output_audio_tokens=audio_out or None,
    )
    result = calc_price(  # type: ignore[call-overload]
        lib_usage,
        ref,
        genai_request_timestamp=started_at,
        price_context={"service_tier": billing.tier} if billing.tier else None,
        **kwargs,
    )
    return float(result.total_price)


def override_cost(override: dict[str, Any], usage: Usage) -> float:
    """The cost at a project's own prices (USD per million tokens); cached input tokens at
    the cached rate (else the input rate), reasoning tokens at the reasoning rate (else the
    output rate); tokens written to the prompt cache at the input rate (an override has no
    rate of its own for them)."""
    input_tokens, output_tokens, cached, reasoning, _ = _tokens(usage)
    pin, pout = override["input_per_mtok"], override["output_per_mtok"]
    pcached = override.get("cached_per_mtok")
    preason = override.get("reasoning_per_mtok")
    return (
        (input_tokens - cached) * pin
        + cached * (pcached if pcached is not None else pin)
        + (output_tokens - reasoning) * pout
        + reasoning * (preason if preason is not None else pout)
    ) / 1e6


def cost(
    model: str | None,
    provider: str | None,
    usage: Usage | None,
    started_at: datetime,
    overrides: list[dict[str, Any]],
    billing: Billing = STANDARD,
) -> float | None:
    """What a call cost: the project's override in force at ``started_at`` if it has one for
    the model, else the library's price (with the answer's ``billing``: its service tier and
    audio tokens); None without usage or without a price."""
    if not model or not usage or not any(_tokens(usage)):
        return None
    started_us = to_us(started_at)
    in_force = [o for o in overrides if o["model"] == model and o["since_us"] <= started_us]
    if in_force:
        return override_cost(max(in_force, key=lambda o: o["since_us"]), usage)
    return library_cost(model, provider, usage, started_at, billing)


class Pricer:
    """Prices events at ingest, with each project's overrides cached for ``ttl`` seconds: the
    process that changes them forgets its copy at once, the others (``--workers``, several
    servers on one database) read them again within the ``ttl``."""

    def __init__(self, store: Store, ttl: float = 1.0) -> None:
        self._store = store
        self.ttl = ttl
        self._overrides: dict[int, tuple[float, list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    def overrides(self, project_id: int) -> list[dict[str, Any]]:
        now = monotonic()
        found = self._overrides.get(project_id)
        if found is None or now - found[0] > self.ttl:
            found = (now, self._store.price_overrides(project_id))
            with self._lock:
                self._overrides[project_id] = found
        return found[1]

    def forget(self, project_id: int) -> None:
        with self._lock:
            self._overrides.pop(project_id, None)

    def event_cost(self, project_id: int, event: Event) -> float | None:
        """The event's cost; a failure to price is logged and leaves the cost unknown, it never
        loses the event."""
        usage = event.usage.model_dump() if event.usage else None
        try:
            return cost(
                event.model,
                event.provider,
                usage,
                event.started_at,
                self.overrides(project_id),
                billing_of(event.response),
            )
        except Exception:
            log.exception("cannot price model %r", event.model)
            return None


def _body_cost(overrides: list[dict[str, Any]]) -> Any:
    def cost_of(body: dict[str, Any]) -> float | None:
        started = parse_instant(body["started_at"])
        billing = billing_of(body.get("response"))
        return cost(
            body.get("model"), body.get("provider"), body.get("usage"), started, overrides, billing
        )

    return cost_of


def _price(*default: None) -> Any:
    # Finite and bounded: a price is multiplied into every cost the stats sum.
    return Field(*default, ge=0, le=MAX_PRICE_PER_MTOK, allow_inf_nan=False)


class PriceOverride(BaseModel):
    """The body of ``POST /api/v1/prices``: USD per million tokens."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=512)
    input_per_mtok: float = _price()
    output_per_mtok: float = _price()
    cached_per_mtok: float | None = _price(None)
    reasoning_per_mtok: float | None = _price(None)
    since: datetime | None = None  # in force from then on; default: always

    @field_validator("since")
    @classmethod
    def _sane(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return None if value is None else check_instant(value, "since")


def _since_us(since: datetime | None) -> int:
    if since is None:
        return 0
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    return to_us(since)


def _prices_answer(store: Store, project_id: int) -> dict[str, Any]:
    return {
        "overrides": [
            {k: v for k, v in o.items() if k != "since_us"}
            for o in store.price_overrides(project_id)
        ],
        "unpriced_models": store.unpriced_models(project_id),
    }


async def list_prices(request: Request) -> JSONResponse:
    state = request.app.state
    key = await project_wide_key(request, "read", "prices")
    return JSONResponse(await run_in_threadpool(_prices_answer, state.store, key.project_id))


async def set_price(request: Request) -> JSONResponse:
    from .ingest import parse_json, read_body

    state = request.app.state
    key = await project_wide_key(request, "admin", "prices")
    payload = await run_in_threadpool(parse_json, await read_body(request, state.max_body_bytes))
    try:
        override = PriceOverride.model_validate(payload)
    except ValidationError as exc:
        errors = [{"field": ".".join(map(str, e["loc"])), "error": e["msg"]} for e in exc.errors()]
        raise ApiError(400, "invalid price override", errors) from None
    prices = override.model_dump(exclude={"model", "since"})
    return await _change(request, key.project_id, override.model, _since_us(override.since), prices)


async def delete_price(request: Request) -> JSONResponse:
    state = request.app.state
    key = await project_wide_key(request, "admin", "prices")
    model = request.query_params.get("model")
    if not model:
        raise ApiError(400, "model: required")
    since = request.query_params.get("since")
    try:
        since_us = _since_us(parse_instant(since) if since else None)
    except (ValueError, OverflowError):  # not a time, or one before year 1 in UTC
        raise ApiError(400, f"since: expected an ISO 8601 time, got {since!r}") from None
    overrides = await run_in_threadpool(state.store.price_overrides, key.project_id)
    known = {(o["model"], o["since_us"]) for o in overrides}
    if (model, since_us) not in known:
        raise ApiError(404, f"no price override for {model!r} from {since or 'the start'}")
    return await _change(request, key.project_id, model, since_us, None)


async def _change(
    request: Request, project_id: int, model: str, since_us: int, prices: dict[str, Any] | None
) -> JSONResponse:
    state = request.app.state
    pricer: Pricer = state.pricer
    try:
        repriced = await run_in_threadpool(
            state.store.set_price_override, project_id, model, since_us, prices, _body_cost
        )
    finally:
        pricer.forget(project_id)
    _reprice_later(state.store, project_id, model, pricer)
    answer = await run_in_threadpool(_prices_answer, state.store, project_id)
    return JSONResponse({"ok": True, "repriced_events": repriced, **answer})


# Seconds past a change of overrides when the model's events are priced again: an event
# priced before the change (by a process whose copy of the overrides is up to a ttl old, or by
# this one between pricing and storing it) lands after the repricing and would keep the old
# price for good.
SETTLE_AFTER_TTL = 2.0


def _reprice_later(store: Store, project_id: int, model: str, pricer: Pricer) -> None:
    def again() -> None:
        try:
            store.reprice(project_id, model, _body_cost)
        except Exception:  # the store closing with the server, say: logged, not raised
            log.exception("cannot price %r's events again after its override changed", model)
        finally:
            pricer.forget(project_id)

    timer = threading.Timer(pricer.ttl + SETTLE_AFTER_TTL, again)
    timer.daemon = True
    timer.start()
