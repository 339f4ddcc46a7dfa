"""The pytest plugin (``llmtap.pytest_plugin``): a team's own suite, run by ``pytester`` in a
child process, gates a release on a test set made from real feedback, against a real llmtap
server on loopback and the fake provider; a regression fails its test with a per-case report."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import tomllib

from llmtap.fake_provider import FakeProvider

from .conftest import Project
from .test_prompt_tests import _production, _revision, cli

ROOT = Path(__file__).resolve().parents[1]


def test_the_plugin_is_registered_for_pytest() -> None:
    """Installing llmtap makes the plugin available: its ``pytest11`` entry point."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"llmtap": "llmtap.pytest_plugin"}


def test_a_suite_gates_a_release_on_a_test_set(
    pytester: pytest.Pytester,
    project: Project,
    provider: FakeProvider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tag = uuid.uuid4().hex[:8]
    made = cli(
        project,
        provider,
        "testsets",
        "create",
        f"gate-{tag}",
        "--from-feedback",
        "--template",
        _production(project, provider, tag),
    )
    assert made.returncode == 0, made.stderr
    better, good = _revision(
        tmp_path, tag, {"soccer": "⚽", "tennis": "🎾", "golf": "⛳", "chess": "♟️"}
    )
    worse, bad = _revision(
        tmp_path, tag, {"soccer": "⚽", "tennis": "a tennis ball", "golf": "🏌", "chess": "♟️"}
    )
    provider.script({**good, **bad})
    pytester.makepyfile(
        test_release=f'''
def test_the_better_prompt(llmtap_testset):
    view = llmtap_testset(
        "gate-{tag}", template_file=r"{better}", model="gpt-4o-mini", min_pass=0.9
    )
    assert view["summary"]["pass_rate"] == 1.0 and view["status"] == "finished"

def test_the_worse_prompt(llmtap_testset):
    llmtap_testset("gate-{tag}", template_file=r"{worse}", model="gpt-4o-mini")

def test_a_pass_rate_under_the_threshold(llmtap_testset):
    llmtap_testset(
        "gate-{tag}", template_file=r"{worse}", model="gpt-4o-mini",
        max_regressions=None, min_pass=0.9,
    )

def test_a_set_that_is_not_there(llmtap_testset):
    llmtap_testset("no-such-set-{tag}")
'''
    )
    # The server from options, the provider from the caller's own environment.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    monkeypatch.setenv("OPENAI_BASE_URL", provider.base_url)
    monkeypatch.setenv("LLMTAP_FLUSH_INTERVAL", "0.05")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # Loaded by name, so the test holds whether or not this checkout's entry point is installed.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("LLMTAP_URL", raising=False)
    result = pytester.runpytest_subprocess(
        "-p",
        "llmtap.pytest_plugin",
        "--llmtap-url",
        project.server.url,
        "--llmtap-api-key",
        project.key,
        timeout=120,
    )
    result.assert_outcomes(passed=1, failed=3)
    out = result.stdout.str()
    # The regression's report: which case, what was expected, what came back, and why.
    result.stdout.fnmatch_lines(
        [
            "*test_the_worse_prompt*",
            "*gate-*: pass rate 50.0% (baseline 50.0%), 2/4 passed, 1 regression(s)*",
            "*1 regression(s), more than --max-regressions 0*",
            "*case * (sport-emoji-*): regression",
            "*parameters: {'sport': 'tennis'}",
            "*expected (output): 🎾",
            "*new: a tennis ball",
            "*normalized: 0.00 *",
        ]
    )
    assert "pass rate 50.0% is under --min-pass 90.0%" in out
    assert f"no test set named 'no-such-set-{tag}'" in out
    assert "Traceback" not in out and "During handling" not in out  # reports, not stacks


def test_without_a_server_the_gate_fails_rather_than_skips(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_gate(llmtap_testset):\n    llmtap_testset('emoji')\n")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("LLMTAP_URL", raising=False)
    monkeypatch.delenv("LLMTAP_API_KEY", raising=False)
    result = pytester.runpytest_subprocess("-p", "llmtap.pytest_plugin")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no server to run the test set on*--llmtap-url*"])
