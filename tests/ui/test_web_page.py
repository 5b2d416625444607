"""The web page in headless Chromium: submit from the form, watch curves grow, draw a digit."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.ui.conftest import API_KEY, Page

pytestmark = pytest.mark.browser

JOB_TIMEOUT_S = 240


def job_id_from_url(page: Any) -> int:
    page.wait_for_url("**/#job/*")
    return int(page.url.rsplit("/", 1)[1])


def submit(tab: Page, model: str, choices: dict[str, str] | None = None, **options: str) -> int:
    """Pick the model (which redraws the form), fill in options, submit; the new job's id."""
    page = tab.page
    page.select_option("#model-select", model)
    for name, value in (choices or {}).items():
        page.select_option(f"#option-{name}", value)
    for name, value in options.items():
        page.fill(f"#option-{name}", value)
    page.click("#submit-job")
    return job_id_from_url(page)


def series_count(page: Any, chart: str, series: str) -> int:
    line = page.locator(f"[data-chart={chart}] polyline[data-series={series}]")
    return int(line.get_attribute("data-count")) if line.count() else 0


def wait_for_view_status(page: Any, status: str) -> None:
    page.wait_for_selector(f"#job-view[data-status={status}]", timeout=JOB_TIMEOUT_S * 1000)


def draw_digit(page: Any, strokes: list[list[tuple[int, int]]]) -> None:
    box = page.locator("#digit-canvas").bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=6)
        page.mouse.up()


SEVEN = [[(70, 60), (210, 60), (120, 240)]]


def test_submit_a_job_and_watch_its_curve_grow(page: Page) -> None:
    tab, page = page, page.page
    page.wait_for_selector("#option-epochs")
    tab.shoot("form")
    job_id = submit(tab, "logistic_hours", epochs="8000", lr="0.5")
    page.wait_for_selector("#job-view:not([hidden])")

    counts: list[int] = []
    growing_shot = None
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        counts.append(series_count(page, "loss", "train_loss"))
        if 1000 <= counts[-1] < 8000 and not growing_shot:
            growing_shot = tab.shoot("curve-growing")
        if page.get_attribute("#job-view", "data-status") == "succeeded" and counts[-1] == 8000:
            break
        page.wait_for_timeout(100)
    growing = sorted({c for c in counts if 0 < c < 8000})
    assert counts[-1] == 8000, counts[-20:]
    assert len(growing) >= 2, f"the curve never grew while the job ran: {growing}"
    assert counts == sorted(counts)

    row = page.locator(f"#job-list tr[data-job-id='{job_id}']")
    row.locator(".status-succeeded").wait_for(timeout=10_000)
    hours = page.locator("[data-chart=hours] polyline[data-series='P(pass)']")
    hours.wait_for(timeout=30_000)
    assert hours.get_attribute("data-count") == "61"
    page.wait_for_timeout(300)  # one animation frame for the last redraw
    tab.shoot("succeeded-with-hours-curve")
    assert tab.errors == []


def test_a_rejected_option_is_shown_next_to_its_field(page: Page) -> None:
    tab, page = page, page.page
    page.wait_for_selector("#option-epochs")
    page.select_option("#model-select", "linear_noisy")
    page.fill("#option-lr", "100")
    page.click("#submit-job")
    error = page.locator(".field[data-field=lr] .field-error")
    error.wait_for()
    assert "less than or equal to 10" in error.inner_text()
    assert "#job/" not in page.url
    tab.shoot("rejected-lr")
    assert tab.errors == []


def test_train_mnist_from_the_form_then_draw_a_digit(page: Page) -> None:
    tab, page = page, page.page
    page.wait_for_selector("#option-epochs")
    draw_digit(page, SEVEN)
    page.click("#digit-predict")
    page.locator("#digit-result .error").wait_for()
    assert "no trained" in page.inner_text("#digit-result")
    tab.shoot("no-mnist-model-yet")

    adam = {"optimizer": "adam"}
    job_id = submit(tab, "mnist_mlp", adam, epochs="3", lr="0.001", batch_size="32")
    wait_for_view_status(page, "succeeded")
    assert series_count(page, "accuracy", "val_accuracy") == 3
    page.locator(f"#job-list tr[data-job-id='{job_id}'] .status-succeeded").wait_for()
    tab.shoot("mnist-trained")

    page.click("#digit-clear")
    draw_digit(page, SEVEN)
    page.click("#digit-predict")
    answer = page.locator("#digit-result .digit-answer")
    answer.wait_for(timeout=60_000)
    assert answer.get_attribute("data-digit") in {str(d) for d in range(10)}
    assert page.locator("#digit-result .top3 li").count() == 3
    assert f"job #{job_id}" in page.inner_text("#digit-result")
    tab.shoot("digit-predicted")
    assert tab.errors == []


def test_with_an_api_key_the_page_streams_through_fetch(keyed_page: Page) -> None:
    tab, page = keyed_page, keyed_page.page
    page.locator("#job-list-message", has_text="401").wait_for()
    tab.shoot("key-missing")
    page.fill("#api-key", API_KEY)
    page.click("#api-key-form button")
    page.wait_for_selector("#option-epochs")

    submit(tab, "linear_noisy", epochs="3000")
    wait_for_view_status(page, "succeeded")
    page.wait_for_function(
        "document.querySelector('[data-chart=loss] polyline[data-series=train_loss]')"
        "?.dataset.count === '3000'"
    )
    assert page.evaluate("localStorage.getItem('torchkiln.apiKey')") == API_KEY
    tab.shoot("streamed-with-key")
    assert tab.errors == []
