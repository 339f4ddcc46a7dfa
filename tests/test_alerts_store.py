"""The store's side of alerts, on every backend: rules, budgets and channels by name, states
per group, history, and the evaluator's lease between processes."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from llmtap.store import Store
from tests._stores import StoreBackend

S = 1_000_000


def test_items_are_kept_by_kind_and_name_and_create_does_not_replace(store: Store) -> None:
    pid = store.ensure_project("p")
    other = store.ensure_project("q")
    assert store.put_alert_item(pid, "rule", "r1", {"measure": "cost"}, create=True)
    assert not store.put_alert_item(pid, "rule", "r1", {"measure": "errors"}, create=True)
    assert store.put_alert_item(pid, "budget", "r1", {"limit_usd": 5})
    assert [i["body"] for i in store.alert_items(pid, "rule")] == [{"measure": "cost"}]
    assert store.put_alert_item(pid, "rule", "r1", {"measure": "errors"})
    assert [i["body"] for i in store.alert_items(pid, "rule")] == [{"measure": "errors"}]
    assert store.alert_items(other, "rule") == []
    every = store.every_alert_item(["rule", "budget"])
    assert [(i["project"], i["kind"], i["name"]) for i in every] == [
        ("p", "budget", "r1"),
        ("p", "rule", "r1"),
    ]
    assert store.delete_alert_item(pid, "rule", "r1")
    assert not store.delete_alert_item(pid, "rule", "r1")
    assert store.alert_items(pid, "rule") == []


def test_items_come_by_name_with_when_they_were_made_and_changed(store: Store) -> None:
    pid = store.ensure_project("p")
    store.put_alert_item(pid, "rule", "slow", {"measure": "latency_p95"})
    store.put_alert_item(pid, "rule", "costly", {"measure": "cost"})
    time.sleep(0.01)
    store.put_alert_item(pid, "rule", "slow", {"measure": "latency_p99"})
    costly, slow = store.alert_items(pid, "rule")
    assert (costly["name"], slow["name"]) == ("costly", "slow")
    for item in (costly, slow):
        made = datetime.fromisoformat(item["created_at"])
        assert made.utcoffset() == timedelta(0)  # UTC, and saying so
        assert abs(datetime.now(timezone.utc) - made) < timedelta(minutes=1)
    assert slow["created_at"] < slow["updated_at"]  # replaced: made once, changed since
    assert costly["created_at"] == costly["updated_at"]


def test_states_are_one_per_group_and_history_is_newest_first(store: Store) -> None:
    pid = store.ensure_project("p")
    store.put_alert_item(pid, "rule", "r", {})
    state = {
        "project_id": pid,
        "kind": "rule",
        "name": "r",
        "group": {"model": "m"},
        "state": "firing",
        "value": 3.0,
        "threshold": 1.0,
        "events": 10,
        "since_us": 5 * S,
        "evaluated_us": 6 * S,
    }
    entry = {"project_id": pid, "kind": "rule", "name": "r", "group": {"model": "m"}}
    store.record_alerts([state], [{**entry, "at_us": 5 * S, "event": "firing"}])
    store.record_alerts(
        [{**state, "state": "resolved", "value": 0.5, "evaluated_us": 9 * S}],
        [{**entry, "at_us": 9 * S, "event": "resolved", "detail": {"value": 0.5}}],
    )
    (got,) = store.alert_states(pid)
    assert (got["state"], got["value"], got["group"], got["evaluated_us"]) == (
        "resolved",
        0.5,
        {"model": "m"},
        9 * S,
    )
    assert store.alert_states(store.ensure_project("q")) == []
    history = store.alert_history(pid, "rule", "r")
    assert [h["event"] for h in history] == ["resolved", "firing"]
    assert history[0]["detail"] == {"value": 0.5}
    store.delete_alert_item(pid, "rule", "r")
    assert store.alert_states(pid) == [] and store.alert_history(pid) == []


def test_one_holder_of_the_lease_until_it_expires(store_backend: StoreBackend) -> None:
    db = store_backend.fresh_db()
    a, b = store_backend.open(db), store_backend.open(db)
    assert a.take_lease("evaluator", "a", 100 * S, 30 * S)
    assert not b.take_lease("evaluator", "b", 110 * S, 30 * S)
    assert a.take_lease("evaluator", "a", 120 * S, 30 * S)  # renewed: until 150
    assert not b.take_lease("evaluator", "b", 149 * S, 30 * S)
    assert b.take_lease("evaluator", "b", 151 * S, 30 * S)  # a stopped renewing: b takes over
    assert not a.take_lease("evaluator", "a", 152 * S, 30 * S)
    b.drop_lease("evaluator", "a")  # not a's to drop
    assert not a.take_lease("evaluator", "a", 153 * S, 30 * S)
    b.drop_lease("evaluator", "b")
    assert a.take_lease("evaluator", "a", 154 * S, 30 * S)


def test_a_notification_is_claimed_by_one_caller_until_its_claim_runs_out(
    store_backend: StoreBackend,
) -> None:
    """The outbox: saved with its state, handed to one caller at a time (two stores on one
    database: two processes), handed again only when due and unclaimed, never once sent."""
    db = store_backend.fresh_db()
    a, b = store_backend.open(db), store_backend.open(db)
    pid = a.ensure_project("p")
    a.put_alert_item(pid, "rule", "r", {"name": "r"})  # what is recorded is of a rule
    state = {
        "project_id": pid,
        "kind": "rule",
        "name": "r",
        "group": {},
        "state": "firing",
        "value": 1.0,
        "threshold": 0.0,
        "events": 1,
        "since_us": 0,
        "evaluated_us": 0,
    }
    note = {"event": "firing", "id": "n1"}
    row = {"project_id": pid, "id": "o1", "kind": "rule", "name": "r", "channel": "ops"}
    a.record_alerts([state], [], [{**row, "note": note, "at_us": 5}])
    assert [s["state"] for s in b.alert_states(pid)] == ["firing"]
    (claimed,) = a.claim_notifications(1_000, 2_000)
    assert claimed == {**row, "note": note, "attempts": 0}
    assert b.claim_notifications(1_500, 9_000) == []  # a's claim holds until 2,000
    entry = {"project_id": pid, "kind": "rule", "name": "r", "at_us": 1_600, "event": "failed"}
    a.finish_notification(pid, "o1", "pending", 1, 3_000, 4_000, entry)
    assert b.claim_notifications(2_500, 9_000) == []  # not due before 3,000
    assert b.claim_notifications(3_500, 9_000) == []  # a still holds it until 4,000
    (again,) = b.claim_notifications(4_500, 9_000)  # a died: b takes it over
    assert again["attempts"] == 1
    b.finish_notification(pid, "o1", "sent", 2, 4_600, 0, {**entry, "event": "sent"})
    assert a.claim_notifications(10**12, 10**12 + 1) == []
    assert [h["event"] for h in a.alert_history(pid, name="r")] == ["sent", "failed"]


def test_nothing_is_recorded_for_a_rule_deleted_meanwhile(store: Store) -> None:
    """The evaluator reads the rules, then writes what changed: a rule deleted between the
    two leaves no state (firing for ever), no history and no notification behind."""
    pid = store.ensure_project("p")
    store.put_alert_item(pid, "rule", "kept", {"name": "kept"})
    store.put_alert_item(pid, "rule", "gone", {"name": "gone"})
    store.delete_alert_item(pid, "rule", "gone")
    rows = []
    for name in ("kept", "gone"):
        state = {"project_id": pid, "kind": "rule", "name": name, "group": {}, "state": "firing"}
        state |= {"value": 1.0, "threshold": 0.0, "events": 1, "since_us": 0, "evaluated_us": 0}
        entry = {"project_id": pid, "kind": "rule", "name": name, "at_us": 5, "event": "firing"}
        note = {"project_id": pid, "id": name, "kind": "rule", "name": name, "channel": "ops"}
        rows.append((state, entry, {**note, "note": {"event": "firing"}, "at_us": 5}))
    store.record_alerts(*([r[i] for r in rows] for i in range(3)))
    assert [s["name"] for s in store.alert_states(pid)] == ["kept"]
    assert [h["name"] for h in store.alert_history(pid)] == ["kept"]
    assert [n["name"] for n in store.claim_notifications(10, 20)] == ["kept"]
