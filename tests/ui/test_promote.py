"""The job view's promote button moves production, and /predict follows it."""

from __future__ import annotations

import pytest

from tests.ui.conftest import Page
from tests.utils.http_jobs import predict, submit
from tests.utils.live_server import LiveServer, wait_for_job

pytestmark = pytest.mark.browser


def test_a_second_version_serves_once_promoted_from_the_page(
    page: Page, server: LiveServer
) -> None:
    tab, page = page, page.page
    with server.client() as http:
        first = submit(http, "linear", epochs=300)
        wait_for_job(http, first)
        served = predict(http, "linear", {"x": [4.0]})["job_id"]
        second = submit(http, "linear", epochs=300, data={"x": [1, 2, 3], "y": [3, 6, 9]})
        wait_for_job(http, second)
        assert predict(http, "linear", {"x": [4.0]})["job_id"] == served != second
        page.goto(f"/#job/{second}")
        page.wait_for_selector("#job-view[data-status=succeeded] #promote-job")
        page.click("#promote-job")
        page.wait_for_selector(f"text=production is now job #{second}")
        tab.shoot("promoted")
        answer = predict(http, "linear", {"x": [4.0]})
    assert answer["job_id"] == second and answer["alias"] == "production"
    assert tab.errors == []
