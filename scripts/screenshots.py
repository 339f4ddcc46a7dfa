"""Screenshots of every dashboard page, for the README: a fresh server, `llmtap demo`
traffic through the real SDK, real Chromium. Usage: python scripts/screenshots.py docs"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.browser import chromium, log_in
from tests.conftest import ADMIN_TOKEN, LLMTAP, start_server, stop_server

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
        finally:
            stop_server(server)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
