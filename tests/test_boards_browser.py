"""Boards in real Chromium against a real ``llmtap serve``: from a template, a panel grouped by
an attribute picked from the list, save, reload, drill down, restore; publish, open the link
with no session, tamper with it, revoke it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx2
import pytest

from .browser import chromium, log_in
from .conftest import ADMIN_TOKEN, Project, Server
from .test_boards_api import seed_variants
from .test_server import event, post_events


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _watch(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def _add_filter(page: Any, field: str, value: str) -> None:
    """A board-wide filter picked from the lists: the field, then one of its values."""
    page.locator("#board-filters select[name=filter_field]").select_option(field)
    page.locator(f"#board-filters select[name=filter_value] option[value={value}]").wait_for(
        state="attached"
    )
    page.locator("#board-filters select[name=filter_value]").select_option(value)
    page.locator("#board-filters button", has_text="add filter").click()


def _drawn(page: Any) -> None:
    page.wait_for_selector("#board-app[data-drawn]", timeout=20_000)


def test_build_save_restore_publish_revoke(browser: Any, server: Server) -> None:
    name = f"boards-{uuid.uuid4().hex[:6]}"
    project = Project(server.new_key(name), server)
    seed_variants(project)
    other_name = f"other-{uuid.uuid4().hex[:6]}"
    seed_variants(Project(server.new_key(other_name), server))

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = _watch(page)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.accept()))
    log_in(page, server.url, ADMIN_TOKEN, f"/boards?project={name}")

    # From the template, one click.
    page.click("button[data-template=openai-monitor]")
    page.wait_for_url(re.compile(r"/boards/[0-9a-f]+\?project="))
    board_url = page.url
    _drawn(page)
    assert page.locator("#board-title").inner_text() == "OpenAI monitor"
    assert page.locator("section.panel").count() == 11
    histogram = page.locator("section.panel[data-panel=latency-hist] tr[data-bin]")
    assert histogram.count() == 12
    assert sum(int(t.split()[-1]) for t in histogram.all_inner_texts()) == 21
    # The four panels over time are charts (uPlot, vendored by `make setup`).
    if page.evaluate("typeof window.uPlot") == "function":
        assert page.locator("section.panel .uplot").count() == 4

    # A panel grouped by an attribute picked from the list of what exists.
    page.click("#add-panel")
    editor = page.locator("#panel-editor")
    editor.locator("select[name=group_by] option", has_text="attribute system_prompt").wait_for(
        state="attached"
    )
    editor.locator("input[name=title]").fill("By variant")
    editor.locator("select[name=view]").select_option("table")
    editor.locator("select[name=group_by]").select_option("attributes.system_prompt")
    variant_rows = page.locator("section.panel", has_text="By variant").locator("tbody tr")
    variant_rows.nth(2).wait_for()
    assert sorted(variant_rows.all_inner_texts())[0].startswith("variant 0")
    page.click("#save-board")
    page.wait_for_selector("#board-status:has-text('saved as version 2')")

    page.reload()
    _drawn(page)
    assert page.locator("#board-version").inner_text() == "2"
    variant_rows.nth(2).wait_for()
    assert variant_rows.count() == 3

    # Drill down: the row's events, and only they.
    page.locator("section.panel", has_text="By variant").locator(
        "tr[data-drill='variant 1']"
    ).click()
    page.wait_for_url("**/events?**")
    assert "attributes.system_prompt=variant+1" in page.url
    assert page.locator("table.events tbody tr").count() == 7
    listed = project.events(**{"attributes.system_prompt": "variant 1"})
    assert len(listed) == 7

    # Restore version 1: the panel is gone again, as version 3.
    page.goto(board_url)
    _drawn(page)
    page.click("#show-versions")
    # The button posts the restore, then reloads the page: wait for that reload, not for the
    # page already loaded.
    with page.expect_navigation():
        page.locator("#versions tr[data-version='1'] button", has_text="restore").click()
    _drawn(page)
    assert page.locator("#board-version").inner_text() == "3"
    assert page.locator("section.panel", has_text="By variant").count() == 0

    # A board-wide filter picked from the list: every panel follows it (unsaved).
    _add_filter(page, "model", "o3")
    page.wait_for_selector("section.panel[data-panel=total] .number:text-is('7')")
    assert page.locator("#board-status").inner_text() == "unsaved changes"

    # Publish, then open the link with no session.
    page.click("#publish-board")
    link = page.locator("#share-link").inner_text()
    assert "/b/" in link
    stranger = browser.new_context()
    anon = stranger.new_page()
    anon_errors = _watch(anon)
    anon.goto(link)
    _drawn(anon)
    assert anon.locator("#board-title").inner_text() == "OpenAI monitor"
    assert anon.locator("section.panel").count() == 11
    assert anon.locator("#save-board").count() == 0
    assert name not in anon.content()  # nothing says which project

    # Tampered links reach nothing: another token, another project, another board.
    token = link.rsplit("/b/", 1)[1]
    for tampered, status in (
        (link[:-2] + ("AA" if not link.endswith("AA") else "BB"), 404),
        (f"{link}?project={other_name}", 400),
        (f"{link}/data?board=x", 400),
        (server.url + "/b/" + token.upper(), 404),
    ):
        response = anon.goto(tampered)
        assert response.status == status, tampered
    assert anon.goto(server.url + "/boards").url.startswith(server.url + "/login")

    # Listed in the settings with its maker and last use; revoked there, it answers 404.
    page.goto(server.url + "/settings")
    assert "beforeunload" in dialogs  # the unsaved filter asked before leaving
    row = page.locator("table.links tr", has_text="OpenAI monitor")
    assert "admin" in row.inner_text() and "never" not in row.locator("td").nth(4).inner_text()
    row.locator("button", has_text="Revoke").click()
    page.wait_for_load_state()
    assert "revoked" in page.locator("table.links tr", has_text="OpenAI monitor").inner_text()
    assert anon.goto(link).status == 404
    assert anon.goto(link + "/data").status == 404
    stranger.close()
    context.close()
    assert not errors, errors
    assert not anon_errors, anon_errors


XSS = '<img src=x onerror="window.__xss = 1"><b data-injected>bold</b>'


def test_markup_in_boards_panels_and_attributes_shows_as_text(browser: Any, server: Server) -> None:
    name = f"boards-xss-{uuid.uuid4().hex[:6]}"
    project = Project(server.new_key(name), server)
    now = datetime.now(timezone.utc).isoformat()
    post_events(project, [event(started_at=now, attributes={"k": XSS}, model=XSS)])
    panels = [
        {"title": XSS, "measures": ["requests"], "view": view, "group_by": group}
        for view, group in (("table", "attributes.k"), ("bars", "model"), ("line", "model"))
    ]
    made = server.post(
        "/api/v1/boards", project.key, json={"name": XSS, "spec": {"panels": panels}}
    )
    assert made.status_code == 201, made.text
    link = server.post(f"/api/v1/boards/{made.json()['id']}/shares", project.key, json={})
    context = browser.new_context()
    page = context.new_page()
    errors = _watch(page)
    log_in(page, server.url, ADMIN_TOKEN, f"/boards/{made.json()['id']}?project={name}")
    for url in (page.url, server.url + link.json()["url"]):
        page.goto(url)
        _drawn(page)
        assert page.locator("[data-injected]").count() == 0
        assert page.evaluate("window.__xss") is None
        assert page.locator("#board-title").inner_text() == XSS
        assert page.locator("section.panel h3").all_text_contents() == [XSS] * 3
        assert XSS in page.locator("section.panel").first.text_content()
    context.close()
    assert not errors, errors


def test_a_quiet_number_is_zero_and_costs_read_as_dollars(browser: Any, server: Server) -> None:
    from datetime import timedelta

    name = f"boards-quiet-{uuid.uuid4().hex[:6]}"
    project = Project(server.new_key(name), server)
    before = datetime.now(timezone.utc) - timedelta(minutes=90)
    usage = {"input_tokens": 1000, "output_tokens": 100}
    sent = [event(started_at=before.isoformat(), model="gpt-4o", usage=usage) for _ in range(4)]
    post_events(project, sent)
    cost = project.event(sent[0]["id"])["cost_usd"]
    panels = [
        {"id": "quiet", "measures": ["requests"], "view": "number"},
        {"id": "spent", "measures": ["cost"], "view": "number", "time_range": {"last": "24h"}},
    ]
    spec = {"time_range": {"last": "1h"}, "panels": panels}
    made = server.post("/api/v1/boards", project.key, json={"name": "q", "spec": spec})
    assert made.status_code == 201, made.text
    page = browser.new_context().new_page()
    errors = _watch(page)
    log_in(page, server.url, ADMIN_TOKEN, f"/boards/{made.json()['id']}?project={name}")
    _drawn(page)
    quiet = page.locator("section.panel[data-panel=quiet]")
    assert quiet.locator(".number").inner_text() == "0"
    assert quiet.locator(".change").inner_text() == "-100.0% vs previous period"
    spent = page.locator("section.panel[data-panel=spent] .number").inner_text()
    assert spent == f"${float(f'{4 * cost:.2g}')}", (spent, cost)
    assert not errors, errors


def test_viewing_a_version_shows_its_range_and_filters_and_edits_it(
    browser: Any, server: Server
) -> None:
    name = f"boards-ver-{uuid.uuid4().hex[:6]}"
    project = Project(server.new_key(name), server)
    now = datetime.now(timezone.utc).isoformat()
    post_events(
        project, [event(started_at=now, model="m1", status="error", attributes={"user": "ann"})]
    )
    panels = [{"id": "n", "measures": ["requests"], "view": "number"}]
    first = {"time_range": {"last": "30d"}, "filters": {"status": "error"}, "panels": panels}
    made = server.post("/api/v1/boards", project.key, json={"name": "v1", "spec": first})
    assert made.status_code == 201, made.text
    board_id = made.json()["id"]
    second = {"time_range": {"last": "24h"}, "panels": panels}
    saved = httpx2.put(
        f"{server.url}/api/v1/boards/{board_id}",
        headers={"authorization": f"Bearer {project.key}"},
        json={"name": "v2", "spec": second},
    )
    assert saved.status_code == 200, saved.text
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    errors = _watch(page)
    log_in(page, server.url, ADMIN_TOKEN, f"/boards/{board_id}?project={name}")
    _drawn(page)
    page.click("#show-versions")
    page.locator("#versions tr[data-version='1'] button", has_text="view").click()
    page.wait_for_selector("#board-status:has-text('viewing version 1')")
    assert page.locator("#board-range").input_value() == "30d"
    assert page.locator("#board-name").input_value() == "v1"
    assert page.locator("#board-filters .filters-list li").all_inner_texts() == [
        "status = error remove"
    ]
    _add_filter(page, "model", "m1")
    # "user" lists the attribute's values (api and sdk, which no picker can list, are not
    # offered), and is kept as the attribute.
    fields = page.locator("#board-filters select[name=filter_field] option").all_inner_texts()
    assert "user" in fields and "api" not in fields and "sdk" not in fields
    _add_filter(page, "user", "ann")
    page.click("#save-board")
    page.wait_for_selector("#board-status:has-text('saved as version 3')")
    stored = server.get(f"/api/v1/boards/{board_id}", project.key).json()
    assert stored["spec"]["filters"] == {"status": "error", "model": "m1", "attributes.user": "ann"}
    assert stored["spec"]["time_range"] == {"last": "30d"} and stored["name"] == "v1"
    assert not errors, errors
