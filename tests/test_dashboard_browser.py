"""The dashboard in real Chromium against a real ``llmtap serve``, filled by ``llmtap demo``
through the real SDK."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from ._stores import STORE_BACKENDS
from .browser import chromium, log_in, new_page
from .conftest import ADMIN_TOKEN, LLMTAP, Project, Server, server_on_each_backend
from .test_server import event, post_events

# Every test here runs on a server of each store backend.
server = pytest.fixture(scope="module", params=STORE_BACKENDS, name="server")(
    server_on_each_backend
)

XSS_PROMPT = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
XSS_NAME = "<b data-injected>bold-name</b>"
XSS_KEY = "<i data-injected>key</i>"


@pytest.fixture(scope="module")
def filled(server: Server) -> Iterator[tuple[Project, str]]:
    """A project with the demo's traffic and an event that tries to inject a script."""
    name = f"dash-{uuid.uuid4().hex[:6]}"
    project = Project(server.new_key(name), server)
    result = subprocess.run(
        [*LLMTAP, "demo", "-n", "20"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LLMTAP_URL": server.url, "LLMTAP_API_KEY": project.key},
    )
    assert result.returncode == 0, result.stderr
    post_events(
        project,
        [
            event(
                id="xss-event",
                prompt_template_name=XSS_NAME,
                request={"messages": [{"role": "user", "content": XSS_PROMPT}]},
                output_text=XSS_PROMPT,
                attributes={XSS_KEY: XSS_PROMPT},
                template_chat=[{"role": "user", "content": "{x}"}],
                template_params={"x": XSS_PROMPT},
                feedback_key="xss-feedback",
            )
        ],
    )
    rated = {"feedback_key": "xss-feedback", "rating": 0.1, "better_response": XSS_PROMPT}
    assert server.post("/api/v1/feedback", project.key, json=rated).status_code == 200
    yield project, name


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    with new_page(browser) as page:
        yield page


def test_login_is_required(page: Any, server: Server) -> None:
    page.goto(server.url + "/events")
    assert "/login" in page.url
    log_in(page, server.url, "wrong-credential", "/events")
    assert "/login" in page.url
    error = page.locator(".error").inner_text()
    assert error in ("That is not the admin token.", "Wrong name or password.")
    log_in(page, server.url, ADMIN_TOKEN, "/events")
    page.wait_for_url("**/events**")


def test_events_filters_change_the_table(
    page: Any, server: Server, filled: tuple[Project, str]
) -> None:
    _, name = filled
    log_in(page, server.url, ADMIN_TOKEN, f"/events?project={name}")
    rows = page.locator("table.events tbody tr")
    assert rows.count() > 20
    page.select_option("select[name=status]", "error")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**status=error**")
    statuses = page.locator("table.events tbody .status").all_inner_texts()
    assert statuses and set(statuses) == {"error"}
    # The filter lives in the URL: the same view opens from a shared link.
    shared = page.url
    page.goto(server.url + f"/events?project={name}")
    page.goto(shared)
    assert set(page.locator("table.events tbody .status").all_inner_texts()) == {"error"}
    page.fill("form.filters input[name=prompt_template_name]", "explain-math")
    page.select_option("select[name=status]", "")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**explain-math**")
    templates = page.locator("table.events tbody td.clip:not(.out)").all_inner_texts()
    assert len(templates) == 12 and set(templates) == {"explain-math"}


def test_event_page_renders_a_chat_with_a_tool_call(
    page: Any, server: Server, filled: tuple[Project, str]
) -> None:
    _, name = filled
    log_in(
        page, server.url, ADMIN_TOKEN, f"/events?project={name}&prompt_template_name=support-bot"
    )
    page.locator("table.events tbody tr a").first.click()
    page.wait_for_url("**/events/**")
    assert (
        page.locator(".msg.role-system")
        .first.inner_text()
        .endswith("You are Tapbot, a helpful assistant.")
    )
    # Somewhere in this chat the assistant called get_weather: follow the chat timeline.
    page.locator("a[href*='/chats/']").first.click()
    page.wait_for_url("**/chats/**")
    assert page.locator(".tool-call b", has_text="get_weather").count() >= 1
    assert page.locator("ol.timeline > li").count() == 3


# Elements the injected text would have made, had it been markup. (The Content-Security-Policy
# would stop the scripts from running even then, so ``window.__xss`` alone proves nothing about
# the escaping: the DOM must hold none of these, and the text must read as sent.)
INJECTED = (
    "script:not([src]):not([type='application/json']), img[src='x'], [onerror], [data-injected]"
)


def assert_shown_as_text(page: Any, *texts: str) -> None:
    assert page.evaluate("window.__xss") is None
    assert page.locator(INJECTED).count() == 0, page.locator(INJECTED).evaluate_all(
        "nodes => nodes.map(n => n.outerHTML)"
    )
    shown = page.locator("body").inner_text()
    for text in texts:
        assert text in shown, (text, shown[:2000])


def test_injected_script_shows_as_text(
    page: Any, server: Server, filled: tuple[Project, str]
) -> None:
    _, name = filled
    log_in(page, server.url, ADMIN_TOKEN, f"/events/xss-event?project={name}")
    assert_shown_as_text(page, XSS_PROMPT, XSS_NAME, XSS_KEY)
    assert XSS_PROMPT in page.locator(".msg.role-user .text").first.inner_text()
    assert XSS_NAME in page.locator("h1").inner_text()
    assert XSS_KEY in page.locator("aside").inner_text()
    # The template panel: the value as filled in, the parameter, and the rating's better answer.
    assert page.locator(".template mark.val").inner_text() == XSS_PROMPT
    assert XSS_PROMPT in page.locator(".template table.kv pre").inner_text()
    assert f"better: {XSS_PROMPT}" in page.locator("aside .card .text").inner_text()
    query = urlencode({"project": name, "prompt_template_name": XSS_NAME})
    page.goto(server.url + "/events?" + query)
    assert_shown_as_text(page, XSS_PROMPT)
    assert XSS_PROMPT in page.locator("table.events").inner_text()
    assert page.locator("form.filters input[name=prompt_template_name]").input_value() == XSS_NAME
    # The feedback page: the answer given and the better one, each as the text it is.
    page.goto(server.url + "/feedback?" + urlencode({"project": name}))
    row = page.locator("table.events tbody tr", has_text="bold-name")
    assert row.locator("td.clip").all_inner_texts() == [XSS_PROMPT, XSS_PROMPT]
    assert_shown_as_text(page)
    # Grouped by the injected attribute key: the key in the form, its value as a group.
    by_key = {"project": name, "by": "attributes." + XSS_KEY, "range": "all"}
    page.goto(server.url + "/groups?" + urlencode(by_key))
    assert page.locator("input[name=by]").input_value() == "attributes." + XSS_KEY
    assert page.locator("table.groups tbody td.clip").all_inner_texts() == [XSS_PROMPT]
    assert_shown_as_text(page)
    page.goto(server.url + "/templates/" + quote(XSS_NAME) + "?project=" + name)
    assert_shown_as_text(page, XSS_NAME)


def test_feedback_and_settings_pages(
    page: Any, server: Server, filled: tuple[Project, str]
) -> None:
    _, name = filled
    log_in(page, server.url, ADMIN_TOKEN, f"/feedback?project={name}")
    assert page.locator("table.events tbody tr").count() >= 1
    with page.expect_download() as download:
        page.click("text=Download as a test set")
    assert download.value.suggested_filename == f"llmtap-feedback-{name}.jsonl"
    page.goto(server.url + "/settings")
    assert page.locator(f"section.card h3:has-text('{name}')").count() == 1


def test_overview_shows_charts_and_leads_to_the_events(
    page: Any, server: Server, filled: tuple[Project, str]
) -> None:
    project, name = filled
    log_in(page, server.url, ADMIN_TOKEN, f"/?project={name}&range=all")
    # The page's numbers are the API's: the same query behind both.
    total = project.server.get("/api/v1/stats", project.key).json()["groups"][0]["count"]
    assert page.locator(".tile .v").first.inner_text() == f"{total:,}"
    page.wait_for_selector(".chart canvas")
    assert page.locator(".chart").count() == 6
    assert page.locator(".chart canvas").count() >= 6
    # A bar of the model breakdown opens the events of that model.
    page.locator("table.bars a").first.click()
    page.wait_for_url("**/events?**model=**")
    models = set(page.locator("table.events tbody tr td:nth-child(2)").all_inner_texts())
    assert len(models) == 1
    # A point of a chart opens the events of its time bucket.
    page.goto(server.url + f"/?project={name}&range=1h")
    over = page.locator(".chart .u-over").first
    box = over.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url("**/events?**from=**")
    assert page.locator("table.events tbody tr").count() >= 1


def test_group_by_an_attribute(page: Any, server: Server, filled: tuple[Project, str]) -> None:
    _, name = filled
    log_in(
        page,
        server.url,
        ADMIN_TOKEN,
        f"/groups?project={name}&by=attributes.system_prompt&range=all",
    )
    rows = page.locator("table.groups tbody tr")
    assert rows.count() == 3  # the demo asks with three system prompts, four times each
    counts = page.locator("table.groups tbody tr td:nth-child(2)").all_inner_texts()
    assert counts == ["4", "4", "4"]
    rows.first.locator("a").click()
    page.wait_for_url("**attributes.system_prompt=**")
    assert page.locator("table.events tbody tr").count() == 4


def test_templates_compare_revisions_with_a_diff(
    page: Any, server: Server, filled: tuple[Project, str]
) -> None:
    _, name = filled
    log_in(page, server.url, ADMIN_TOKEN, f"/templates?project={name}")
    row = page.locator("table.events tbody tr", has_text="sport-emoji")
    assert row.locator("td").nth(1).inner_text() == "2"  # two revisions
    row.locator("a").click()
    page.wait_for_url("**/templates/sport-emoji**")
    assert page.locator("table.revisions tbody tr").count() == 2
    added = page.locator("pre.diff .add").all_inner_texts()
    removed = page.locator("pre.diff .del").all_inner_texts()
    assert "+ Answer with one emoji only." in added
    assert "- Show me an emoji for {sport}" in removed
    assert "+ Show me an emoji that matches the sport: {sport}" in added
    # One line a line, as it is copied: no blank line between two.
    shown = page.locator("pre.diff").inner_text().strip().split("\n")
    assert "" not in shown and len(shown) == page.locator("pre.diff span").count()
