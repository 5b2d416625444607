"""The job form: essentials first, the rest folded; early stopping, scheduler and watch as
sub-forms from their schemas; errors beside the sub-field; the new job selected and in view."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.ui.conftest import Page
from tests.ui.test_web_page import wait_for_view_status

pytestmark = pytest.mark.browser


def in_viewport(page: Any, selector: str) -> bool:
    return page.evaluate(
        "s => { const r = document.querySelector(s).getBoundingClientRect();"
        " return r.top >= 0 && r.top < innerHeight; }",
        selector,
    )


def field_error(page: Any, option: str, field: str) -> Any:
    return page.locator(f".subform[data-field={option}] .field[data-field={field}] .field-error")


def test_essentials_then_structured_advanced_options_and_the_job_in_view(page: Page) -> None:
    tab, page = page, page.page
    page.wait_for_selector("#option-epochs")
    # Every model's schema renders (sequential's layer list, clusters2d's data object...).
    for model in page.eval_on_selector_all("#model-select option", "os => os.map(o => o.value)"):
        page.select_option("#model-select", model)
        assert page.locator("#job-fields .essentials #option-epochs").count() == 1
    page.select_option("#model-select", "linear")
    essentials = page.locator("#job-fields .essentials > [data-field]")
    names = [essentials.nth(i).get_attribute("data-field") for i in range(essentials.count())]
    assert names == ["epochs", "optimizer", "lr", "batch_size"]
    assert page.locator("#option-seed").is_hidden()
    tab.shoot("essentials")

    page.click("#job-fields .advanced summary")
    page.check("#option-early_stopping")
    page.fill("#option-early_stopping-metric", "train_loss")
    page.fill("#option-early_stopping-patience", "3")
    page.select_option("#option-scheduler", "step")
    assert page.locator("#option-scheduler-cosine-t_max").is_hidden()
    page.fill("#option-scheduler-step-step_size", "5")
    page.fill("#option-scheduler-step-gamma", "2")
    page.check("#option-watch")
    page.fill("#option-epochs", "40")
    page.fill("#option-lr", "0.05")
    page.click("#submit-job")
    field_error(page, "scheduler", "gamma").wait_for()
    assert "less than or equal to 1" in field_error(page, "scheduler", "gamma").inner_text()
    assert "required" in field_error(page, "watch", "metric").inner_text().lower()
    assert "#job/" not in page.url
    tab.shoot("sub-field-errors")

    page.fill("#option-scheduler-step-gamma", "0.5")
    page.fill("#option-watch-metric", "train_loss")
    page.click("#submit-job")
    page.wait_for_url("**/#job/*")
    job_id = int(page.url.rsplit("/", 1)[1])
    page.locator(f"#job-list tr.selected[data-job-id='{job_id}']").wait_for()
    assert in_viewport(page, "#job-view")
    job = page.request.get(f"/jobs/{job_id}").json()
    assert job["params"]["early_stopping"] == {
        "metric": "train_loss",
        "patience": 3,
        "min_delta": 0.0,
        "mode": "min",
    }
    assert job["params"]["scheduler"] == {"kind": "step", "step_size": 5, "gamma": 0.5}
    assert job["params"]["watch"] == {"metric": "train_loss", "mode": "min"}
    wait_for_view_status(page, "succeeded")
    tab.shoot("submitted-in-view")

    page.select_option("#model-select", "quadratic")  # the clone must switch back
    page.click("#job-view [data-action=clone]")
    page.locator("#model-summary", has_text=f"Cloned from job #{job_id}").wait_for()
    assert page.locator("#job-fields .advanced").get_attribute("open") is not None
    assert page.input_value("#option-scheduler") == "step"
    assert page.input_value("#option-scheduler-step-step_size") == "5"
    assert page.is_checked("#option-early_stopping") and page.is_checked("#option-watch")
    assert page.input_value("#option-watch-metric") == "train_loss"
    tab.shoot("cloned-sub-forms")
    assert tab.errors == []


def test_a_queued_job_shows_its_place_and_estimated_start(page: Page) -> None:
    tab, page = page, page.page

    def submit(epochs: int) -> int:
        body = {"model": "linear", "params": {"epochs": epochs}}
        response = page.request.post("/jobs", data=body)
        assert response.status == 201, response.text()
        return response.json()["id"]

    def status(job_id: int) -> dict[str, Any]:
        return page.request.get(f"/jobs/{job_id}").json()

    def wait_for(job_ids: list[int], state: str) -> None:
        deadline = time.monotonic() + 60
        while not all(status(job_id)["status"] == state for job_id in job_ids):
            assert time.monotonic() < deadline, [status(job_id) for job_id in job_ids]
            page.wait_for_timeout(100)

    wait_for([submit(20)], "succeeded")  # epochs of linear have run: their time is known
    blockers = [submit(100_000), submit(100_000)]  # one per worker of the server
    wait_for(blockers, "running")
    waiting = submit(10)
    job = status(waiting)
    assert job["queue_position"] == 1 and job["queue_estimate_s"] > 0
    page.evaluate(f"location.hash = '#job/{waiting}'")
    page.locator("#job-view .job-state .queue", has_text="queue #1, starts in about").wait_for()
    row = page.locator(f"#job-list tr[data-job-id='{waiting}']")
    row.locator("td.num", has_text="queue #1 · ~").wait_for()
    tab.shoot("queued-with-estimate")
    for job_id in [waiting, *blockers]:
        page.request.post(f"/jobs/{job_id}/cancel")
    wait_for_view_status(page, "cancelled")
    assert tab.errors == []
