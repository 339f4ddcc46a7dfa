"""Cost through a real server: genai-prices' own figures, dated prices, provider prefixes and
dated model names, overrides set through the API and the CLI, unknown models listed."""

from __future__ import annotations

import subprocess
import time
from datetime import datetime, timezone
from typing import Any

import genai_prices
import pytest

from .conftest import LLMTAP, Project
from .test_server import event, post_events

WHEN = datetime(2025, 6, 1, tzinfo=timezone.utc)


def library(
    model: str, when: datetime = WHEN, context: Any = None, provider: Any = None, **usage: Any
) -> float:
    return float(
        genai_prices.calc_price(
            genai_prices.Usage(**usage),
            model,
            provider_id=provider,
            genai_request_timestamp=when,
            price_context=context,
        ).total_price
    )


def send(project: Project, **fields: Any) -> dict[str, Any]:
    e = event(started_at=fields.pop("started_at", WHEN.isoformat()), **fields)
    assert post_events(project, [e]).json()["stored"] == 1
    return project.event(e["id"])


def usage(i: int, o: int, cached: int = 0, reasoning: int = 0) -> dict[str, int]:
    return {
        "input_tokens": i,
        "output_tokens": o,
        "cached_tokens": cached,
        "reasoning_tokens": reasoning,
        "total_tokens": i + o,
    }


@pytest.mark.parametrize(
    "model, ref",
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("openai/gpt-4o", "gpt-4o"),  # provider prefix
        ("gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),  # dated suffix
        ("anthropic/claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022"),
    ],
)
def test_cost_is_the_price_library_s(project: Project, model: str, ref: str) -> None:
    stored = send(project, model=model, usage=usage(12_000, 3_000, cached=4_000))
    expected = library(ref, input_tokens=12_000, output_tokens=3_000, cache_read_tokens=4_000)
    assert expected > 0
    assert stored["cost_usd"] == pytest.approx(expected, rel=1e-9)
    # Cached tokens are priced apart: cheaper than the same tokens uncached.
    assert expected < library(ref, input_tokens=12_000, output_tokens=3_000)


def test_tokens_written_to_the_prompt_cache_are_priced(project: Project) -> None:
    """Anthropic's cache writes (sent through OpenTelemetry) cost more than input; the
    events API takes them too."""
    ref = "claude-3-5-haiku-20241022"
    tokens = {**usage(10_000, 500, cached=2_000), "cache_creation_tokens": 3_000}
    stored = send(project, model=ref, provider="anthropic", usage=tokens)
    assert stored["usage"]["cache_creation_tokens"] == 3_000
    expected = library(
        ref,
        input_tokens=10_000,
        output_tokens=500,
        cache_read_tokens=2_000,
        cache_write_tokens=3_000,
    )
    assert stored["cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert expected > library(ref, input_tokens=10_000, output_tokens=500, cache_read_tokens=2_000)


def test_a_fee_per_request_is_charged_once_not_per_token(project: Project) -> None:
    """Perplexity's sonar costs $12 per 1,000 requests beside its tokens: the fee is the
    call's, not spread over the tokens."""
    for tokens in ((1_000, 500), (100_000, 20_000)):
        stored = send(project, model="sonar", provider="api.perplexity.ai", usage=usage(*tokens))
        sonar: dict[str, Any] = {"model": "sonar", "provider": "perplexity"}
        expected = library(**sonar, input_tokens=tokens[0], output_tokens=tokens[1])
        assert stored["cost_usd"] == pytest.approx(expected, rel=1e-9)
        assert expected > library(**sonar) > 0  # a fee, and tokens


def test_the_service_tier_an_answer_names_is_its_price(project: Project) -> None:
    """OpenAI's flex and priority tiers have prices of their own: the answer's
    ``service_tier`` picks them (and the tokens of an answer without one, the standard's)."""
    when = datetime(2026, 12, 1, tzinfo=timezone.utc)
    costs = {}
    for tier in ("flex", "priority", None):
        response = {"model": "o3", "choices": [], **({"service_tier": tier} if tier else {})}
        stored = send(
            project,
            model="o3",
            usage=usage(1_000_000, 1_000_000),
            response=response,
            started_at=when.isoformat(),
        )
        context = {"service_tier": tier} if tier else None
        expected = library("o3", when, context, input_tokens=1_000_000, output_tokens=1_000_000)
        assert stored["cost_usd"] == pytest.approx(expected, rel=1e-9)
        costs[tier] = stored["cost_usd"]
    assert costs["flex"] < costs[None] < costs["priority"]


@pytest.mark.parametrize(
    "model, provider, price_provider",
    [
        ("openai/gpt-oss-120b", "api.groq.com", "groq"),
        ("deepseek/deepseek-chat", "openrouter.ai", "openrouter"),
    ],
)
def test_the_event_s_provider_prices_before_a_prefix_of_the_model_s_name(
    project: Project, model: str, provider: str, price_provider: str
) -> None:
    """A host that serves another lab's model (Groq, OpenRouter) names it ``lab/model``: the
    call is billed at the host's price, not the lab's."""
    stored = send(project, model=model, provider=provider, usage=usage(1_000_000, 1_000_000))
    expected = float(
        genai_prices.calc_price(
            genai_prices.Usage(input_tokens=1_000_000, output_tokens=1_000_000),
            model,
            provider_id=price_provider,
            genai_request_timestamp=WHEN,
        ).total_price
    )
    assert stored["cost_usd"] == pytest.approx(expected, rel=1e-9)


def test_audio_tokens_are_priced_as_audio(project: Project) -> None:
    """An answer's usage details tell how many tokens were audio (``gpt-audio``: several
    times text's price): they are priced at audio's rate, on the input and the output."""
    when = datetime(2026, 12, 1, tzinfo=timezone.utc)
    details = {
        "prompt_tokens": 1100,
        "completion_tokens": 1050,
        "prompt_tokens_details": {"audio_tokens": 1000, "cached_tokens": 0},
        "completion_tokens_details": {"audio_tokens": 1000, "reasoning_tokens": 0},
    }
    stored = send(
        project,
        model="gpt-audio",
        usage=usage(1100, 1050),
        response={"model": "gpt-audio", "choices": [], "usage": details},
        started_at=when.isoformat(),
    )
    expected = library(
        "gpt-audio",
        when,
        input_tokens=1100,
        output_tokens=1050,
        input_audio_tokens=1000,
        output_audio_tokens=1000,
    )
    assert stored["cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert expected > 5 * library("gpt-audio", when, input_tokens=1100, output_tokens=1050)


def test_reasoning_tokens_are_priced(project: Project) -> None:
    stored = send(project, model="o3-mini", usage=usage(1_000, 5_000, reasoning=4_000))
    expected = library(
        "o3-mini", input_tokens=1_000, output_tokens=5_000, output_reasoning_tokens=4_000
    )
    assert stored["cost_usd"] == pytest.approx(expected, rel=1e-9)


def test_an_event_is_priced_at_the_price_of_its_day(project: Project) -> None:
    # claude-opus-4-6 had long-context tiers until 2026-03-13, flat prices from then on.
    before, after = (
        datetime(2026, 3, 1, tzinfo=timezone.utc),
        datetime(2026, 4, 1, tzinfo=timezone.utc),
    )
    u = usage(300_000, 1_000)
    old = send(project, model="claude-opus-4-6", usage=u, started_at=before.isoformat())
    new = send(project, model="claude-opus-4-6", usage=u, started_at=after.isoformat())
    expected_old = library("claude-opus-4-6", before, input_tokens=300_000, output_tokens=1_000)
    expected_new = library("claude-opus-4-6", after, input_tokens=300_000, output_tokens=1_000)
    assert expected_old != expected_new
    assert old["cost_usd"] == pytest.approx(expected_old, rel=1e-9)
    assert new["cost_usd"] == pytest.approx(expected_new, rel=1e-9)


def test_unknown_models_are_null_and_listed_until_overridden(project: Project) -> None:
    for _ in range(3):
        send(project, model="acme-ft-1", usage=usage(1_000_000, 500_000, cached=200_000))
    send(project, model="gpt-4o-mini", usage=usage(10, 10))
    send(project, model="acme-ft-1", status="error")  # no usage: nothing to price
    assert {e["cost_usd"] for e in project.events(model="acme-ft-1")} == {None}
    prices = project.server.get("/api/v1/prices", project.key).json()
    assert prices["unpriced_models"] == [{"model": "acme-ft-1", "events": 3}]
    (group,) = project.server.get("/api/v1/stats", project.key, model="acme-ft-1").json()["groups"]
    assert group["cost_usd"] is None and group["unpriced_events"] == 4

    response = project.server.post(
        "/api/v1/prices",
        project.key,
        json={
            "model": "acme-ft-1",
            "input_per_mtok": 2.0,
            "output_per_mtok": 8.0,
            "cached_per_mtok": 1.0,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["repriced_events"] == 3
    expected = (800_000 * 2.0 + 200_000 * 1.0 + 500_000 * 8.0) / 1e6
    costs = [e["cost_usd"] for e in project.events(model="acme-ft-1")]
    assert sorted(costs, key=str) == sorted([expected] * 3 + [None], key=str)
    prices = project.server.get("/api/v1/prices", project.key).json()
    assert prices["unpriced_models"] == []
    assert prices["overrides"][0]["model"] == "acme-ft-1"
    (group,) = project.server.get("/api/v1/stats", project.key, model="acme-ft-1").json()["groups"]
    assert group["cost_usd"] == pytest.approx(3 * expected)
    # Events arriving later are priced at ingest with the override.
    assert send(project, model="acme-ft-1", usage=usage(1_000_000, 0))["cost_usd"] == 2.0

    # An override also replaces a library price, and the CLI sets and removes one.
    cli = [*LLMTAP]
    env_args = ["--url", project.server.url, "--api-key", project.key]
    out = subprocess.run(
        [*cli, "prices", "set", "gpt-4o-mini", "--input", "1", "--output", "1", *env_args],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "1 stored events priced again" in out.stdout
    assert project.events(model="gpt-4o-mini")[0]["cost_usd"] == pytest.approx(20 / 1e6)
    listed = subprocess.run(
        [*cli, "prices", "list", *env_args], capture_output=True, text=True, check=True
    ).stdout
    assert "gpt-4o-mini" in listed and "acme-ft-1" in listed
    subprocess.run(
        [*cli, "prices", "unset", "gpt-4o-mini", *env_args], check=True, capture_output=True
    )
    assert project.events(model="gpt-4o-mini")[0]["cost_usd"] == pytest.approx(
        library("gpt-4o-mini", input_tokens=10, output_tokens=10)
    )

    # What went wrong is one line, never a traceback; a model name an ingest key sent cannot
    # write a terminal's escape sequences.
    send(project, model="\x1b]0;PWNED\x07\x1b[2Jfake-model", usage=usage(10, 10))
    listed = subprocess.run([*cli, "prices", "list", *env_args], capture_output=True, text=True)
    assert "?]0;PWNED??[2Jfake-model" in listed.stdout and "\x1b" not in listed.stdout
    nowhere = ["--url", "http://127.0.0.1:1", "--api-key", project.key]
    for args, status, words in (
        (["prices", "list", *nowhere], 1, "cannot reach the server"),
        (["prices", "list", "--url", project.server.url, "--api-key", "wrong"], 1, "401"),
        (["prices", "unset", "no-such-model", *env_args], 1, "404"),
        (["prices", "set", "m", "--input", "1", "--output", "nan", *env_args], 2, "from 0 up"),
        (["prices", "set", "m", "--input", "-1", "--output", "1", *env_args], 2, "from 0 up"),
    ):
        done = subprocess.run([*cli, *args], capture_output=True, text=True)
        assert done.returncode == status and words in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_dated_override(project: Project) -> None:
    early = send(
        project,
        model="acme-ft-2",
        usage=usage(1_000_000, 0),
        started_at="2026-01-01T00:00:00+00:00",
    )
    late = send(
        project,
        model="acme-ft-2",
        usage=usage(1_000_000, 0),
        started_at="2026-02-01T00:00:00+00:00",
    )
    for since, price in [(None, 1.0), ("2026-01-15T00:00:00Z", 3.0)]:
        body = {"model": "acme-ft-2", "input_per_mtok": price, "output_per_mtok": 0}
        if since:
            body["since"] = since
        assert project.server.post("/api/v1/prices", project.key, json=body).status_code == 200
    assert project.event(early["id"])["cost_usd"] == 1.0
    assert project.event(late["id"])["cost_usd"] == 3.0


def test_bad_override_is_a_400(project: Project) -> None:
    response = project.server.post(
        "/api/v1/prices", project.key, json={"model": "x", "input_per_mtok": -1}
    )
    assert response.status_code == 400
    assert response.json()["ok"] is False


def test_another_process_prices_with_an_override_within_a_second(tmp_path: Any) -> None:
    """Each process caches a project's overrides; the one that changes them forgets its copy,
    the others (``--workers``, servers on one database) read them again within their ttl."""
    from llmtap.server.prices import Pricer
    from llmtap.store import open_store
    from llmtap.wire import Event

    db = str(tmp_path / "p.db")
    here, there = open_store(db), open_store(db)
    try:
        pid = here.ensure_project("p")
        mine = Event.model_validate(
            event(model="my-fine-tune", usage={"input_tokens": 1_000_000, "output_tokens": 0})
        )
        other = Pricer(there, ttl=0.3)
        assert other.event_cost(pid, mine) is None  # unpriced, and now cached
        prices = {"input_per_mtok": 5.0, "output_per_mtok": 10.0}
        here.set_price_override(pid, "my-fine-tune", 0, prices, lambda o: lambda body: None)
        time.sleep(0.4)
        assert other.event_cost(pid, mine) == pytest.approx(5.0)
    finally:
        here.close()
        there.close()


def test_an_event_priced_before_an_override_lands_is_priced_again(tmp_path: Any) -> None:
    """Two servers on one database: the second still holds the overrides it read (for its
    ttl) when the first sets one, and prices an event of the model at the old price (none)
    just after the repricing. The first prices the model's events again once every process
    has read the change: that event too ends priced (it had stayed unpriced for good)."""
    from .conftest import start_server, stop_server

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    here = start_server(tmp_path / "a")
    there = start_server(tmp_path / "b", db=str(here.db))
    try:
        key = here.new_key("race")
        one = {"model": "race-model", "usage": {"input_tokens": 1_000_000, "output_tokens": 0}}
        first, second = event(**one), event(**one)
        assert post_events(Project(key, there), [first]).json()["stored"] == 1  # read: none
        price = {"model": "race-model", "input_per_mtok": 5.0, "output_per_mtok": 10.0}
        assert here.post("/api/v1/prices", key, json=price).status_code == 200
        assert post_events(Project(key, there), [second]).json()["stored"] == 1
        deadline = time.monotonic() + 15
        costs: list[Any] = []
        while time.monotonic() < deadline:
            costs = [Project(key, here).event(e["id"])["cost_usd"] for e in (first, second)]
            if costs == [5.0, 5.0]:
                break
            time.sleep(0.2)
        assert costs == [pytest.approx(5.0), pytest.approx(5.0)]
        listed = here.get("/api/v1/prices", key).json()
        assert not any(m["model"] == "race-model" for m in listed["unpriced_models"])
    finally:
        stop_server(there)
        stop_server(here)
