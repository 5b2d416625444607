"""The comparison and sweep views in headless Chromium, for a finished two-trial sweep."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.conftest import Page
from tests.utils.live_server import LiveServer, run_sweep

pytestmark = pytest.mark.browser

SWEEP_TIMEOUT_S = 240


def finished_sweep(server: LiveServer) -> dict[str, Any]:
    body = {
        "model": "diabetes",
        "params": {"epochs": 6},
        "space": {"lr": [0.03, 0.3]},
        "priority": 5,  # ahead of other tests' jobs on this module's shared server
    }
    with server.client() as http:
        return run_sweep(http, body, SWEEP_TIMEOUT_S)


def polylines(page: Any, chart: str) -> Any:
    return page.locator(f"[data-chart='{chart}'] polyline")


def test_compare_two_finished_jobs_and_read_the_sweep_leaderboard(
    page: Page, server: LiveServer
) -> None:
    tab, page = page, page.page
    board = finished_sweep(server)
    ids = [t["job_id"] for t in board["leaderboard"]]

    page.goto(f"/#compare/{ids[0]},{ids[1]}?names=val_loss,val_accuracy")
    lines = polylines(page, "compare-val_loss")
    lines.nth(1).wait_for()
    assert lines.count() == 2
    assert [lines.nth(i).get_attribute("data-count") for i in range(2)] == ["6", "6"]
    assert {lines.nth(i).get_attribute("data-series") for i in range(2)} == {
        f"#{job_id} diabetes" for job_id in ids
    }
    assert polylines(page, "compare-val_accuracy").count() == 2
    page.wait_for_timeout(300)  # one animation frame for the last redraw
    tab.shoot("compare-two-jobs")

    page.click("#nav-sweeps")
    page.locator(f"#sweep-view tr[data-sweep-id='{board['id']}']").wait_for()
    page.click(f"#sweep-view tr[data-sweep-id='{board['id']}'] a")
    rows = page.locator("#sweep-view .leaderboard tbody tr")
    rows.nth(1).wait_for()
    assert [int(rows.nth(i).get_attribute("data-job-id")) for i in range(2)] == ids
    assert "succeeded" in rows.nth(0).inner_text()
    tab.shoot("sweep-leaderboard")

    page.click("#sweep-view .compare-top")
    polylines(page, "compare-val_loss").nth(1).wait_for()
    assert page.get_attribute("#compare-view", "data-jobs") == ",".join(map(str, ids))
    tab.shoot("compare-from-sweep")
    assert tab.errors == []
