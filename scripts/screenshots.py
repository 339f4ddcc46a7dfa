"""Screenshots of every dashboard page, for the README: a fresh server, `llmtap demo`
traffic through the real SDK, real Chromium. Usage: python scripts/screenshots.py docs"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.browser import chromium, log_in
from tests.conftest import ADMIN_TOKEN, LLMTAP, start_server, stop_server

from llmtap.fake_provider import FakeProvider

PAGES = {
    "overview": "/?project=demo",
    "events": "/events?project=demo",
    "groups": "/groups?project=demo&by=attributes.system_prompt",
    "templates": "/templates?project=demo",
    "feedback": "/feedback?project=demo",
    "settings": "/settings",
}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp))
        try:
            key = server.new_key("demo", "prod")
            env = {**os.environ, "LLMTAP_URL": server.url, "LLMTAP_API_KEY": key}
            subprocess.run([*LLMTAP, "demo", "-n", "80"], env=env, check=True)
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1360, "height": 900})
                log_in(page, server.url, ADMIN_TOKEN)
                for name, path in PAGES.items():
                    response = page.goto(server.url + path)
                    if response is None or response.status >= 400:
                        print(f"skipped {name}: {response.status if response else '?'}")
                        continue
                    page.wait_for_timeout(300)  # charts draw after load
                    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                    print(f"wrote {out / name}.png")
                # An event with a tool call, and its chat.
                page.goto(server.url + "/events?project=demo&prompt_template_name=support-bot")
                page.locator("table.events tbody tr a").first.click()
                page.wait_for_load_state()
                page.screenshot(path=str(out / "event.png"), full_page=True)
                page.locator("a[href*='/chats/']").first.click()
                page.wait_for_load_state()
                page.screenshot(path=str(out / "chat.png"), full_page=True)
                # A board made from the "OpenAI monitor" template, every panel drawn.
                made = server.post("/api/v1/boards", key, json={"template": "openai-monitor"})
                page.goto(server.url + f"/boards/{made.json()['id']}?project=demo")
                page.wait_for_selector("#board-app[data-drawn]")
                page.wait_for_timeout(300)
                page.screenshot(path=str(out / "boards.png"), full_page=True)
                _prompt_tests(server, key, page, out)
        finally:
            stop_server(server)


def _prompt_tests(server: Any, key: str, page: Any, out: Path) -> None:
    """A test set from the demo's feedback, two runs against the fake provider (the first
    answering what was expected, the second worse on some cases), compared."""
    made = server.post(
        "/api/v1/testsets", key, json={"name": "demo feedback", "source": "feedback"}
    ).json()
    testset = made["testset"]
    cases = server.get(f"/api/v1/testsets/{testset['id']}", key).json()["cases"]
    asked = {
        c["id"]: str(c["input"][-1]["content"])
        for c in cases
        if isinstance(c.get("input"), list) and c["input"] and c.get("expected")
    }
    env = {**os.environ, "LLMTAP_URL": server.url, "LLMTAP_API_KEY": key}
    runs = []
    with FakeProvider() as provider:
        env.update(OPENAI_API_KEY="sk-fake", OPENAI_BASE_URL=provider.base_url)
        expected = {c["id"]: c["expected"] for c in cases}
        for worse in (set(), set(list(asked)[::3])):
            answers = {
                text: "not quite" if case_id in worse else expected[case_id]
                for case_id, text in asked.items()
            }
            provider.script(answers, replace=True)
            done = subprocess.run(
                [*LLMTAP, "test", "demo feedback", "--model", "gpt-4o-mini"],
                env=env,
                capture_output=True,
                text=True,
            )
            runs.append(
                next(x.split()[1] for x in done.stderr.splitlines() if x.startswith("run "))
            )
    shots = {
        "testsets": "/testsets?project=demo",
        "testset": f"/testsets/{testset['id']}?project=demo",
        "run": f"/runs/{runs[1]}?project=demo&baseline={runs[0]}",
    }
    for name, path in shots.items():
        page.goto(server.url + path)
        page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        print(f"wrote {out / name}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
