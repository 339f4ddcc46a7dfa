"""The test-set part of the store contract, on every backend: sets are named per project and
versioned, a production call is a case once per set, and a run keeps one result per case."""

from __future__ import annotations

import pytest

from llmtap.store import NameTaken, Store


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
