"""Stats through a real server, checked against values computed here from the events sent;
histogram percentiles within 5% of exact; templates and their revisions."""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtap.store import _hist

from ._stores import STORE_BACKENDS
from .conftest import Project, Server, server_on_each_backend
from .test_server import assert_error_shape, event

# Every test here runs on a server of each store backend.
server = pytest.fixture(scope="module", params=STORE_BACKENDS, name="server")(
    server_on_each_backend
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def iso(t: datetime) -> str:
    return t.isoformat()


def exact(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@given(st.lists(st.floats(min_value=0.05, max_value=1e6), min_size=1, max_size=300))
@settings(max_examples=200, deadline=None)
def test_histogram_percentiles_within_5_percent(values: list[float]) -> None:
    h = _hist.histogram(values)
    # Merged from stored halves, as a stats query merges buckets.
    half = len(values) // 2
    merged = _hist.decode(
        _hist.hist_add(
            _hist.encode(_hist.histogram(values[:half])),
            _hist.encode(_hist.histogram(values[half:])),
        )
    )
    assert merged == h
    for q, got in zip(
        (0.5, 0.9, 0.95, 0.99), _hist.percentiles(h, (0.5, 0.9, 0.95, 0.99)), strict=True
    ):
        want = exact(values, q)
        assert want is not None and got is not None
        assert abs(got - want) <= 0.05 * want


@pytest.fixture(scope="module")
def traffic(server: Server) -> dict[str, Any]:
    """One project with two environments and 400 events over three days, some rated."""
    rng = random.Random(5)
    name = f"stats-{uuid.uuid4().hex[:8]}"
    keys = {env: server.new_key(name, env) for env in ("prod", "dev")}
    sent: list[dict[str, Any]] = []
    for i in range(400):
        env = rng.choice(["prod", "prod", "dev"])
        template = rng.choice(["greet {name}", "bye {name}", "greet {name}!"])
        attrs: dict[str, Any] = {"tier": rng.choice([1, 2])}
        if rng.random() < 0.8:
            attrs["team"] = rng.choice(["red", "blue", "green"])
        e = event(
            model=rng.choice(["gpt-4o-mini", "gpt-4o", "acme-x"]),
            started_at=iso(T0 + timedelta(seconds=rng.randrange(3 * 86400))),
            status="error" if rng.random() < 0.1 else "ok",
            latency_ms=rng.lognormvariate(6, 0.8),
            ttft_ms=rng.lognormvariate(5, 0.5) if rng.random() < 0.7 else None,
            usage=usage(rng),
            prompt_template_name="greet" if template.startswith("greet") else "bye",
            template_text=template,
            chat_id=f"chat-{i % 7}",
            feedback_key=f"fk-{uuid.uuid4().hex}",
            attributes=attrs,
            request={"prompt": template.format(name=rng.choice(["ann", "bob"]))},
            output_text=rng.choice(["hello there", "goodbye friend", "a refund is on its way"]),
        )
        e["_environment"] = env
        sent.append(e)
    for env, key in keys.items():
        batch = [
            {k: v for k, v in e.items() if k != "_environment"}
            for e in sent
            if e["_environment"] == env
        ]
        response = server.post("/api/v1/events", key, json={"events": batch})
        assert response.json()["stored"] == len(batch), response.text
    ratings: dict[str, list[float]] = defaultdict(list)
    for e in rng.sample(sent, 60):
        for _ in range(rng.choice([1, 1, 2])):
            rating = rng.choice([0.0, 0.5, 1.0])
            ratings[e["id"]].append(rating)
            r = server.post(
                "/api/v1/feedback",
                keys["prod"],
                json={"feedback_key": e["feedback_key"], "rating": rating},
            )
            assert r.status_code == 200
    project = Project(keys["prod"], server)
    costs = {e["id"]: e["cost_usd"] for e in project.events(limit=1000)}
    assert len(costs) == 400
    for e in sent:
        e["cost_usd"] = costs[e["id"]]
        e["_ratings"] = ratings.get(e["id"], [])
    return {"project": project, "sent": sent}


def usage(rng: random.Random) -> dict[str, int]:
    """Input and output tokens; cached and reasoning tokens on some events only."""
    out = {"input_tokens": rng.randrange(1, 2000), "output_tokens": rng.randrange(1, 500)}
    if rng.random() < 0.6:
        out["cached_tokens"] = rng.randrange(0, out["input_tokens"])
    if rng.random() < 0.4:
        out["reasoning_tokens"] = rng.randrange(0, out["output_tokens"])
    return out


def _day(e: dict[str, Any]) -> str:
    t = datetime.fromisoformat(e["started_at"])
    return iso(t.replace(hour=0, minute=0, second=0))


def _hour(e: dict[str, Any]) -> str:
    t = datetime.fromisoformat(e["started_at"])
    return iso(t.replace(minute=0, second=0))


FIELDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "model": lambda e: e["model"],
    "environment": lambda e: e["_environment"],
    "status": lambda e: e["status"],
    "prompt_template_name": lambda e: e["prompt_template_name"],
    "day": _day,
    "hour": _hour,
    "attributes.team": lambda e: e["attributes"].get("team"),
}


def expected(events: list[dict[str, Any]], group_by: list[str]) -> dict[tuple[Any, ...], Any]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        key = tuple(FIELDS[g](e) for g in group_by)
        if "attributes.team" in group_by and key[group_by.index("attributes.team")] is None:
            continue  # events without the attribute are in no attribute group
        groups[key].append(e)
    return groups


def check(
    answer: dict[str, Any],
    events: list[dict[str, Any]],
    group_by: list[str],
    exact_percentiles: bool = False,
) -> None:
    want = expected(events, group_by)
    got = {tuple(g["key"][f] for f in group_by): g for g in answer["groups"]}
    assert set(got) == set(want)
    tolerance = 1e-9 if exact_percentiles else 0.05
    for key, evs in want.items():
        g = got[key]
        assert g["count"] == len(evs)
        assert g["errors"] == sum(e["status"] == "error" for e in evs)
        assert g["input_tokens"] == sum(e["usage"]["input_tokens"] for e in evs)
        assert g["output_tokens"] == sum(e["usage"]["output_tokens"] for e in evs)
        assert g["cached_tokens"] == sum(e["usage"].get("cached_tokens", 0) for e in evs)
        assert g["reasoning_tokens"] == sum(e["usage"].get("reasoning_tokens", 0) for e in evs)
        priced = [e["cost_usd"] for e in evs if e["cost_usd"] is not None]
        assert g["unpriced_events"] == len(evs) - len(priced)
        if priced:
            assert g["cost_usd"] == pytest.approx(sum(priced))
        else:
            assert g["cost_usd"] is None
        lat = [e["latency_ms"] for e in evs]
        ttft = [e["ttft_ms"] for e in evs if e["ttft_ms"] is not None]
        for q, name in [(0.5, "p50"), (0.9, "p90"), (0.95, "p95"), (0.99, "p99")]:
            assert g["latency_ms"][name] == pytest.approx(exact(lat, q), rel=tolerance)
        for q, name in [(0.5, "p50"), (0.95, "p95")]:
            want_ttft = exact(ttft, q)
            if want_ttft is None:
                assert g["ttft_ms"][name] is None
            else:
                assert g["ttft_ms"][name] == pytest.approx(want_ttft, rel=tolerance)
        ratings = [r for e in evs for r in e["_ratings"]]
        assert g["ratings"] == len(ratings)
        low = sum(r < 0.7 for r in ratings)  # the store's LOW_RATING
        assert g["low_ratings"] == low
        if ratings:
            assert g["avg_rating"] == pytest.approx(sum(ratings) / len(ratings))
            assert g["low_rating_share"] == pytest.approx(low / len(ratings))
        else:
            assert g["low_rating_share"] is None


def stats(project: Project, **params: Any) -> dict[str, Any]:
    response = project.server.get("/api/v1/stats", project.key, **params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "group_by",
    [
        ["model", "day"],
        ["environment", "status"],
        ["attributes.team"],
        ["prompt_template_name", "hour"],
        [],
    ],
)
def test_group_bys_over_everything(traffic: dict[str, Any], group_by: list[str]) -> None:
    answer = stats(traffic["project"], group_by=",".join(group_by))
    assert answer["source"] == "aggregates"
    check(answer, traffic["sent"], group_by)


def test_unaligned_time_range_and_filters(traffic: dict[str, Any]) -> None:
    start = T0 + timedelta(hours=1, minutes=7, seconds=13)
    end = T0 + timedelta(days=2, hours=5, minutes=3, seconds=1)
    chosen = [
        e
        for e in traffic["sent"]
        if start <= datetime.fromisoformat(e["started_at"]) < end
        and e["attributes"].get("team") == "red"
        and e["_environment"] == "prod"
    ]
    answer = stats(
        traffic["project"],
        group_by="model,hour",
        **{"from": iso(start), "to": iso(end), "attributes.team": "red", "environment": "prod"},
    )
    assert answer["source"] == "aggregates"
    check(answer, chosen, ["model", "hour"])
    assert len(answer["groups"]) > 10


def test_attribute_filter_with_attribute_group(traffic: dict[str, Any]) -> None:
    chosen = [e for e in traffic["sent"] if e["attributes"].get("team") == "blue"]
    answer = stats(
        traffic["project"], group_by="attributes.team,status", **{"attributes.team": "blue"}
    )
    check(answer, chosen, ["attributes.team", "status"])
    # Two attribute keys: computed from the events, exactly.
    chosen = [e for e in chosen if e["attributes"]["tier"] == 2]
    answer = stats(
        traffic["project"], group_by="model", **{"attributes.team": "blue", "attributes.tier": "2"}
    )
    assert answer["source"] == "events"
    check(answer, chosen, ["model"], exact_percentiles=True)


def test_filters_the_aggregates_cannot_answer(traffic: dict[str, Any]) -> None:
    chosen = [e for e in traffic["sent"] if e["chat_id"] == "chat-3"]
    answer = stats(traffic["project"], group_by="model", chat_id="chat-3")
    assert answer["source"] == "events"
    check(answer, chosen, ["model"], exact_percentiles=True)
    chosen = [e for e in traffic["sent"] if "refund" in e["output_text"]]
    answer = stats(traffic["project"], group_by="environment", q="refund")
    check(answer, chosen, ["environment"], exact_percentiles=True)


def test_bad_group_by(traffic: dict[str, Any]) -> None:
    project = traffic["project"]
    for bad in ["colour", "day,hour", "model,model"]:
        response = project.server.get("/api/v1/stats", project.key, group_by=bad)
        assert response.status_code == 400, bad
    assert project.server.get("/api/v1/stats", project.key, limit="3").status_code == 400


def test_templates_and_revisions(traffic: dict[str, Any]) -> None:
    project = traffic["project"]
    answer = project.server.get("/api/v1/templates", project.key).json()["templates"]
    by_name = {t["name"]: t for t in answer}
    assert set(by_name) == {"greet", "bye"}
    greet = by_name["greet"]
    assert {r["template"] for r in greet["revisions"]} == {"greet {name}", "greet {name}!"}
    for revision in greet["revisions"]:
        evs = [e for e in traffic["sent"] if e["template_text"] == revision["template"]]
        times = sorted(datetime.fromisoformat(e["started_at"]) for e in evs)
        assert revision["count"] == len(evs)
        assert revision["errors"] == sum(e["status"] == "error" for e in evs)
        assert datetime.fromisoformat(revision["first_seen"]) == times[0]
        assert datetime.fromisoformat(revision["last_seen"]) == times[-1]
        assert revision["latency_ms"]["p50"] == pytest.approx(
            exact([e["latency_ms"] for e in evs], 0.5), rel=0.05
        )
        ratings = [r for e in evs for r in e["_ratings"]]
        if ratings:
            assert revision["avg_rating"] == pytest.approx(sum(ratings) / len(ratings))
        # Events link to their revision.
        one = project.event(evs[0]["id"])
        assert one["template_revision"] == revision["revision"]
    assert greet["count"] == sum(e["prompt_template_name"] == "greet" for e in traffic["sent"])


def test_templates_are_listed_last_used_first_to_a_limit_or_by_name(
    traffic: dict[str, Any],
) -> None:
    """Every plain call's prompt is a template of its own, so a listing holds the ones last
    used, up to ``limit`` (500 by default); ``name`` gives one with all its revisions."""
    project = traffic["project"]
    full = {
        t["name"]: t
        for t in project.server.get("/api/v1/templates", project.key).json()["templates"]
    }
    newest = max(full.values(), key=lambda t: t["last_seen"])
    (first,) = project.server.get("/api/v1/templates", project.key, limit="1").json()["templates"]
    assert first["name"] == newest["name"]
    (named,) = project.server.get("/api/v1/templates", project.key, name="bye").json()["templates"]
    assert named == full["bye"]
    assert project.server.get("/api/v1/templates", project.key, name="none").json() == {
        "templates": []
    }
    for bad in ({"limit": "0"}, {"limit": "²"}, {"limit": "10001"}, {"name": ""}, {"x": "1"}):
        assert_error_shape(project.server.get("/api/v1/templates", project.key, **bad), 400)
