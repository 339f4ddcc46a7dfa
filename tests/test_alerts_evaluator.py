"""The evaluator on a real store, its clock injected (as the server runs it, minus the
schedule): the cooldown against flapping, a budget's period turning, a change against the
previous window, a late event counted in its own window."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from llmtap.server.alerts.evaluate import Evaluator
from llmtap.server.alerts.rules import validated
from llmtap.store import Store, event_row
from llmtap.wire import Event

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


def store_events(
    store: Store, pid: int, at: datetime, n: int, cost: float | None = None, **fields: Any
) -> None:
    rows = []
    for _ in range(n):
        event = Event.model_validate(
            {
                "id": str(uuid.uuid4()),
                "api": "chat",
                "model": "m",
                "status": "ok",
                "started_at": at.isoformat(),
                "request": {},
                **fields,
            }
        )
        rows.append(event_row(event, pid, "dev", None, cost, 0))
    store.insert_events(rows)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at.timestamp()


def put(store: Store, pid: int, kind: str, body: dict[str, Any]) -> None:
    store.put_alert_item(pid, kind, body["name"], validated(kind, body).model_dump(mode="json"))


def states(store: Store, pid: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in store.alert_states(pid):
        out.setdefault(s["name"], []).append(s["state"])
    return out


def events(store: Store, pid: int, name: str) -> list[str]:
    return [h["event"] for h in reversed(store.alert_history(pid, name=name))]


def test_a_state_is_held_for_the_cooldown_so_a_rule_does_not_flap(store: Store) -> None:
    pid = store.ensure_project("p")
    put(
        store,
        pid,
        "rule",
        {"name": "r", "measure": "errors", "window": "10m", "threshold": 2, "cooldown": "5m"},
    )
    clock = Clock(T0)
    evaluator = Evaluator(store, interval=60, clock=clock)
    try:
        store_events(store, pid, T0 - timedelta(minutes=5), 3, status="error")
        evaluator.run_once()
        assert states(store, pid) == {"r": ["firing"]}
        # Two minutes later the errors are still in the window; nine minutes later they are
        # not, but the state is held five minutes from when it began: still firing.
        for minutes in (2, 4):
            clock.at = T0 + timedelta(minutes=minutes)
            evaluator.run_once()
        clock.at = T0 + timedelta(minutes=6)
        evaluator.run_once()
        assert states(store, pid) == {"r": ["resolved"]}
        # Errors again a minute after resolving: held resolved until five minutes passed.
        store_events(store, pid, T0 + timedelta(minutes=6), 3, status="error")
        clock.at = T0 + timedelta(minutes=8)
        evaluator.run_once()
        assert states(store, pid) == {"r": ["resolved"]}
        clock.at = T0 + timedelta(minutes=11, seconds=30)
        evaluator.run_once()
        assert states(store, pid) == {"r": ["firing"]}
        assert events(store, pid, "r") == ["firing", "resolved", "firing"]
    finally:
        evaluator.close()


def test_a_budget_turns_with_its_period_and_notifies_again(store: Store) -> None:
    pid = store.ensure_project("p")
    put(
        store, pid, "budget", {"name": "b", "limit_usd": 10, "period": "day", "notify_at": [0.5, 1]}
    )
    clock = Clock(T0)
    evaluator = Evaluator(store, interval=60, clock=clock)
    try:
        store_events(store, pid, T0 - timedelta(hours=6), 12, cost=1.0)
        evaluator.run_once()
        evaluator.run_once()
        (state,) = store.alert_states(pid)
        assert state["state"] == "firing" and state["extra"]["notified"] == [0.5, 1.0]
        # 12 dollars in the 12 hours since midnight: 24 forecast for the day.
        assert abs(state["extra"]["forecast"] - 24.0) < 0.1
        clock.at = T0 + timedelta(days=1)
        evaluator.run_once()
        (state,) = store.alert_states(pid)
        assert (state["state"], state["value"], state["extra"]["notified"]) == ("resolved", 0, [])
        store_events(store, pid, T0 + timedelta(days=1) - timedelta(hours=1), 6, cost=1.0)
        evaluator.run_once()
        assert events(store, pid, "b") == ["budget", "resolved", "budget"]
    finally:
        evaluator.close()


def test_a_change_against_the_previous_window_in_percent(store: Store) -> None:
    pid = store.ensure_project("p")
    rule = {"measure": "requests", "window": "1h", "threshold": 100, "compare": "previous_window"}
    put(store, pid, "rule", {**rule, "name": "doubled", "cooldown": 0})
    put(store, pid, "rule", {**rule, "name": "halved", "op": "below", "threshold": -40})
    store_events(store, pid, T0 - timedelta(minutes=90), 10)
    store_events(store, pid, T0 - timedelta(minutes=30), 25)
    evaluator = Evaluator(store, interval=60, clock=Clock(T0))
    try:
        evaluator.run_once()
    finally:
        evaluator.close()
    got = {s["name"]: (s["state"], s["value"]) for s in store.alert_states(pid)}
    assert got == {"doubled": ("firing", 150.0), "halved": ("ok", 150.0)}


def test_a_change_from_a_denormal_rating_is_no_value_and_the_states_still_read(
    store: Store,
) -> None:
    pid = store.ensure_project("p")
    rule = {"measure": "avg_rating", "window": "1h", "threshold": 10, "cooldown": 0}
    put(store, pid, "rule", {**rule, "name": "rated", "compare": "previous_window"})
    store_events(store, pid, T0 - timedelta(minutes=90), 1, feedback_key="then")
    store_events(store, pid, T0 - timedelta(minutes=30), 1, feedback_key="now")
    store.insert_feedback(pid, "then", 5e-324, None)  # a key's rating: tiny, yet a number
    store.insert_feedback(pid, "now", 0.5, None)
    evaluator = Evaluator(store, interval=60, clock=Clock(T0))
    try:
        evaluator.run_once()
    finally:
        evaluator.close()
    (state,) = store.alert_states(pid)
    assert (state["state"], state["value"]) == ("ok", None)
    json.dumps(store.alert_states(pid), allow_nan=False)  # what the API answers with


def test_quiet_groups_are_forgotten_and_a_new_group_by_starts_afresh(store: Store) -> None:
    pid = store.ensure_project("p")
    rule = {"name": "r", "measure": "requests", "window": "5m", "threshold": 2, "cooldown": 0}
    put(store, pid, "rule", {**rule, "group_by": "model"})
    for model in ("busy", "calm", *(f"once-{i}" for i in range(50))):
        n = 3 if model == "busy" else 1
        store_events(store, pid, T0 - timedelta(minutes=2), n, model=model)
    clock = Clock(T0)
    evaluator = Evaluator(store, interval=60, clock=clock)
    try:
        evaluator.run_once()
        assert len(store.alert_states(pid)) == 52
        clock.at = T0 + timedelta(minutes=10)  # nothing in the window any more
        evaluator.run_once()  # busy resolves (a note): the others are gone
        assert [(s["group"], s["state"]) for s in store.alert_states(pid)] == [
            ({"model": "busy"}, "resolved")
        ]
        clock.at += timedelta(minutes=1)
        evaluator.run_once()
        assert store.alert_states(pid) == []
        assert events(store, pid, "r") == ["firing", "resolved"]

        store_events(store, pid, clock.at - timedelta(minutes=1), 3, model="m")
        clock.at += timedelta(minutes=1)
        evaluator.run_once()
        assert [s["state"] for s in store.alert_states(pid)] == ["firing"]
        put(store, pid, "rule", {**rule, "group_by": "status"})
        evaluator.run_once()  # the model's group is not resolved: it is no longer asked for
        assert [(s["group"], s["state"]) for s in store.alert_states(pid)] == [
            ({"status": "ok"}, "firing")
        ]
        assert events(store, pid, "r") == ["firing", "resolved", "firing", "firing"]
    finally:
        evaluator.close()


def test_a_late_event_counts_in_its_own_window_not_now(store: Store) -> None:
    pid = store.ensure_project("p")
    put(store, pid, "rule", {"name": "r", "measure": "requests", "window": "5m", "threshold": 0})
    clock = Clock(T0)
    evaluator = Evaluator(store, interval=60, clock=clock)
    try:
        evaluator.run_once()
        store_events(store, pid, T0 - timedelta(hours=2), 50)  # arrives now, happened then
        clock.at = T0 + timedelta(minutes=1)
        evaluator.run_once()
        assert store.alert_states(pid)[0]["state"] == "ok"
        assert store.alert_states(pid)[0]["value"] == 0
    finally:
        evaluator.close()


def test_two_evaluators_on_one_database_one_evaluates(store_backend: Any) -> None:
    db = store_backend.fresh_db()
    a, b = store_backend.open(db), store_backend.open(db)
    ea, eb = Evaluator(a, interval=60, clock=Clock(T0)), Evaluator(b, interval=60, clock=Clock(T0))
    try:
        assert ea.run_once() == 0 and eb.run_once() is None
        ea.close()  # gives the lease up: the other takes over at once
        assert eb.run_once() == 0
    finally:
        eb.close()


def test_a_share_of_low_ratings_fires_and_resolves_as_ratings_come(store: Store) -> None:
    pid = store.ensure_project("p")
    rule = {"measure": "low_rating_share", "window": "1h", "threshold": 40, "cooldown": 0}
    put(store, pid, "rule", {**rule, "name": "unhappy"})
    put(
        store,
        pid,
        "rule",
        {"name": "cache", "measure": "cached_tokens", "window": "1h", "threshold": 50},
    )
    for i in range(4):
        store_events(
            store,
            pid,
            T0 - timedelta(minutes=10),
            1,
            feedback_key=f"k{i}",
            usage={"input_tokens": 100, "cached_tokens": 25},
        )
    clock = Clock(T0)
    evaluator = Evaluator(store, interval=60, clock=clock)
    try:
        for key, rating in [("k0", 0.9), ("k1", 0.8), ("k2", 0.3)]:
            store.insert_feedback(pid, key, rating, None)
        evaluator.run_once()
        got = {s["name"]: (s["state"], s["value"]) for s in store.alert_states(pid)}
        assert got == {"unhappy": ("ok", pytest.approx(100 / 3)), "cache": ("firing", 100.0)}
        store.insert_feedback(pid, "k3", 0.1, None)  # 2 of 4 low: 50 %
        clock.at = T0 + timedelta(minutes=1)
        evaluator.run_once()
        assert {s["name"]: s["value"] for s in store.alert_states(pid)}["unhappy"] == 50.0
        # Both low ones rated again, high: 2 of 6 low, 33 %.
        store.insert_feedback(pid, "k2", 1.0, None)
        store.insert_feedback(pid, "k3", 1.0, None)
        clock.at = T0 + timedelta(minutes=2)
        evaluator.run_once()
        assert events(store, pid, "unhappy") == ["firing", "resolved"]
    finally:
        evaluator.close()
