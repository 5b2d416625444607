"""Starting a sweep from the page: the form, the leaderboard's pruned trials, and the
parallel-coordinates plot of the searched options against the metric."""

from __future__ import annotations

import pytest

from tests.ui.conftest import Page
from tests.utils.live_server import LiveServer

pytestmark = pytest.mark.browser

SWEEP_TIMEOUT_S = 180
# Good rates first: asynchronous halving lets the first trials at a rung go on, so the slow
# rates that arrive later are the ones pruned.
RATES = "0.1, 0.05, 0.001, 0.0005"


def test_start_a_halving_sweep_from_the_page_and_read_its_plot(
    page: Page, server: LiveServer
) -> None:
    tab, page = page, page.page
    page.goto("/#sweeps")
    page.click("#sweep-view .sweep-create summary")
    form = page.locator("#sweep-form")
    form.locator("[name=model]").select_option("linear")
    form.locator("[name=params]").fill('{"epochs": 12}')
    rows = form.locator(".space-row")
    assert rows.count() == 1 and rows.nth(0).locator("[name=axis-name]").input_value() == "lr"
    rows.nth(0).locator("[name=axis-kind]").select_option("range")
    rows.nth(0).locator("[name=axis-values]").fill("0.1")
    form.locator("button[type=submit]").click()
    form.locator(".form-error", has_text="lr: a range is two numbers").wait_for()

    rows.nth(0).locator("[name=axis-kind]").select_option("grid")
    rows.nth(0).locator("[name=axis-values]").fill(RATES)
    form.locator(".add-axis").click()
    rows.nth(1).locator("[name=axis-name]").select_option("momentum")
    rows.nth(1).locator("[name=axis-values]").fill("0, 0.5")
    form.locator("[name=metric]").fill("train_loss")
    form.locator("[name=halving]").check()
    form.locator("[name=min_epochs]").fill("4")
    form.locator("[name=eta]").fill("2")
    tab.shoot("form")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/#sweep/*")
    sweep_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_selector("#sweep-view[data-status=finished]", timeout=SWEEP_TIMEOUT_S * 1000)
    assert page.locator("#sweep-view .sweep-create").is_hidden()

    with server.client() as http:
        board = http.get(f"/sweeps/{sweep_id}").raise_for_status().json()
    assert board["spec"]["space"] == {"lr": [0.1, 0.05, 0.001, 0.0005], "momentum": [0, 0.5]}
    assert board["rungs"] == [4, 8] and board["trials"] == 8
    pruned = {t["job_id"] for t in board["leaderboard"] if t["status"] == "pruned"}
    assert pruned, board["leaderboard"]
    for job_id in pruned:
        row = page.locator(f"#sweep-view .leaderboard tr[data-job-id='{job_id}']")
        assert row.locator(".badge").inner_text() == "pruned"

    plot = page.locator("#sweep-view [data-chart=parallel]")
    axes = plot.locator("g.axis-group")
    assert [axes.nth(i).get_attribute("data-axis") for i in range(axes.count())] == [
        "lr",
        "momentum",
        "train_loss (min)",
    ]
    valued = [t["job_id"] for t in board["leaderboard"] if t["best_value"] is not None]
    lines = plot.locator("polyline")
    assert sorted(int(lines.nth(i).get_attribute("data-job-id")) for i in range(lines.count())) == (
        sorted(valued)
    )
    assert plot.locator("polyline[data-status=pruned]").count() == len(pruned)
    assert "log" in axes.nth(0).text_content()  # 0.0005..0.1 spans decades
    tab.shoot("leaderboard-and-plot")
    assert tab.errors == []
