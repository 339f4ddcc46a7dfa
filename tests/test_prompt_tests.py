"""Prompt tests from production, end to end (issue 15): real calls and feedback through the
SDK, a test set made from them by ``llmtap testsets``, revisions run by ``llmtap test`` (a
subprocess, with the caller's OPENAI_* settings) against the loopback fake provider, scripted
so that one revision improves on production and another regresses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx2
import pytest
from selectolax.lexbor import LexborHTMLParser

import llmtap
from llmtap.fake_provider import FakeProvider
from llmtap.store import open_store

from .conftest import LLMTAP, Project, Server, tap_config
from .test_dashboard_http import login

SPORTS = ("soccer", "tennis", "golf", "chess")


def cli(
    project: Project, provider: FakeProvider, *args: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LLMTAP_URL": project.server.url,
        "LLMTAP_API_KEY": project.key,
        "OPENAI_API_KEY": "sk-fake",
        "OPENAI_BASE_URL": provider.base_url,
        "LLMTAP_FLUSH_INTERVAL": "0.05",
    }
    return subprocess.run(
        [*LLMTAP, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def _production(project: Project, provider: FakeProvider, tag: str) -> str:
    """Four production calls of template ``sport-emoji-TAG`` with their feedback: two rated
    well, one rated badly with a better response, one rated badly without."""
    provider.script(
        {
            f"{tag} Emoji for soccer": "⚽",
            f"{tag} Emoji for tennis": "🎾",
            f"{tag} Emoji for golf": "🏌",
            f"{tag} Emoji for chess": "pawn",
        }
    )
    name = f"sport-emoji-{tag}"
    template = [
        {"role": "system", "content": f"Give one emoji. {tag}"},
        {"role": "user", "content": "Emoji for {sport}"},
    ]
    feedback = {
        "soccer": {"rating": 1.0},
        "tennis": {"rating": 0.9},
        "golf": {"rating": 0.1, "better_response": "⛳"},
        "chess": {"rating": 0.0},
    }
    client = llmtap.Client(
        api_key="sk-fake", base_url=provider.base_url, llmtap=tap_config(project)
    )
    try:
        for sport in SPORTS:
            answer = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=llmtap.TemplateChat(template, {"sport": sport}),
                temperature=0,
                llmtap={"prompt_template_name": name},
            )
            key = answer.model_extra["llmtap_feedback_key"]
            client.send_feedback(feedback_key=key, **feedback[sport])
        assert client.flush(10)
    finally:
        client.close()
    return name


def _revision(tmp: Path, tag: str, answers: dict[str, str]) -> Path:
    """A new template revision in a file, and the fake provider's answers to it."""
    marker = f"rev-{uuid.uuid4().hex[:6]}-{tag}"
    path = tmp / f"{marker}.json"
    template = [
        {"role": "system", "content": f"Answer with one emoji only. {marker}"},
        {"role": "user", "content": "Emoji for {sport}"},
    ]
    path.write_text(json.dumps(template))
    return path, {f"{marker} Emoji for {sport}": reply for sport, reply in answers.items()}


def _run_id(stderr: str) -> str:
    return next(line.split()[1] for line in stderr.splitlines() if line.startswith("run "))


def test_feedback_becomes_a_test_set_and_gates_two_revisions(
    server: Server, provider: FakeProvider, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    project_name = f"prompts-{tag}"
    project = Project(server.new_key(project_name), server)
    template_name = _production(project, provider, tag)
    made = cli(
        project,
        provider,
        "testsets",
        "create",
        f"emoji-{tag}",
        "--from-feedback",
        "--template",
        template_name,
    )
    assert made.returncode == 0, made.stderr
    assert "added 4 case(s)" in made.stdout
    again = cli(project, provider, "testsets", "create", f"emoji-{tag}", "--from-feedback")
    assert again.returncode == 1 and "409" in again.stderr  # one set per name
    listed = cli(project, provider, "testsets", "list")
    assert f"emoji-{tag}" in listed.stdout and "normalized" in listed.stdout

    better, answers = _revision(
        tmp_path, tag, {"soccer": "⚽", "tennis": "🎾.", "golf": "⛳", "chess": "♟️"}
    )
    provider.script(answers)
    junit = tmp_path / "better.xml"
    good = cli(
        project,
        provider,
        "test",
        f"emoji-{tag}",
        "--template",
        str(better),
        "--model",
        "gpt-4o-mini",
        "--min-pass",
        "0.9",
        "--max-regressions",
        "0",
        "--junit",
        str(junit),
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert "pass rate 100.0% (baseline, original outputs: 50.0%)" in good.stdout
    assert "0 regression(s), 2 fixed" in good.stdout and "estimated cost $" in good.stderr
    # Each case side by side: its parameters, what it expects, old and new, scores, ms, cost.
    header, _, *rows = good.stdout.splitlines()
    assert header.split()[:4] == ["case", "change", "parameters", "expected"]
    golf = next(r for r in rows if '"sport": "golf"' in r)
    assert "⛳" in golf and "(must differ)" in next(r for r in rows if "chess" in r)
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "4" and suite.get("failures") == "0"
    good_run = _run_id(good.stderr)
    # Every call of the run was recorded, tagged with it, under the template it filled.
    recorded = project.events(
        **{"attributes.llmtap_run": good_run, "attributes.llmtap_role": "case"}
    )
    assert len(recorded) == 4
    assert {e["prompt_template_name"] for e in recorded} == {template_name}

    worse, answers = _revision(
        tmp_path, tag, {"soccer": "⚽", "tennis": "a tennis ball", "golf": "🏌", "chess": "pawn"}
    )
    provider.script(answers)
    junit = tmp_path / "worse.xml"
    bad = cli(
        project,
        provider,
        "test",
        f"emoji-{tag}",
        "--template",
        str(worse),
        "--model",
        "gpt-4o-mini",
        "--max-regressions",
        "0",
        "--junit",
        str(junit),
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "1 regression(s), more than --max-regressions 0" in bad.stderr
    assert "pass rate 25.0%" in bad.stdout
    # Regressions come first: the tennis case, that passed in production.
    first = bad.stdout.splitlines()[2].split()
    assert first[1] == "regression"
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "3"
    failures = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert "passed before" in (failures[0].find("failure").get("message") or "")  # type: ignore[union-attr]

    # The two runs compared through the API: the worse one against the better one.
    bad_run = _run_id(bad.stderr)
    view = project.server.get(f"/api/v1/runs/{bad_run}", project.key, baseline=good_run).json()
    assert view["baseline"]["run"] == good_run and view["baseline"]["pass_rate"] == 1.0
    assert [row["change"] for row in view["cases"]] == [
        "regression",
        "regression",
        "regression",
        "passing",
    ]
    old = {row["case"]["template_params"]["sport"]: row["old"]["output"] for row in view["cases"]}
    assert old["golf"] == "⛳"
    # The production revision itself (--revision, a prefix of its id), the case's model:
    # production's answers again, so no change from the baseline.
    revisions = project.server.get("/api/v1/templates", project.key).json()["templates"]
    # The runs' calls were recorded under the template's name too: production's is the oldest.
    revision = next(t for t in revisions if t["name"] == template_name)["revisions"][-1]
    same = cli(project, provider, "test", f"emoji-{tag}", "--revision", revision["revision"][:8])
    assert same.returncode == 0, same.stdout + same.stderr
    assert "pass rate 50.0% (baseline, original outputs: 50.0%)" in same.stdout
    assert "0 regression(s), 0 fixed" in same.stdout
    _pages(server, project_name, view, good_run, bad_run)
    _replay(project, provider, tmp_path, tag)


def _pages(server: Server, name: str, view: dict[str, Any], good: str, bad: str) -> None:
    """The set, the run and the comparison of two runs, as a logged-in user sees them."""
    testset_id = view["testset"]["id"]
    with login(server) as browser:
        listed = browser.get("/testsets", params={"project": name})
        assert listed.status_code == 200 and view["testset"]["name"] in listed.text
        page = browser.get(f"/testsets/{testset_id}", params={"project": name})
        assert page.status_code == 200
        assert good in page.text and bad in page.text and "must differ" in page.text
        compared = browser.get(f"/runs/{bad}", params={"project": name, "baseline": good})
        assert compared.status_code == 200
        rows = LexborHTMLParser(compared.text).css("table.events tbody tr")
        assert [r.css_first("td:nth-child(2)").text() for r in rows] == [
            "regression",
            "regression",
            "regression",
            "passing",
        ]
        assert "estimated $" in compared.text  # the run's estimate, before it ran
        # The page's download link: the whole run as compared, as JSON.
        link = LexborHTMLParser(compared.text).css_first("a[download]")
        assert link is not None
        exported = browser.get(link.attributes["href"] or "")
        assert exported.json()["baseline"]["run"] == good
        assert exported.json()["cases"][0]["change"] == "regression"
        as_json = browser.get(f"/runs/{bad}", params={"project": name, "format": "json"})
        assert as_json.json()["baseline"]["run"] is None  # the original outputs
        assert as_json.json()["summary"]["regressions"] == 1
        elsewhere = browser.get(f"/runs/{bad}", params={"project": name, "baseline": "nope"})
        assert elsewhere.status_code == 404


def _replay(project: Project, provider: FakeProvider, tmp: Path, tag: str) -> None:
    """The event page shows the replay command; the command reruns the call with another
    template, recorded as a child of the original, both answers side by side."""
    original = next(
        e
        for e in project.events(prompt_template_name=f"sport-emoji-{tag}")
        if "llmtap_run" not in (e.get("attributes") or {})
    )
    with login(project.server) as browser:
        page = browser.get(f"/events/{original['id']}", params={"project": f"prompts-{tag}"})
    assert f"llmtap replay {original['id']} --model gpt-4o-mini" in page.text
    template, answers = _revision(tmp, tag, {s: f"replayed {s}" for s in SPORTS})
    provider.script(answers)
    done = cli(project, provider, "replay", original["id"], "--template", str(template))
    assert done.returncode == 0, done.stderr
    assert "replayed" in done.stdout and original["output_text"] in done.stdout
    children = [
        e
        for e in project.events(prompt_template_name=f"sport-emoji-{tag}")
        if e.get("parent_event_id") == original["id"]
    ]
    assert len(children) == 1 and children[0]["output_text"].startswith("replayed")


def _case(sport: str, **extra: Any) -> dict[str, Any]:
    return {
        "prompt_template_name": "plain",
        "template_params": {"sport": sport},
        "input": [{"role": "user", "content": f"Emoji for {sport}"}],
        "output": "?",
        "rating": 0.0,
        **extra,
    }


def _import(
    project: Project, provider: FakeProvider, tmp: Path, name: str, lines: list[dict[str, Any]]
) -> None:
    path = tmp / f"{name}.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = cli(project, provider, "testsets", "import", name, str(path))
    assert done.returncode == 0, done.stderr
    assert f"added {len(lines)} case(s)" in done.stdout


def test_bad_cases_get_their_own_errors_and_the_run_finishes(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    name = f"faults-{tag}"
    _import(
        project,
        provider,
        tmp_path,
        name,
        [
            _case("soccer"),
            _case("[[status:500]]"),  # the provider fails
            {**_case("tennis"), "template_params": {}},  # cannot fill {sport}
            _case("[[delay:5]]"),  # slower than --timeout
        ],
    )
    template = tmp_path / "t.txt"
    template.write_text(f"{tag} Emoji for {{sport}}")  # a text template
    provider.script({f"{tag} Emoji for soccer": "⚽"})
    started = time.monotonic()
    done = cli(
        project,
        provider,
        "test",
        name,
        "--template",
        str(template),
        "--model",
        "gpt-4o-mini",
        "--timeout",
        "1",
        "--evaluator",
        "judge:must be an emoji",
    )
    assert done.returncode == 0, done.stdout + done.stderr  # no threshold asked
    assert time.monotonic() - started < 60
    run = project.server.get(f"/api/v1/runs/{_run_id(done.stderr)}", project.key, raw="1").json()
    assert run["status"] == "finished" and len(run["results"]) == 4
    errors = [r["error"] or "" for r in run["results"]]
    assert any("provider: InternalServerError" in e for e in errors), errors
    assert any("cannot fill the template: the case has no parameter sport" in e for e in errors)
    assert any("provider: APITimeoutError" in e for e in errors), errors
    # The judge answered the fake provider's echo, not a verdict: that case's error, kept
    # with the judge's prompt and answer.
    judged = next(r for r in run["results"] if r["output"] == "⚽")
    verdict = judged["scores"]["judge:must be an emoji"]
    assert verdict["score"] is None and "not a verdict" in verdict["reason"]
    assert "must be an emoji" in verdict["detail"]["prompt"] and verdict["detail"]["answer"]
    assert judged["passed"] is False and "judge" in judged["error"]


def test_a_run_resumes_only_under_its_own_set(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """``--resume`` with another set's name would call (and pay for) every case of that set,
    none of which the run has: refused before any call."""
    tag = uuid.uuid4().hex[:8]
    for name in (f"ours-{tag}", f"theirs-{tag}"):
        _import(project, provider, tmp_path, name, [_case(f"{name} golf")])
    done = cli(project, provider, "test", f"ours-{tag}", "--model", "gpt-4o-mini")
    assert done.returncode == 0, done.stderr
    sent = len(provider.requests)
    resumed = cli(project, provider, "test", f"theirs-{tag}", "--resume", _run_id(done.stderr))
    assert resumed.returncode == 2 and "is not a run of the set" in resumed.stderr
    assert len(provider.requests) == sent


def test_the_cost_cap_stops_the_run(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    name = f"cap-{tag}"
    _import(
        project,
        provider,
        tmp_path,
        name,
        [_case(s, model="priced") for s in ("a", "b", "c", "d", "e", "f")],
    )
    # $1 a token, in and out: each case costs dollars, at the project's own price.
    price = {"model": "priced", "input_per_mtok": 1_000_000, "output_per_mtok": 1_000_000}
    assert project.server.post("/api/v1/prices", project.key, json=price).status_code == 200
    done = cli(project, provider, "test", name, "--concurrency", "1", "--max-cost", "60")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "stopped at its cost cap" in done.stderr and "estimated cost $" in done.stderr
    run = project.server.get(f"/api/v1/runs/{_run_id(done.stderr)}", project.key, raw="1").json()
    assert run["status"] == "stopped"
    assert 1 <= len(run["results"]) < 6
    assert sum(r["cost_usd"] for r in run["results"]) <= 60
    # Resumed under the same cap, what the run spent already counts: no case more is called.
    calls = len(project.events(model="priced"))
    again = cli(
        project, provider, "test", name, "--concurrency", "1", "--max-cost", "60",
        "--resume", run["id"],
    )  # fmt: skip
    assert again.returncode == 1 and "stopped at its cost cap" in again.stderr, again.stderr
    after = project.server.get(f"/api/v1/runs/{run['id']}", project.key, raw="1").json()
    assert len(after["results"]) == len(run["results"])
    assert len(project.events(model="priced")) == calls
    spent = sum(r["cost_usd"] for r in run["results"])
    assert after["summary"]["spent_usd"] == pytest.approx(spent)


def test_the_estimate_and_the_cost_cap_count_the_judge_s_calls(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """A judge billed per case is part of what a run costs: in the estimate shown before it
    starts, and in what each case reserves under the cap, so a cheap model judged by a dear
    one stops at the cap rather than past it."""
    tag = uuid.uuid4().hex[:8]
    name = f"judged-cap-{tag}"
    _import(project, provider, tmp_path, name, [_case(s, model="cheap") for s in SPORTS])
    for model, per_mtok in (("cheap", 1), ("dear-judge", 1_000_000)):
        price = {"model": model, "input_per_mtok": per_mtok, "output_per_mtok": per_mtok}
        assert project.server.post("/api/v1/prices", project.key, json=price).status_code == 200
    provider.script({f"ZZJ-{tag}": '{"score": 0.9, "reason": "fine"}'})
    judged = ["--evaluator", f"judge:ZZJ-{tag}", "--judge-model", "dear-judge"]

    def estimate(done: subprocess.CompletedProcess[str]) -> float:
        return float(re.search(r"estimated cost \$([\d.]+)", done.stderr).group(1))  # type: ignore[union-attr]

    plain = cli(project, provider, "test", name, "--evaluator", "contains")
    free = cli(project, provider, "test", name, *judged)
    assert free.returncode in (0, 1) and plain.returncode in (0, 1), free.stderr + plain.stderr
    assert estimate(plain) < 0.01 < 10 * len(SPORTS) < estimate(free)
    uncapped = project.server.get(f"/api/v1/runs/{_run_id(free.stderr)}", project.key, raw="1")
    total = sum(r["cost_usd"] for r in uncapped.json()["results"])
    assert total > 10 * len(SPORTS)  # the judge's calls, at a dollar a token

    # Under what the whole run spends, over one case's estimate (the fake provider counts
    # words, so a case costs about half its estimate): the old reservation ran every case.
    cap = total * 3 / 4
    assert estimate(free) / len(SPORTS) < cap
    capped = cli(project, provider, "test", name, *judged, "--concurrency", "1",
                 "--max-cost", f"{cap:.2f}")  # fmt: skip
    assert capped.returncode == 1 and "stopped at its cost cap" in capped.stderr, capped.stderr
    run = project.server.get(f"/api/v1/runs/{_run_id(capped.stderr)}", project.key, raw="1")
    results = run.json()["results"]
    assert 1 <= len(results) < len(SPORTS)
    assert sum(r["cost_usd"] for r in results) <= cap


def test_a_killed_run_resumes_without_calling_a_case_twice(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """Killed right after six answers came back and were judged (their results usually not on
    the server yet: results go in batches, and the calls' events are sent every 30 s here)
    while the seventh call is in flight: the resume pays for none of the six again, neither
    their calls nor their judge, only for the one cut off."""
    tag = uuid.uuid4().hex[:8]
    name = f"resume-{tag}"
    sports = [f"{tag}-{i}" + (" [[delay:3]]" if i == 6 else "") for i in range(12)]
    _import(project, provider, tmp_path, name, [_case(s) for s in sports])
    env = {
        **os.environ,
        "LLMTAP_URL": project.server.url,
        "LLMTAP_API_KEY": project.key,
        "OPENAI_API_KEY": "sk-fake",
        "OPENAI_BASE_URL": provider.base_url,
        "LLMTAP_FLUSH_INTERVAL": "30",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # the runner's journal and the SDK's spool
    }
    provider.script({f"ZZJ-{tag}": '{"score": 1, "reason": "fine"}'})
    command = [*LLMTAP, "test", name, "--model", "gpt-4o-mini", "--concurrency", "1"]
    command += ["--evaluator", "normalized", "--evaluator", f"judge:ZZJ-{tag}"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )

    def asked(sport: str) -> int:
        text = f"Emoji for {sport}"
        return sum(
            any(m.get("content") == text for m in r["body"].get("messages") or [])
            for r in provider.requests
        )

    def judged(sport: str) -> int:
        quoted = json.dumps(f"Emoji for {sport}")  # as the judge's prompt quotes the input
        return sum(
            any(f"ZZJ-{tag}" in str(m.get("content")) and quoted in str(m.get("content"))
                for m in r["body"].get("messages") or [])
            for r in provider.requests
        )  # fmt: skip

    deadline = time.monotonic() + 60
    while not asked(sports[6]) and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=30)
    assert asked(sports[6]) == 1, stderr
    run_id = _run_id(stderr)
    before = project.server.get(f"/api/v1/runs/{run_id}", project.key, raw="1").json()["results"]
    # Usually most of the six answers are known to the runner alone (results go every 0.25 s);
    # on a loaded machine all six may have been sent: then the resume skips them, and the
    # counts below hold all the same.
    assert len(before) <= 6
    resumed = subprocess.run(
        [*command, "--resume", run_id], capture_output=True, text=True, timeout=90, env=env
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    run = project.server.get(f"/api/v1/runs/{run_id}", project.key, raw="1").json()
    assert run["status"] == "finished" and len(run["results"]) == 12
    assert all(r["output"] and not r["error"] for r in run["results"]), run["results"]
    assert all(r["cost_usd"] for r in run["results"])  # the journal kept the usage
    calls = [asked(sport) for sport in sports]
    # The six answered before the kill and the five never started: once each; the one cut
    # off in flight (answered by the provider to a dead process): again.
    assert calls == [1] * 6 + [2] + [1] * 5, calls
    assert [judged(sport) for sport in sports] == [1] * 12  # each judged once
    # The run finished: its journal is gone.
    assert not list((tmp_path / "cache" / "llmtap" / "runs").glob("*.jsonl"))


def test_a_run_goes_on_when_its_journal_cannot_be_kept(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """A cache folder that cannot be written (here a file where the folder would be): the run
    finishes, saying a resume may call again what was answered."""
    tag = uuid.uuid4().hex[:8]
    name = f"nojournal-{tag}"
    _import(project, provider, tmp_path, name, [_case(f"{tag}-{i}") for i in range(3)])
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    env = {
        **os.environ,
        "LLMTAP_URL": project.server.url,
        "LLMTAP_API_KEY": project.key,
        "OPENAI_API_KEY": "sk-fake",
        "OPENAI_BASE_URL": provider.base_url,
        "LLMTAP_FLUSH_INTERVAL": "0.05",
        "XDG_CACHE_HOME": str(blocked),
    }
    done = subprocess.run(
        [*LLMTAP, "test", name, "--model", "gpt-4o-mini"],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cannot keep the run's journal" in done.stderr
    run = project.server.get(f"/api/v1/runs/{_run_id(done.stderr)}", project.key, raw="1").json()
    assert run["status"] == "finished" and all(r["output"] for r in run["results"])
    assert len(run["results"]) == 3


def test_deleting_an_event_through_the_api_deletes_its_cases(
    project: Project, provider: FakeProvider
) -> None:
    """A user's erasure reaches the test cases copied from their calls."""
    tag = uuid.uuid4().hex[:8]
    template_name = _production(project, provider, tag)
    made = cli(
        project,
        provider,
        "testsets",
        "create",
        f"erase-{tag}",
        "--from-feedback",
        "--template",
        template_name,
    )
    assert made.returncode == 0, made.stderr
    sets = project.server.get("/api/v1/testsets", project.key, name=f"erase-{tag}").json()
    set_id = sets["testsets"][0]["id"]
    before = project.server.get(f"/api/v1/testsets/{set_id}", project.key).json()
    golf = next(c for c in before["cases"] if c["template_params"]["sport"] == "golf")
    gone = httpx2.delete(
        f"{project.server.url}/api/v1/events/{golf['event_id']}",
        headers={"authorization": f"Bearer {project.key}"},
    )
    assert gone.status_code == 200, gone.text
    after = project.server.get(f"/api/v1/testsets/{set_id}", project.key).json()
    assert sorted(c["template_params"]["sport"] for c in after["cases"]) == [
        "chess",
        "soccer",
        "tennis",
    ]
    assert after["version"] == before["version"] + 1
    assert "⛳" not in json.dumps(after, ensure_ascii=False)  # the better response went too


def test_usage_errors_exit_2_before_a_run_starts(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    name = f"usage-{uuid.uuid4().hex[:8]}"
    _import(project, provider, tmp_path, name, [_case("soccer", model="gpt-4o-mini")])
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(LLMTAP_URL=project.server.url, LLMTAP_API_KEY=project.key)
    no_key = subprocess.run(
        [*LLMTAP, "test", name], capture_output=True, text=True, timeout=60, env=env
    )
    assert no_key.returncode == 2 and "OPENAI_API_KEY" in no_key.stderr, no_key.stderr
    bad = cli(project, provider, "test", name, "--evaluator", "regex:(")
    assert bad.returncode == 2 and "--evaluator" in bad.stderr
    both = cli(project, provider, "test", name, "--revision", "x", "--template", __file__)
    assert both.returncode == 2
    missing = cli(project, provider, "test", "no such set")
    assert missing.returncode == 1 and "no test set named" in missing.stderr
    assert project.server.get("/api/v1/runs", project.key).json()["runs"] == []


def test_a_set_s_stored_evaluators_cannot_read_files_or_run_code(
    server: Server, provider: FakeProvider, tmp_path: Path
) -> None:
    """A set's evaluators are written by anyone with the project's admin key, and run on the
    machine of whoever runs the set (the server's own dashboard runs too, whose environment
    holds the provider's key): the API refuses those that read a file or run code, and a
    runner refuses them from a set stored before, unless given on its own command line."""
    name = f"p-{uuid.uuid4().hex[:8]}"
    project = Project(server.new_key(name), server)
    for spec in ("judge:@/proc/self/environ", "python:os:getcwd", "json_schema:/etc/passwd"):
        made = server.post(
            "/api/v1/testsets",
            project.key,
            json={
                "name": f"s-{uuid.uuid4().hex[:6]}",
                "source": "cases",
                "cases": [],
                "evaluators": [spec],
            },
        )
        assert made.status_code == 400, made.text
        assert "stored evaluators cannot" in made.json()["error"], made.text
    ok = server.post(
        "/api/v1/testsets",
        project.key,
        json={
            "name": "inline",
            "source": "cases",
            "cases": [],
            "evaluators": ['json_schema:{"type": "object"}', "judge:Is it short?"],
        },
    )
    assert ok.status_code == 201, ok.text

    # A set stored before these were refused: its file-reading judge is not used.
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-9f2c")
    store = open_store(str(server.db))
    try:
        pid = store.project_id(name)
        assert pid is not None
        store.create_testset(pid, "old", [f"judge:@{secret}"])
    finally:
        store.close()
    _import(project, provider, tmp_path, "old", [_case("soccer", model="gpt-4o-mini")])
    refused = cli(project, provider, "test", "old")
    assert refused.returncode == 2, refused.stderr
    assert "reads a file" in refused.stderr and "--evaluator" in refused.stderr
    assert server.get("/api/v1/runs", project.key).json()["runs"] == []
    # Given on the command line by the one who runs it, the same evaluator runs.
    mine = cli(project, provider, "test", "old", "--evaluator", f"judge:@{secret}")
    assert mine.returncode in (0, 1) and _run_id(mine.stderr), mine.stderr


def test_a_judge_only_run_finds_regressions_against_production_feedback(
    server: Server, provider: FakeProvider
) -> None:
    """With only evaluators that call the provider (a judge), the original outputs are not
    graded again: the production feedback is their verdict. The two calls rated well and
    judged badly now are regressions, which --max-regressions 0 refuses."""
    tag = uuid.uuid4().hex[:8]
    project = Project(server.new_key(f"judged-{tag}"), server)
    _production(project, provider, tag)
    made = cli(project, provider, "testsets", "create", f"judged-{tag}", "--from-feedback")
    assert made.returncode == 0, made.stderr
    answers = {f"{tag} Emoji for {s}": e for s, e in zip(SPORTS, "⚽🎾⛳♟", strict=True)}
    provider.script({f"ZZJ-{tag}": '{"score": 0.1, "reason": "not an emoji"}', **answers})
    judged = cli(
        project,
        provider,
        "test",
        f"judged-{tag}",
        "--evaluator",
        f"judge:ZZJ-{tag}",
        "--max-regressions",
        "0",
    )
    assert judged.returncode == 1, judged.stdout + judged.stderr
    assert "2 regression(s), more than --max-regressions 0" in judged.stderr
    assert "(baseline, original outputs: 50.0%)" in judged.stdout


def test_a_run_s_settings_go_over_each_case_s(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """``--setting NAME=VALUE`` (JSON, else text) goes into every call over the case's own
    settings, and the calls are recorded with it; of a case's own (what a key stored), only
    those of sampling: none that multiplies the bill."""
    name = f"settings-{uuid.uuid4().hex[:8]}"
    stored = {"temperature": 1.0, "seed": 7, "n": 64, "best_of": 9, "service_tier": "priority"}
    case = _case("soccer", model="gpt-4o-mini", settings=stored)
    _import(project, provider, tmp_path, name, [case])
    ran = cli(
        project, provider, "test", name,
        "--setting", "temperature=0.25", "--setting", "stop=[\"END\"]", "--setting", "user=u 1",
    )  # fmt: skip
    assert ran.returncode in (0, 1) and _run_id(ran.stderr), ran.stderr
    (event,) = project.events(**{"attributes.llmtap_run": _run_id(ran.stderr)})
    sent = project.event(event["id"])["request"]["extra_body"]
    assert sent == {"temperature": 0.25, "seed": 7, "stop": ["END"], "user": "u 1"}
    assert cli(project, provider, "test", name, "--setting", "nonsense").returncode == 2
    deep = "[" * 3000 + "]" * 3000  # not JSON Python's parser can take: text, as any other
    ran = cli(project, provider, "test", name, "--setting", f"user={deep}")
    assert ran.returncode in (0, 1) and _run_id(ran.stderr), ran.stderr
    (event,) = project.events(**{"attributes.llmtap_run": _run_id(ran.stderr)})
    assert project.event(event["id"])["request"]["extra_body"]["user"] == deep


def test_a_resumed_run_keeps_its_template_model_and_settings(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """``--resume RUN`` alone goes on as the run started (its template, model, settings and
    evaluators), under a new cost cap when given one; other options are a usage error."""
    tag = uuid.uuid4().hex[:8]
    name = f"resumed-{tag}"
    _import(project, provider, tmp_path, name, [_case(s, model="priced") for s in SPORTS])
    price = {"model": "priced", "input_per_mtok": 1_000_000, "output_per_mtok": 1_000_000}
    assert project.server.post("/api/v1/prices", project.key, json=price).status_code == 200
    template, answers = _revision(tmp_path, tag, dict.fromkeys(SPORTS, "🏅"))
    provider.script(answers)
    first = cli(
        project, provider, "test", name, "--template", str(template), "--concurrency", "1",
        "--max-cost", "30", "--setting", "temperature=0.5", "--evaluator", "contains",
    )  # fmt: skip
    assert "stopped at its cost cap" in first.stderr, first.stderr
    run_id = _run_id(first.stderr)
    other = cli(project, provider, "test", name, "--resume", run_id, "--model", "gpt-4o-mini")
    assert other.returncode == 2 and "keeps its own --model" in other.stderr, other.stderr
    again = cli(project, provider, "test", name, "--resume", run_id, "--max-cost", "10000")
    assert again.returncode in (0, 1), again.stderr
    run = project.server.get(f"/api/v1/runs/{run_id}", project.key, raw="1").json()
    assert len(run["results"]) == len(SPORTS)
    assert {r["output"] for r in run["results"]} == {"🏅"}  # every case under the template
    assert {next(iter(r["scores"])) for r in run["results"]} == {"contains"}
    calls = project.events(**{"attributes.llmtap_run": run_id})
    assert len(calls) == len(SPORTS)
    for call in calls:
        assert project.event(call["id"])["request"]["extra_body"] == {"temperature": 0.5}


def test_files_that_cannot_be_read_or_written_are_one_line_before_any_work(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """Not UTF-8, or a folder that does not exist: a one-line error naming the file, before
    a set is made, a call is paid for or an export is read (no traceback)."""
    name = f"files-{uuid.uuid4().hex[:8]}"
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"input": "caf\xe9"}\n')
    missing = tmp_path / "no-such-folder" / "out"
    _import(project, provider, tmp_path, name, [_case("chess")])
    for args, words in (
        (["testsets", "import", f"{name}-2", str(latin)], "not UTF-8"),
        (["test", name, "--template", str(latin)], "not UTF-8"),
        (["test", name, "--template", str(tmp_path / f"{name}.jsonl"),
          "--junit", f"{missing}.xml"], "cannot write"),
        (["export", "-o", f"{missing}.csv"], "cannot write"),
    ):  # fmt: skip
        done = cli(project, provider, *args)
        assert done.returncode == 1 and words in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    sets = [
        s["name"] for s in project.server.get("/api/v1/testsets", project.key).json()["testsets"]
    ]
    assert f"{name}-2" not in sets
    assert project.events() == []  # no call was made
    assert not missing.parent.exists()


def test_a_run_scored_by_embeddings_takes_a_cost_cap(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """OpenAI's embeddings models are priced (as the server prices the SDK's events of them):
    a cap is taken for a run scored by embeddings, and their calls count in its cost."""
    tag = uuid.uuid4().hex[:8]
    name = f"embedded-{tag}"
    _import(project, provider, tmp_path, name, [_case(s, model="gpt-4o-mini") for s in SPORTS])
    done = cli(project, provider, "test", name, "--evaluator", "embeddings", "--max-cost", "5")
    assert done.returncode in (0, 1), done.stderr
    assert "needs a price" not in done.stderr
    run = project.server.get(f"/api/v1/runs/{_run_id(done.stderr)}", project.key, raw="1")
    results = run.json()["results"]
    assert len(results) == len(SPORTS) and all(r["cost_usd"] > 0 for r in results)


def test_a_command_that_fails_leaves_its_output_file_as_it_was(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """An export with a wrong key, a test of a set that does not exist: the file named was
    written by an earlier command and still holds what it held (it had been emptied before
    the command failed), with no partial file left beside it. A run that misses its gate
    still writes its report."""
    name = f"kept-{uuid.uuid4().hex[:8]}"
    _import(project, provider, tmp_path, name, [_case("chess", output="?", rating=0.0)])
    kept = {tmp_path / "events.jsonl": "earlier export\n", tmp_path / "report.xml": "<earlier/>"}
    for path, text in kept.items():
        path.write_text(text)
    wrong_key = cli(project, provider, "export", "-o", str(tmp_path / "events.jsonl"),
                    "--api-key", "lt_wrong")  # fmt: skip
    no_set = cli(project, provider, "test", f"{name}-missing", "--junit",
                 str(tmp_path / "report.xml"))  # fmt: skip
    assert wrong_key.returncode == 1 and no_set.returncode == 1, wrong_key.stderr + no_set.stderr
    assert {path: path.read_text() for path in kept} == kept
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == []
    gated = cli(project, provider, "test", name, "--junit", str(tmp_path / "report.xml"),
                "--min-pass", "1.0")  # fmt: skip
    assert gated.returncode == 1 and "<testsuite" in (tmp_path / "report.xml").read_text()
    assert oct((tmp_path / "report.xml").stat().st_mode & 0o777) == "0o600"


def test_an_import_checks_every_line_first_and_takes_any_number_of_cases(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """A line that is no case: nothing is made, and the line is named (a set had been left
    empty). Messages stored as a JSON object (a sender's own shape) are a case's input. More
    cases than one request takes (10,000) go in several."""
    tag = uuid.uuid4().hex[:8]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(_case("chess")) + "\n" + '{"rating": 7}\n')
    done = cli(project, provider, "testsets", "import", f"bad-{tag}", str(bad))
    assert done.returncode == 1 and "line 2:" in done.stderr, done.stderr
    names = [
        s["name"] for s in project.server.get("/api/v1/testsets", project.key).json()["testsets"]
    ]
    assert f"bad-{tag}" not in names
    shaped = {**_case("go"), "input": {"role": "user", "content": "an object"}}
    many = [_case(f"{tag} {i}") for i in range(10_001)] + [shaped]
    _import(project, provider, tmp_path, f"many-{tag}", many)
    found = project.server.get("/api/v1/testsets", project.key).json()["testsets"]
    (made,) = [s for s in found if s["name"] == f"many-{tag}"]
    assert made["case_count"] == 10_002


def test_a_case_whose_input_is_an_object_is_run_and_shown(
    project: Project, provider: FakeProvider, tmp_path: Path
) -> None:
    """An input stored as a JSON object (a sender's own shape of messages) is a case: a run
    of it ends with that case's error or answer, and its set's page shows it."""
    from .test_dashboard_http import login

    tag = uuid.uuid4().hex[:8]
    shaped = {**_case(f"{tag} go"), "input": {"role": "user", "content": "an object"}}
    _import(project, provider, tmp_path, f"shaped-{tag}", [shaped])
    done = cli(project, provider, "test", f"shaped-{tag}", "--model", "gpt-4o-mini")
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
    run = project.server.get(f"/api/v1/runs/{_run_id(done.stderr)}", project.key, raw="1")
    (result,) = run.json()["results"]
    assert result["error"] or result["output"] is not None
    sets = project.server.get("/api/v1/testsets", project.key).json()["testsets"]
    (found,) = [s for s in sets if s["name"] == f"shaped-{tag}"]
    (call,) = project.events()  # the run's call, recorded
    with login(project.server) as browser:
        page = browser.get(f"/testsets/{found['id']}", params={"project": call["project"]})
    assert page.status_code == 200 and '<td class="clip">plain' in page.text, page.text[:300]
