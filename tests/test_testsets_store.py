"""The test-set part of the store contract, on every backend: sets are named per project and
versioned, a production call is a case once per set, and a run keeps one result per case."""

from __future__ import annotations

import pytest

from llmtap.store import EventFilter, KeyInfo, NameTaken, Store

from .test_retention_store import cut, dated


def _case(event_id: str | None, expected: str = "⚽") -> dict[str, object]:
    return {
        "event_id": event_id,
        "prompt_template_name": "emoji",
        "template": [{"role": "user", "content": "Emoji for {sport}"}],
        "template_params": {"sport": "soccer"},
        "model": "gpt-4o-mini",
        "settings": {"temperature": 0},
        "original_output": "🏀",
        "expected": expected,
        "expected_kind": "better",
        "tags": ["sports"],
    }


def test_sets_cases_versions_and_duplicates(store: Store) -> None:
    project, other = store.ensure_project("a"), store.ensure_project("b")
    sid = store.create_testset(project, "emoji", ["normalized"])
    with pytest.raises(NameTaken):
        store.create_testset(project, "emoji", [])
    assert store.create_testset(other, "emoji", []) != sid  # names are per project
    refused = store.add_cases(project, sid, [_case("e1"), _case("e2"), _case("e1"), _case(None)])
    assert refused == [2]
    assert store.add_cases(project, sid, [_case("e2"), _case(None)]) == [0]
    found = store.get_testset(project, sid)
    assert found is not None and found["version"] == 2 and found["case_count"] == 4
    case = found["cases"][0]
    assert case["template_params"] == {"sport": "soccer"} and case["tags"] == ["sports"]
    assert case["expected_kind"] == "better" and case["original_output"] == "🏀"
    assert store.get_testset(other, sid) is None  # another project's id reads nothing
    assert store.update_case(project, case["id"], "🥅", "better", ["x"])
    assert not store.update_case(other, case["id"], "🥅", "better", ["x"])
    found = store.get_testset(project, sid)
    assert found is not None and found["version"] == 3
    assert found["cases"][0]["expected"] == "🥅" and found["cases"][0]["tags"] == ["x"]
    assert store.delete_case(project, case["id"])
    assert not store.delete_case(project, case["id"])
    assert [s["case_count"] for s in store.list_testsets(project)] == [3]


def test_a_run_keeps_one_result_per_case(store: Store) -> None:
    project = store.ensure_project("a")
    sid = store.create_testset(project, "s", [])
    store.add_cases(project, sid, [_case("e1"), _case("e2")])
    found = store.get_testset(project, sid)
    assert found is not None
    first, second = (c["id"] for c in found["cases"])
    assert store.create_run(project, "r1", sid, {"model": "m"})
    assert not store.create_run(project, "r1", sid, {})
    assert not store.create_run(project, "r2", sid + 100, {})
    other_set = store.create_testset(project, "t", [])
    store.add_cases(project, other_set, [_case("e1")])
    assert store.run_case_ids(project, "r1") == {first, second}  # its own set's cases only
    assert store.run_case_ids(project, "r2") is None
    assert store.run_case_ids(store.ensure_project("b"), "r1") is None
    result = {"case_id": first, "output": "⚽", "passed": True, "scores": {"exact": {"score": 1}}}
    assert store.add_results(project, "r1", [result]) == 1
    again = {**result, "output": "billed twice?"}
    assert store.add_results(project, "r1", [again, {"case_id": second, "error": "boom"}]) == 1
    run = store.get_run(project, "r1")
    assert run is not None and run["status"] == "running" and run["testset_version"] == 1
    assert [r["output"] for r in run["results"]] == ["⚽", None]
    assert run["results"][0]["passed"] is True and run["results"][1]["passed"] is None
    assert store.finish_run(project, "r1", "finished", {"pass_rate": 0.5})
    run = store.get_run(project, "r1")
    assert run is not None and run["summary"] == {"pass_rate": 0.5} and run["finished_at"]
    assert [r["id"] for r in store.list_runs(project, sid)] == ["r1"]
    assert store.delete_testset(project, sid)
    assert store.get_run(project, "r1") is None and store.list_runs(project) == []


def test_deleting_events_deletes_the_cases_copied_from_them(store: Store) -> None:
    """An erasure (the API's and dashboard's delete) and retention's purge reach the copies:
    a case goes with its event, with its results, and its set becomes a new version; a case
    of another event, one imported without an event id, and another project's stay."""
    pid, other = store.ensure_project("p"), store.ensure_project("other")
    store.insert_events(dated(KeyInfo(1, pid, "p", "dev"), [0, 1, 2, 10]))
    events = sorted(store.list_events(pid, EventFilter(limit=10))[0], key=lambda e: e["started_at"])
    ev0, ev1, ev2, ev3 = (e["id"] for e in events)
    first = store.create_testset(pid, "first", [])
    second = store.create_testset(pid, "second", [])
    store.add_cases(pid, first, [_case(ev0), _case(ev1), _case(ev3), _case(None)])
    store.add_cases(pid, second, [_case(ev1), _case(ev2)])
    foreign = store.create_testset(other, "first", [])
    store.add_cases(other, foreign, [_case(ev0), _case(ev1)])  # the same ids, elsewhere

    def cases(project: int, sid: int) -> list[str | None]:
        found = store.get_testset(project, sid)
        assert found is not None
        return [c["event_id"] for c in found["cases"]]

    found = store.get_testset(pid, first)
    assert found is not None
    by_event = {c["event_id"]: c["id"] for c in found["cases"]}
    assert store.create_run(pid, "r1", first, {})
    results = [{"case_id": cid, "output": "x", "passed": True} for cid in by_event.values()]
    assert store.add_results(pid, "r1", results) == 4
    version = found["version"]

    assert store.delete_events(pid, ids=[ev1]) == 1
    assert cases(pid, first) == [ev0, ev3, None]
    assert cases(pid, second) == [ev2]
    found = store.get_testset(pid, first)
    assert found is not None and found["version"] == version + 1
    run = store.get_run(pid, "r1")
    assert run is not None
    assert {r["case_id"] for r in run["results"]} == {by_event[e] for e in (ev0, ev3, None)}

    # Retention, keeping the stats: ev0 and ev2 are past it; ev0's case goes.
    assert store.purge_before(pid, cut(5), keep_aggregates=True) == 2
    assert cases(pid, first) == [ev3, None]
    assert cases(pid, second) == []
    run = store.get_run(pid, "r1")
    assert run is not None
    assert {r["case_id"] for r in run["results"]} == {by_event[ev3], by_event[None]}
    assert cases(other, foreign) == [ev0, ev1]
