"""The garbage collector's setting while a prompt-test run is under way (``evals._gc``): set
for the run, as it was after, shared by runs in several threads, and a process's own freeze
kept. One real run checks it from inside (an evaluator reads the collector)."""

from __future__ import annotations

import gc
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmtap.evals._gc import GEN0_THRESHOLD, run_collection
from llmtap.evals.api import TestsApi
from llmtap.evals.runner import RunOptions
from llmtap.fake_provider import FakeProvider

from .conftest import Project
from .test_prompt_runner import run_once
from .test_prompt_tests import _case


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Each test starts with nothing frozen and the default thresholds, and leaves it so."""
    threshold = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_a_run_collects_rarely_and_leaves_the_collector_as_it_found_it() -> None:
    with run_collection():
        assert gc.get_threshold() == (GEN0_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 0  # what existed before is out of the walks
        made_during = [object() for _ in range(10)]
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
    assert made_during


def test_a_higher_threshold_of_the_caller_s_is_kept_during_the_run() -> None:
    gc.set_threshold(50_000, 20, 20)
    with run_collection():
        assert gc.get_threshold() == (50_000, 20, 20)
    assert gc.get_threshold() == (50_000, 20, 20)


def test_a_process_s_own_freeze_stays() -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()  # less any frozen object freed meanwhile (exact it is not)
    made_since = [[] for _ in range(10_000)]  # what a second freeze would add
    with run_collection():
        assert 0 < gc.get_freeze_count() < frozen + len(made_since)  # not frozen again
    assert 0 < gc.get_freeze_count() < frozen + len(made_since)  # nor undone by the run


def test_runs_in_several_threads_restore_the_setting_when_the_last_ends() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def first() -> None:
        with run_collection():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with run_collection():
            second_in.set()
            first_out.wait(5)
            # The first run ended: this one still runs with the run's setting.
            seen["during"] = (gc.get_threshold(), gc.get_freeze_count())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    (threshold, frozen) = seen["during"]
    assert threshold[0] == GEN0_THRESHOLD and frozen > 0
    assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0


def test_a_run_that_fails_restores_the_collector() -> None:
    with pytest.raises(RuntimeError), run_collection():
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0


# What the evaluator below saw of the collector, case by case.
SEEN: list[tuple[tuple[int, ...], int]] = []


def collector_seen(output: str, case: dict[str, Any]) -> float:
    """A user's evaluator (``python:tests.test_run_gc:collector_seen``): notes the
    collector's setting while the run scores."""
    SEEN.append((gc.get_threshold(), gc.get_freeze_count()))
    return 1.0


def test_a_real_run_scores_with_the_run_s_setting_and_ends_with_the_caller_s(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    SEEN.clear()
    tag = uuid.uuid4().hex[:8]
    with TestsApi(project.server.url, project.key) as api:
        made = api.create_testset(
            f"gc-{tag}", source="cases", cases=[_case(f"{tag} {sport}") for sport in "abc"]
        )
        testset = api.testset(made["testset"]["id"])
        options = RunOptions(
            model="gpt-4o-mini",
            evaluators=["python:tests.test_run_gc:collector_seen"],
            journal_dir=str(tmp_path),
        )
        outcome = run_once(api, project, provider, testset, options)
    assert outcome["summary"]["done"] == 3 and outcome["summary"]["passed"] == 3
    assert len(SEEN) == 6  # each case's new output, and its original (the baseline)
    assert all(threshold[0] == GEN0_THRESHOLD and frozen > 0 for threshold, frozen in SEEN)
    assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0
