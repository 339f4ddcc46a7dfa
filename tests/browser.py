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


@contextmanager
def new_page(browser: Any) -> Iterator[Any]:
    """A page in a context of its own (1280x900); the test fails if a script on it threw."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


def log_in(page: Any, base_url: str, token: str, path: str = "/events") -> None:
    """Log in as the server's first admin: made with ``token`` while no user exists, then with
    its password (a ``token`` other than the suite's stands for a wrong password)."""
    from .conftest import ADMIN_PASSWORD, ADMIN_TOKEN, ADMIN_USER

    page.goto(base_url + path)
    if page.locator("input[name=token]").count():
        page.fill("input[name=token]", token)
        password = ADMIN_PASSWORD
    else:
        password = ADMIN_PASSWORD if token == ADMIN_TOKEN else token
    page.fill("input[name=name]", ADMIN_USER)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
