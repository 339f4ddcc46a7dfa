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
    evaluator = Evaluator(store, interval=60, clock=clock, delay=0)
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
    evaluator = Evaluator(store, interval=60, clock=clock, delay=0)
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
    evaluator = Evaluator(store, interval=60, clock=Clock(T0), delay=0)
    try:
        evaluator.run_once()
    finally:
        evaluator.close()
    got = {s["name"]: (s["state"], s["value"]) for s in store.alert_states(pid)}
    assert got == {"doubled": ("firing", 150.0), "halved": ("ok", 150.0)}


def test_a_change_from_a_denormal_rating_fires_shown_as_no_value_and_everything_reads(
    store: Store,
) -> None:
    pid = store.ensure_project("p")
    rule = {"measure": "avg_rating", "window": "1h", "threshold": 10, "cooldown": 0}
    put(store, pid, "rule", {**rule, "name": "rated", "compare": "previous_window"})
    store_events(store, pid, T0 - timedelta(minutes=90), 1, feedback_key="then")
    store_events(store, pid, T0 - timedelta(minutes=30), 1, feedback_key="now")
    store.insert_feedback(pid, "then", 5e-324, None)  # a key's rating: tiny, yet a number
    store.insert_feedback(pid, "now", 0.5, None)
    evaluator = Evaluator(store, interval=60, clock=Clock(T0), delay=0)
    try:
        evaluator.run_once()
    finally:
        evaluator.close()
    # From as good as 0 to 0.5: a change past any float, so a jump (infinite, as from 0).
    (state,) = store.alert_states(pid)
    assert (state["state"], state["value"]) == ("firing", None)
    json.dumps(store.alert_states(pid), allow_nan=False)  # what the API answers with
    (entry,) = store.alert_history(pid, name="rated")
    assert (entry["detail"]["current"], entry["detail"]["baseline"]) == (0.5, 5e-324)
    json.dumps(entry, allow_nan=False)


def test_quiet_groups_are_forgotten_and_a_new_group_by_starts_afresh(store: Store) -> None:
    pid = store.ensure_project("p")
    rule = {"name": "r", "measure": "requests", "window": "5m", "threshold": 2, "cooldown": 0}
    put(store, pid, "rule", {**rule, "group_by": "model"})
    for model in ("busy", "calm", *(f"once-{i}" for i in range(50))):
        n = 3 if model == "busy" else 1
        store_events(store, pid, T0 - timedelta(minutes=2), n, model=model)
    clock = Clock(T0)
    evaluator = Evaluator(store, interval=60, clock=clock, delay=0)
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
    evaluator = Evaluator(store, interval=60, clock=clock, delay=0)
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
    ea, eb = (
        Evaluator(a, interval=60, clock=Clock(T0), delay=0),
        Evaluator(b, interval=60, clock=Clock(T0), delay=0),
    )
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
    evaluator = Evaluator(store, interval=60, clock=clock, delay=0)
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


def _evaluator(store: Store, clock: Clock, **more: Any) -> Evaluator:
    return Evaluator(store, interval=60, clock=clock, **{"delay": 0, **more})


def test_a_slow_call_of_the_newest_minute_is_counted_after_the_delay(store: Store) -> None:
    # Calls are recorded when they end: five of 15 s, started at 11:59:50, arrive at 12:00:05,
    # after the cycle of 12:00:03 read the minute they belong to.
    pid = store.ensure_project("p")
    put(store, pid, "rule", {"name": "r", "measure": "requests", "window": "1m", "threshold": 0})
    clock = Clock(T0 + timedelta(seconds=3))
    evaluator = _evaluator(store, clock, delay=None)  # the setting's 60 s
    try:
        evaluator.run_once()
        store_events(store, pid, T0 - timedelta(seconds=10), 5, latency_ms=15_000)
        for minutes in (1, 2):
            clock.at = T0 + timedelta(minutes=minutes, seconds=3)
            evaluator.run_once()
        assert events(store, pid, "r") == ["firing"]
    finally:
        evaluator.close()


def test_too_few_events_to_decide_hold_the_state_and_a_count_is_known_without_events(
    store: Store,
) -> None:
    pid = store.ensure_project("p")
    window = {"window": "10m", "cooldown": "5m"}
    put(
        store,
        pid,
        "rule",
        {"name": "errors", "measure": "error_rate", "threshold": 20, "min_events": 20, **window},
    )
    put(store, pid, "rule", {"name": "slow", "measure": "latency_p95", "threshold": 5000, **window})
    put(
        store,
        pid,
        "rule",
        {"name": "quiet", "measure": "requests", "op": "below", "threshold": 5, **window},
    )
    store_events(store, pid, T0 - timedelta(minutes=5), 30, status="error", latency_ms=9000)
    clock = Clock(T0)
    evaluator = _evaluator(store, clock)
    try:
        evaluator.run_once()
        assert states(store, pid) == {"errors": ["firing"], "slow": ["firing"], "quiet": ["ok"]}
        # Twelve minutes on: ten calls, all failing (fewer than min_events), no latency.
        store_events(store, pid, T0 + timedelta(minutes=8), 10, status="error")
        clock.at = T0 + timedelta(minutes=12)
        evaluator.run_once()
        # Half an hour on: no traffic at all.
        clock.at = T0 + timedelta(minutes=40)
        evaluator.run_once()
        assert states(store, pid) == {
            "errors": ["firing"],
            "slow": ["firing"],
            "quiet": ["firing"],
        }
        assert events(store, pid, "errors") == events(store, pid, "slow") == ["firing"]
    finally:
        evaluator.close()


def test_a_rise_from_zero_is_a_jump_and_says_both_values(store: Store) -> None:
    pid = store.ensure_project("p")
    rule = {
        "name": "errors jump",
        "measure": "error_rate",
        "window": "1h",
        "threshold": 20,
        "compare": "previous_window",
        "min_events": 20,
    }
    put(store, pid, "rule", rule)
    put(store, pid, "rule", {**rule, "name": "spend", "measure": "cost", "min_events": 1})
    store_events(store, pid, T0 - timedelta(minutes=90), 100, cost=0.0)
    store_events(store, pid, T0 - timedelta(minutes=30), 40)
    store_events(store, pid, T0 - timedelta(minutes=30), 60, status="error", cost=1.0)
    evaluator = _evaluator(store, Clock(T0))
    try:
        evaluator.run_once()
    finally:
        evaluator.close()
    assert states(store, pid) == {"errors jump": ["firing"], "spend": ["firing"]}
    (entry,) = store.alert_history(pid, name="errors jump")
    detail = entry["detail"]
    assert (detail["current"], detail["baseline"], detail["value"]) == (60.0, 0.0, None)
    (spent,) = store.alert_history(pid, name="spend")
    assert (spent["detail"]["current"], spent["detail"]["baseline"]) == (60.0, 0.0)


def test_a_rule_disabled_or_deleted_loses_its_state_and_starts_afresh(store: Store) -> None:
    pid = store.ensure_project("p")
    rule = {"name": "errs", "measure": "errors", "window": "10m", "threshold": 2, "cooldown": 0}
    put(store, pid, "rule", rule)
    store_events(store, pid, T0 - timedelta(minutes=2), 3, status="error")
    clock = Clock(T0)
    evaluator = _evaluator(store, clock)
    try:
        evaluator.run_once()
        put(store, pid, "rule", {**rule, "enabled": False})
        clock.at = T0 + timedelta(days=3)
        evaluator.run_once()
        assert states(store, pid) == {}
        put(store, pid, "rule", rule)  # enabled again: a new burst is a new incident
        store_events(store, pid, clock.at - timedelta(minutes=2), 3, status="error")
        evaluator.run_once()
        assert events(store, pid, "errs") == ["firing", "firing"]

    finally:
        evaluator.close()


def test_a_resolved_group_keeps_its_cooldown_when_it_goes_quiet(store: Store) -> None:
    pid = store.ensure_project("p")
    rule = {
        "name": "r",
        "measure": "errors",
        "window": "2m",
        "threshold": 0,
        "cooldown": "30m",
        "group_by": "model",
    }
    put(store, pid, "rule", rule)
    clock = Clock(T0)
    evaluator = _evaluator(store, clock)
    try:
        store_events(store, pid, T0 - timedelta(minutes=1), 1, status="error")
        evaluator.run_once()
        for minutes in (31, 32):  # resolves at 31 (errors gone), then quiet
            clock.at = T0 + timedelta(minutes=minutes)
            evaluator.run_once()
        store_events(store, pid, T0 + timedelta(minutes=33), 1, status="error")
        clock.at = T0 + timedelta(minutes=34)
        evaluator.run_once()
        assert events(store, pid, "r") == ["firing", "resolved"]  # held: 3 min after resolving
        clock.at = T0 + timedelta(minutes=61, seconds=30)
        store_events(store, pid, T0 + timedelta(minutes=60), 1, status="error")
        evaluator.run_once()
        assert events(store, pid, "r") == ["firing", "resolved", "firing"]
    finally:
        evaluator.close()


def test_a_group_that_goes_quiet_while_firing_resolves_saying_so(store: Store) -> None:
    pid = store.ensure_project("p")
    rule = {"measure": "latency_p95", "window": "5m", "threshold": 1000, "cooldown": 0}
    put(store, pid, "rule", {**rule, "name": "slow", "group_by": "model"})
    store_events(store, pid, T0 - timedelta(minutes=1), 3, latency_ms=5000, model="old")
    clock = Clock(T0)
    evaluator = _evaluator(store, clock)
    try:
        evaluator.run_once()
        clock.at = T0 + timedelta(minutes=10)
        evaluator.run_once()
    finally:
        evaluator.close()
    resolved, fired = store.alert_history(pid, name="slow")
    assert (fired["event"], resolved["event"]) == ("firing", "resolved")
    assert resolved["detail"]["no_events"] is True


def test_a_cycle_that_outlived_its_lease_writes_nothing(store_backend: Any) -> None:
    db = store_backend.fresh_db()
    a, b = store_backend.open(db), store_backend.open(db)
    pid = a.ensure_project("p")
    put(a, pid, "rule", {"name": "r", "measure": "requests", "window": "1h", "threshold": 0})
    store_events(a, pid, T0 - timedelta(minutes=5), 3)
    eb = _evaluator(b, Clock(T0 + timedelta(minutes=4)))
    readings: list[float] = []

    def stalling() -> float:
        # A's cycle reads the clock when it starts and before it writes. Between the two it
        # stalls past its lease (three intervals): B takes the lease over and evaluates.
        readings.append(T0.timestamp())
        if len(readings) == 2:
            assert eb.run_once() == 1
        return readings[-1]

    ea = _evaluator(a, stalling)  # type: ignore[arg-type]
    try:
        assert ea.run_once() is None
        assert events(a, pid, "r") == ["firing"]  # B's alone
    finally:
        ea.close()
        eb.close()
        a.close()
        b.close()


def test_a_failing_receiver_does_not_hold_the_others_notifications_through_its_retries(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmtap.server.alerts.evaluate import test_note
    from llmtap.server.alerts.notify import Notifier

    from ._receivers import Webhook, wait_until

    monkeypatch.setenv("LLMTAP_ALERT_ALLOW_NETWORKS", "127.0.0.0/8")
    failing, working = Webhook(), Webhook()
    failing.status = 500
    rule = {"name": "r", "measure": "errors", "window": 300, "threshold": 0}
    outbox = []
    for project, hook in (("a", failing), ("b", working)):
        pid = store.ensure_project(project)
        put(store, pid, "channel", {"kind": "webhook", "name": "ops", "url": hook.url})
        put(store, pid, "rule", rule)
        note = {**test_note(project, pid, "rule", rule), "event": "firing"}
        outbox.append(
            {"project_id": pid, "id": project * 8, "kind": "rule", "name": "r"}
            | {"channel": "ops", "note": note, "at_us": 1}
        )
    store.record_alerts([], [], outbox)
    notifier = Notifier(store, timeout=5, retry_delay=60, threads=1)  # one thread for both
    try:
        assert notifier.deliver_due() == 2
        wait_until(lambda: working.bodies(), timeout=10, what="project b's notification")
        assert len(failing.received) == 1  # its second attempt waits a minute, on no thread
        (tried,) = store.alert_history(store.ensure_project("a"), name="r")
        assert (tried["event"], tried["detail"]["attempt"]) == ("failed", 1)
    finally:
        notifier.close()
        failing.close()
        working.close()
