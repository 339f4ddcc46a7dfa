"""The prompt-test pages in real Chromium: a set made from the feedback page, a case edited,
two runs (by ``llmtap test``) compared on the run page, and a replay from the event page
through a provider configured for the server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmtap.fake_provider import FakeProvider

from .browser import chromium, log_in, new_page
from .conftest import ADMIN_TOKEN, Project, Server, start_server, stop_server
from .test_prompt_tests import _production, _revision, _run_id, cli


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, provider: FakeProvider) -> Iterator[Server]:
    """A server of its own, with the fake provider configured for the dashboard's jobs."""
    server = start_server(
        tmp_path_factory.mktemp("served"),
        {"LLMTAP_PROVIDER_API_KEY": "sk-fake", "LLMTAP_PROVIDER_BASE_URL": provider.base_url},
    )
    yield server
    stop_server(server)


@pytest.fixture
def page(served: Server) -> Iterator[Any]:
    with chromium() as browser, new_page(browser) as page:
        yield page


def test_sets_runs_and_a_replay_in_chromium(
    page: Any, served: Server, provider: FakeProvider, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    name = f"browser-{tag}"
    project = Project(served.new_key(name), served)
    template_name = _production(project, provider, tag)
    log_in(page, served.url, ADMIN_TOKEN, f"/feedback?project={name}")
    page.fill("form[action='/testsets'] input[name=name]", f"emoji-{tag}")
    page.fill("form[action='/testsets'] input[name=template]", template_name)
    page.click("form[action='/testsets'] button[type=submit]")
    page.wait_for_load_state()
    assert "/testsets/" in page.url
    rows = page.locator("table.events").nth(1).locator("tbody tr")
    assert rows.count() == 4
    # The badly rated case with no better answer: expected to differ, until edited.
    chess = rows.filter(has_text="pawn")
    assert "must differ" in chess.inner_text()
    chess.locator("input[name=expected]").fill("♟")
    chess.locator("button[value=save]").click()
    page.wait_for_load_state()
    assert "♟" in page.locator("table.events").nth(1).inner_text()

    runs = []
    for answers in (
        {"soccer": "⚽", "tennis": "🎾", "golf": "⛳", "chess": "♟"},
        {"soccer": "⚽", "tennis": "racket", "golf": "🏌", "chess": "pawn"},
    ):
        template, script = _revision(tmp_path, tag, answers)
        provider.script(script)
        done = cli(project, provider, "test", f"emoji-{tag}", "--template", str(template))
        assert done.returncode == 0, done.stderr
        runs.append(_run_id(done.stderr))
    page.goto(f"{served.url}/runs/{runs[1]}?project={name}")
    page.select_option("select[name=baseline]", runs[0])  # submits itself
    page.wait_for_url(f"**baseline={runs[0]}**")
    changes = page.locator("table.events tbody tr td:nth-child(2)").all_inner_texts()
    assert changes == ["regression", "regression", "regression", "passing"]

    # Replay the production call of soccer with another model, from its page.
    provider.script({f"{tag} Emoji for soccer": "🥅"})
    original = next(
        e
        for e in project.events(prompt_template_name=template_name)
        if "soccer" in str(e["template_params"])
        and not e.get("parent_event_id")
        and "llmtap_run" not in (e.get("attributes") or {})
    )
    page.goto(f"{served.url}/events/{original['id']}?project={name}")
    page.fill("form[action$='/replay'] input[name=model]", "gpt-4o")
    page.click("form[action$='/replay'] button[type=submit]")
    page.wait_for_load_state()
    table = page.locator("table.events").inner_text()
    assert "gpt-4o" in table and "🥅" in table and "⚽" in table
