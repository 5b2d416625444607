"""/docs and /redoc render in headless Chromium with every request off the server refused."""

from __future__ import annotations

from typing import Any

import pytest

from tests.utils.live_server import LiveServer

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(
    ("path", "rendered"),
    [("/docs", ".swagger-ui .opblock"), ("/redoc", ".redoc-wrap .api-content h2")],
)
def test_docs_render_with_the_network_off(
    browser: Any, server: LiveServer, path: str, rendered: str
) -> None:
    context = browser.new_context(base_url=server.url)
    outside: list[str] = []

    def only_the_server(route: Any) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            outside.append(route.request.resource_type)
            route.abort()

    context.route("**/*", only_the_server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path)
    page.wait_for_selector(rendered, timeout=60_000)
    assert page.locator(rendered).count() > 5
    context.close()
    # Scripts, styles, fonts and the schema all come from the server; ReDoc's menu footer
    # still links its "powered by" logo image from its CDN, which simply does not show.
    assert set(outside) <= {"image"} and errors == []
