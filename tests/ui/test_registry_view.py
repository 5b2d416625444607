"""The registry view: a model's versions with metrics, lineage and aliases; moving an alias."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.conftest import Page
from tests.utils.http_jobs import submit
from tests.utils.live_server import LiveServer, run_sweep, wait_for_job

pytestmark = pytest.mark.browser

SWEEP_TIMEOUT_S = 120


def test_versions_show_metrics_lineage_and_aliases_and_an_alias_moves(
    page: Page, server: LiveServer
) -> None:
    tab, page = page, page.page
    with server.client() as http:
        base = submit(http, "linear", epochs=30)
        wait_for_job(http, base)
        tuned = submit(http, "linear", epochs=30, init_from=base)
        wait_for_job(http, tuned)
        board = run_sweep(
            http,
            {"model": "linear", "params": {"epochs": 20}, "space": {"lr": [0.01, 0.05]}},
            SWEEP_TIMEOUT_S,
        )
        http.put("/models/linear/aliases/production", json={"job_id": base}).raise_for_status()

    page.goto("/#registry/linear")
    rows = page.locator("#registry-view table.versions tbody tr")
    rows.nth(3).wait_for()

    def row(job_id: int) -> Any:
        return page.locator(f"#registry-view tr[data-job-id='{job_id}']")

    assert "production" in row(base).locator("td.aliases").inner_text()
    assert row(tuned).locator("td.lineage").inner_text() == f"from #{base}"
    for trial in board["leaderboard"]:
        assert row(trial["job_id"]).locator("td.lineage").inner_text() == f"sweep #{board['id']}"
    headings = page.locator("#registry-view table.versions th").all_inner_texts()
    assert {"train_loss", "w"} <= set(headings) and "epoch_seconds" not in headings
    assert page.locator("#registry-view .registry-models a.selected").inner_text() == "linear (4)"
    tab.shoot("versions")

    page.fill("#registry-view [name=alias]", "production")
    page.select_option("#registry-view [name=job_id]", str(tuned))
    page.click("#registry-view .alias-form button")
    page.locator("#registry-view .alias-message", has_text=f"production → #{tuned}").wait_for()
    assert "production" in row(tuned).locator("td.aliases").inner_text()
    assert "production" not in row(base).locator("td.aliases").inner_text()
    with server.client() as http:
        aliases = http.get("/models/linear/aliases").raise_for_status().json()["data"]
    assert [(a["alias"], a["job_id"]) for a in aliases] == [("production", tuned)]

    page.fill("#registry-view [name=alias]", "not a name")
    page.click("#registry-view .alias-form button")
    page.locator("#registry-view .alias-message", has_text="path.alias").wait_for()
    tab.shoot("alias-moved")
    assert tab.errors == []
