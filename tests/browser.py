"""Real Chromium (Debian's package) driven by Playwright, for the dashboard's tests and the
screenshots in docs/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No sandbox (we run as root in CI), and none of the background traffic a closed network
# refuses: sync, component updates, field trials.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def log_in(page: Any, base_url: str, token: str, path: str = "/events") -> None:
    page.goto(base_url + path)
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_load_state()
