"""The prompt-test runner in process (``llmtap.evals.runner.Runner``), against a real
server and the loopback fake provider: a run's view against what the server holds, runs cut
short (results the server does not take, a worker failing), a cost cap with no price, and an
answer no UTF-8 text holds. The CLI's end-to-end runs are in ``test_prompt_tests``."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from llmtap.api import ApiError
from llmtap.evals.api import TestsApi
from llmtap.evals.results import compare
from llmtap.evals.runner import Runner, RunOptions
from llmtap.fake_provider import FakeProvider

from .conftest import Project, tap_config
from .test_prompt_tests import _case


def run_once(
    api: TestsApi,
    project: Project,
    provider: FakeProvider,
    testset: dict[str, Any],
    options: RunOptions,
) -> dict[str, Any]:
    """A new run of ``testset`` under ``options``, its calls through the fake provider and
    recorded in ``project``: the run's outcome."""
    provider_args = {"api_key": "sk-fake", "base_url": provider.base_url}
    runner = Runner(api, provider_args, tap_config(project))
    calls = runner.plan(testset, options)
    return runner.run(testset, options, calls, runner.start(testset, options, calls))


def test_a_run_s_view_is_the_one_its_stored_results_give(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """A new run's view comes from the results it sent, each stored as new, not read back:
    it must be the view of what the server holds, case by case."""
    tag = uuid.uuid4().hex[:8]
    with TestsApi(project.server.url, project.key) as api:
        rated_well = {**_case(f"{tag} soccer"), "output": f"echo: Emoji for {tag} soccer"}
        made = api.create_testset(
            f"view-{tag}",
            source="cases",
            cases=[
                {**rated_well, "rating": 1.0},  # answered as before: passing
                {**_case(f"{tag} golf"), "output": "⛳", "rating": 1.0},  # answered otherwise
                _case("[[status:500]]"),  # the provider fails
                {**_case("chess"), "template_params": {}},  # cannot fill {sport}
            ],
        )
        testset = api.testset(made["testset"]["id"])
        options = RunOptions(
            model="gpt-4o-mini",
            template=[{"role": "user", "content": "Emoji for {sport}"}],
            max_retries=0,
            journal_dir=str(tmp_path),
        )
        outcome = run_once(api, project, provider, testset, options)
        stored = api.run(outcome["run_id"])
    assert {k: outcome[k] for k in ("summary", "baseline", "changes", "cases")} == compare(
        testset, stored
    )
    changes = outcome["changes"]
    assert (changes["passing"], changes["regression"], changes["error"]) == (1, 1, 2), changes
    assert stored["status"] == "finished" and stored["summary"]["done"] == 4


def _cut_short(
    project: Project,
    provider: FakeProvider,
    tmp_path: Path,
    failure: type[Exception],
    concurrency: int,
    progress: Any = None,
    set_deleted: bool = False,
) -> int:
    """A run of 300 cases that ends in ``failure`` (raised): how many of them it called.
    ``set_deleted``: the set (and the run with it) deleted once the run is started."""
    tag = uuid.uuid4().hex[:8]
    cases = [_case(f"{tag} {i}") for i in range(300)]
    with TestsApi(project.server.url, project.key) as api:
        testset = api.testset(api.create_testset(f"cut-{tag}", cases=cases)["testset"]["id"])
        provider_args = {"api_key": "sk-fake", "base_url": provider.base_url}
        runner = Runner(api, provider_args, tap_config(project))
        options = RunOptions(
            model="gpt-4o-mini", concurrency=concurrency, journal_dir=str(tmp_path)
        )
        calls = runner.plan(testset, options)
        run_id = runner.start(testset, options, calls)
        if set_deleted:
            api.delete_testset(testset["id"])
        with pytest.raises(failure):
            runner.run(testset, options, calls, run_id, progress)
    return sum(1 for r in provider.requests if tag in json.dumps(r["body"]))


def test_a_run_whose_results_cannot_be_kept_stops_paying(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """The server does not take the run's results (here: its set, and so the run, were
    deleted once it started): no further case is called (and paid for); those under way
    finish, journalled, and the error is raised."""

    called = _cut_short(project, provider, tmp_path, ApiError, 2, set_deleted=True)
    assert 0 < called < 150, called  # a batch's worth, not all 300


def test_a_worker_failing_stops_the_others(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """One worker failing (here the caller's progress callback) stops the run: the other
    workers finish the case in hand and take no other, rather than paying on for a run whose
    end is an error."""

    def progress(done: int, total: int, result: dict[str, Any]) -> None:
        if done == 5:
            raise RuntimeError("the progress bar broke")

    called = _cut_short(project, provider, tmp_path, RuntimeError, 4, progress)
    assert 5 <= called <= 15, called  # the five, and a case or two per worker


def test_a_cost_cap_needs_a_price_for_every_model(project: Project, provider: FakeProvider) -> None:
    """A cap counts a model without a price as free, so it could never stop the run: such a
    run is refused before it starts (the CLI, the pytest plugin and the API's users alike)."""
    name = f"unpriced-{uuid.uuid4().hex[:8]}"
    with TestsApi(project.server.url, project.key) as api:
        testset = api.testset(api.create_testset(name, cases=[_case("golf")])["testset"]["id"])
        runner = Runner(api, {"api_key": "sk-fake", "base_url": provider.base_url})
        options = RunOptions(model="a-model-nobody-prices", max_cost_usd=1.0)
        calls = runner.plan(testset, options)
        with pytest.raises(ValueError, match="needs a price for every model"):
            runner.start(testset, options, calls)
    runs = project.server.get("/api/v1/runs", project.key, testset=str(testset["id"]))
    assert runs.json()["runs"] == []


def test_an_answer_holding_half_a_surrogate_pair_is_kept(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """A provider's JSON may escape half of a UTF-16 pair, which no Unicode text holds: the
    case's answer is journalled and kept (the half replaced), and the run finishes with every
    result stored, where the server's refusal of the batch would have stopped it."""
    tag = uuid.uuid4().hex[:8]
    provider.script({f"{tag} odd": "\ud83c ok"})
    with TestsApi(project.server.url, project.key) as api:
        cases = [_case(f"{tag} odd"), _case(f"{tag} fine")]
        testset = api.testset(api.create_testset(f"odd-{tag}", cases=cases)["testset"]["id"])
        provider_args = {"api_key": "sk-fake", "base_url": provider.base_url}
        runner = Runner(api, provider_args, tap_config(project))
        options = RunOptions(model="gpt-4o-mini", journal_dir=str(tmp_path))
        calls = runner.plan(testset, options)
        outcome = runner.run(testset, options, calls, runner.start(testset, options, calls))
        stored = api.run(outcome["run_id"])
    assert outcome["status"] == "finished" and len(stored["results"]) == 2
    assert "? ok" in {r["output"] for r in stored["results"]}


def test_a_stored_pattern_that_backtracks_costs_its_case_a_second(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """A set's stored regex evaluator is written by whoever holds the project's admin key;
    one that backtracks without end on an output stops after its limit: that case's error,
    and the run finishes with the others scored."""
    tag = uuid.uuid4().hex[:8]
    hostile = "a" * 40 + "!"  # the fake provider answers "echo: " and the prompt
    with TestsApi(project.server.url, project.key) as api:
        made = api.create_testset(
            f"redos-{tag}",
            cases=[_case(hostile), _case("aaaa")],
            evaluators=["regex:^echo: (a|a)*$"],
        )
        testset = api.testset(made["testset"]["id"])
        options = RunOptions(
            model="gpt-4o-mini",
            template=[{"role": "user", "content": "{sport}"}],
            journal_dir=str(tmp_path),
        )
        started = time.perf_counter()
        outcome = run_once(api, project, provider, testset, options)
        elapsed = time.perf_counter() - started
    by_output = {row["new"]["output"]: row["new"] for row in outcome["cases"]}
    stuck, matched = by_output[f"echo: {hostile}"], by_output["echo: aaaa"]
    assert "searched for more than 1 s" in stuck["error"] and stuck["passed"] is False
    assert matched["passed"] is True and not matched.get("error")
    assert outcome["status"] == "finished" and outcome["summary"]["done"] == 2
    assert elapsed < 10, elapsed  # one search ran to its limit, not for ever


def test_a_template_in_libretto_s_roles_is_sent_in_openai_s(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """Libretto's templates name the assistant ``ai``; OpenAI's API refuses that role, so a
    run sends it as ``assistant``."""
    tag = uuid.uuid4().hex[:8]
    template = [
        {"role": "ai", "content": "Hello, I'm {name}!"},
        {"role": "user", "content": "Emoji for {sport}"},
    ]
    case = {**_case(f"{tag} chess"), "template_params": {"sport": f"{tag} chess", "name": "Bot"}}
    with TestsApi(project.server.url, project.key) as api:
        testset = api.testset(api.create_testset(f"roles-{tag}", cases=[case])["testset"]["id"])
        options = RunOptions(
            model="gpt-4o-mini", template=template, max_retries=0, journal_dir=str(tmp_path)
        )
        outcome = run_once(api, project, provider, testset, options)
    assert outcome["changes"]["error"] == 0, outcome
    (sent,) = [r["body"] for r in provider.requests if tag in json.dumps(r["body"])]
    assert [m["role"] for m in sent["messages"]] == ["assistant", "user"]
    assert sent["messages"][0]["content"] == "Hello, I'm Bot!"
