"""Headless Chromium (Debian's package) driven by Playwright, against a real server process."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.conftest import REPO_ROOT, make_settings
from tests.utils.live_server import LiveServer
from tests.utils.trained_server import start_mnist_server

CHROMIUM = Path("/usr/bin/chromium")
# Never `playwright install`: the machine has no internet and Debian's chromium is the browser.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "ui"
VIEWPORT = {"width": 1400, "height": 1000}


def require_chromium() -> None:
    """Skip without a browser on a laptop; in CI a missing browser is a broken setup."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if not missing:
        return
    message = "browser tests need " + " and ".join(missing)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_mnist_server(tmp_path_factory.mktemp("ui-server"))
    yield live
    live.stop()


class Page:
    """A browser tab on the server, recording console errors and saving named screenshots."""

    def __init__(self, page: Any, test_name: str) -> None:
        self.page, self.errors = page, []
        self.prefix = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")
        self.shots = 0
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def on_console(self, message: Any) -> None:
        # Chromium logs every 4xx response; the 409s and 422s the tests provoke are expected.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def shoot(self, step: str) -> Path:
        self.shots += 1
        path = SCREENSHOTS / f"{self.prefix}-{self.shots:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def page(browser: Any, server: LiveServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=VIEWPORT, base_url=server.url)
    context.set_default_timeout(60_000)
    tab = Page(context.new_page(), request.node.name)
    tab.page.goto("/")
    yield tab
    context.close()


API_KEY = "ui-test-key"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server that wants ``Authorization: Bearer <API_KEY>`` on every API call."""
    root = tmp_path_factory.mktemp("ui-keyed-server")
    settings = make_settings(root, f"sqlite:///{root / 'kiln.db'}")
    live = LiveServer(settings.model_copy(update={"api_key": SecretStr(API_KEY)}), root / "log")
    live.start()
    yield live
    live.stop()


@pytest.fixture
def keyed_page(
    browser: Any, keyed_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Page]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=VIEWPORT, base_url=keyed_server.url)
    context.set_default_timeout(60_000)
    tab = Page(context.new_page(), request.node.name)
    tab.page.goto("/")
    yield tab
    context.close()
