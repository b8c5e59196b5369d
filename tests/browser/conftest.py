"""A real browser for the desk's pages: Debian's Chromium driven by Playwright (never `playwright install`).

`make test` installs the chromium package when it is missing. Screenshots go to $LEADFLOW_ARTIFACTS (default
build/screenshots), as the test run's artefacts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

CHROMIUM = os.environ.get("LEADFLOW_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]  # fmt: skip
ARTIFACTS = Path(os.environ.get("LEADFLOW_ARTIFACTS", Path(__file__).parents[2] / "build" / "screenshots"))
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 375, "height": 812}


# Per module, not per session: Playwright's sync API keeps an event loop running in the main thread while it is
# started, and the tests after these (asyncio.run, the group writer) need a thread without one.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (make test does it)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    found = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    yield found
    found.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[object]:
    """Contexts (separate cookie jars: separate people) closed at the end of the test, before its server stops."""
    made: list[BrowserContext] = []

    def make(base_url: str, *, language: str = "en-GB", phone: bool = False) -> BrowserContext:
        context = browser.new_context(base_url=base_url, locale=language, viewport=PHONE if phone else DESKTOP,
                                      extra_http_headers={"Accept-Language": language})  # fmt: skip
        context.set_default_timeout(10_000)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


def sign_in(page: Page, username: str, password: str) -> None:
    """Through the sign-in page, as a person does."""
    page.goto("/login")
    page.fill("#f-username", username)
    page.fill("#f-password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("load")
    assert "/login" not in page.url, page.content()[:500]


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
