"""The store's side of alerts, on every backend: rules, budgets and channels by name, states
per group, history, and the evaluator's lease between processes."""

from __future__ import annotations

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
