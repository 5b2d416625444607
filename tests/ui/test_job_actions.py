"""Acting on jobs from the page: cancel, label, logs, download, clone-and-edit, delete; a
failed job's error where its chart would be, a one-epoch job's dot, a job that cannot run."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.ui.conftest import Page
from tests.ui.test_web_page import JOB_TIMEOUT_S, wait_for_view_status
from tests.ui.test_web_page import submit as submit_first

pytestmark = pytest.mark.browser


def api_job(page: Any, **body: Any) -> int:
    response = page.request.post("/jobs", data={"model": "linear", **body})
    assert response.status == 201, response.text()
    return response.json()["id"]


def submit(tab: Page, model: str, **options: str) -> int:
    """Like test_web_page's submit, but waits for the hash to name a new job: after the
    first submit the URL already matches ``#job/*``."""
    before = tab.page.url
    if "#job/" not in before:
        return submit_first(tab, model, **options)
    tab.page.select_option("#model-select", model)
    for name, value in options.items():
        tab.page.fill(f"#option-{name}", value)
    tab.page.click("#submit-job")
    tab.page.wait_for_function(f"location.href !== {before!r}")
    return int(tab.page.url.rsplit("/", 1)[1])


def open_job(page: Any, job_id: int) -> None:
    page.evaluate(f"location.hash = '#job/{job_id}'")
    page.wait_for_selector(f"#job-view[data-job-id='{job_id}']")


def test_cancel_label_logs_download_clone_and_delete(page: Page) -> None:
    tab, page = page, page.page
    page.wait_for_selector("#option-epochs")
    long_job = submit(tab, "linear", epochs="100000")
    page.click("#job-view [data-action=cancel]")
    wait_for_view_status(page, "cancelled")
    assert page.locator("#job-view [data-action=cancel]").is_hidden()
    tab.shoot("cancelled")

    job_id = submit(tab, "linear", epochs="50", lr="0.05")
    wait_for_view_status(page, "succeeded")
    page.click("#job-view .job-params summary")
    assert page.inner_text("#job-view .job-params tr[data-param=lr]").split() == ["lr", "0.05"]
    page.fill(".job-labels [name=name]", "first try")
    page.fill(".job-labels [name=tags]", "baseline, lr")
    page.fill(".job-labels [name=note]", "before the schedule")
    page.click(".job-labels button")
    page.locator("#job-view .action-message", has_text="saved").wait_for()
    saved = page.request.get(f"/jobs/{job_id}").json()
    assert (saved["name"], saved["tags"], saved["note"]) == (
        "first try",
        ["baseline", "lr"],
        "before the schedule",
    )
    assert "first try" in page.inner_text("#job-view .job-title")

    page.click("#job-view [data-action=logs]")
    page.locator("#job-view .job-logs", has_text="succeeded").wait_for()
    with page.expect_download() as download:
        page.click("#job-view [data-action=download]")
    assert download.value.suggested_filename.endswith(".safetensors")
    tab.shoot("labelled-logs")

    page.click("#job-view [data-action=clone]")
    page.locator("#model-summary", has_text=f"Cloned from job #{job_id}").wait_for()
    assert page.input_value("#model-select") == "linear"
    assert page.input_value("#option-lr") == "0.05" and page.input_value("#option-epochs") == "50"
    tab.shoot("cloned-into-the-form")
    page.fill("#option-epochs", "7")
    page.click("#submit-job")
    page.wait_for_function(f"location.hash !== '#job/{job_id}'")
    clone = page.request.get(f"/jobs/{page.url.rsplit('/', 1)[1]}").json()
    assert clone["params"]["lr"] == 0.05 and clone["params"]["epochs"] == 7

    open_job(page, long_job)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#job-view [data-action=delete]")
    page.wait_for_selector("#job-view", state="hidden")
    assert page.request.get(f"/jobs/{long_job}").status == 404
    page.locator(f"#job-list tr[data-job-id='{long_job}']").wait_for(state="detached")
    assert tab.errors == []


def test_failed_one_epoch_and_waiting_jobs(page: Page) -> None:
    tab, page = page, page.page
    # init_from is checked at submit now; a diverging loss still fails the job at once.
    # SGD at the largest lr on wide inputs: the loss overflows within a few epochs.
    diverging = {"optimizer": "sgd", "lr": 10, "data": {"x": [10, 20, 30], "y": [20, 40, 60]}}
    failed = api_job(page, params={"epochs": 50, **diverging})
    open_job(page, failed)
    wait_for_view_status(page, "failed")
    error = page.locator("#job-view .job-error")
    error.wait_for()
    assert "diverged" in error.inner_text()
    tab.shoot("failed-job")

    one = api_job(page, params={"epochs": 1})
    open_job(page, one)
    wait_for_view_status(page, "succeeded")
    page.wait_for_selector("[data-chart=loss] circle.point[data-series=train_loss]")
    tab.shoot("one-epoch-dot")

    stuck = api_job(page, device="cuda:63")
    open_job(page, stuck)
    state = page.locator("#job-view .job-state", has_text="waiting: no live worker")
    state.wait_for(timeout=JOB_TIMEOUT_S * 1000)
    tab.shoot("waiting-for-a-device")
    page.click("#job-view [data-action=cancel]")
    wait_for_view_status(page, "cancelled")
    assert tab.errors == []


def listed_ids(page: Any) -> list[int]:
    return [
        int(i)
        for i in page.eval_on_selector_all(
            "#job-list tbody tr", "rs => rs.map(r => r.dataset.jobId)"
        )
    ]


def test_the_job_list_filters_and_sorts(page: Page) -> None:
    tab, page = page, page.page
    alpha = api_job(page, name="alpha run", tags=["keep"], params={"epochs": 3})
    beta = api_job(page, name="beta", note="compare with alpha", params={"epochs": 3})
    other = api_job(page, model="quadratic", params={"epochs": 3})
    page.locator(f"#job-list tr[data-job-id='{other}']").wait_for()
    page.fill("#job-filters [name=q]", "alpha")
    page.wait_for_function(
        "[...document.querySelectorAll('#job-list tbody tr')].map(r => r.dataset.jobId).join()"
        f" === '{beta},{alpha}'"
    )
    assert "alpha run" in page.inner_text(f"#job-list tr[data-job-id='{alpha}']")
    page.fill("#job-filters [name=q]", "")
    page.fill("#job-filters [name=tag]", "keep")
    page.wait_for_function(
        "[...document.querySelectorAll('#job-list tbody tr')].map(r => r.dataset.jobId).join()"
        f" === '{alpha}'"
    )
    tab.shoot("filtered-by-tag")
    page.fill("#job-filters [name=tag]", "")
    page.select_option("#job-filters [name=sort]", "id")
    # Oldest first: ascending ids (other tests' jobs are here too, some deleted).
    page.wait_for_function(
        "(ids => ids.length > 2 && ids.every((id, i) => i === 0 || ids[i - 1] < id))("
        "[...document.querySelectorAll('#job-list tbody tr')].map(r => Number(r.dataset.jobId)))"
    )
    assert listed_ids(page) == sorted(listed_ids(page))
    page.fill("#job-filters [name=q]", "no such job")
    page.locator("#job-list-message", has_text="No job matches.").wait_for()
    assert tab.errors == []


def test_a_pruned_trial_is_labelled_pruned(page: Page) -> None:
    tab, page = page, page.page
    # As tests/integration/test_sweeps_e2e.py: the smallest rates reach the rung last, worst.
    body = {
        "model": "diabetes",
        "params": {"epochs": 6, "momentum": 0.9},
        "space": {"lr": [0.3, 0.1, 0.003, 0.001]},
        "halving": {"rungs": [2], "eta": 3},
    }
    created = page.request.post("/sweeps", data=body)
    assert created.status == 201, created.text()
    sweep_id = created.json()["id"]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        board = page.request.get(f"/sweeps/{sweep_id}").json()
        if board["status"] == "finished":
            break
        assert time.monotonic() < deadline, board
        page.wait_for_timeout(300)
    pruned = [t["job_id"] for t in board["leaderboard"] if t["status"] == "pruned"]
    assert pruned, board
    open_job(page, pruned[0])
    page.locator("#job-view .job-state .status-pruned", has_text="pruned").wait_for()
    page.locator(f"#job-list tr[data-job-id='{pruned[0]}'] .status-pruned").wait_for()
    tab.shoot("pruned-trial")
    page.evaluate(f"location.hash = '#sweep/{sweep_id}'")
    row = page.locator(f"#sweep-view .leaderboard tr[data-job-id='{pruned[0]}']")
    assert "pruned" in row.inner_text()
    assert tab.errors == []
