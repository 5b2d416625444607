"""The layer-list editor (live summary, presets, a 422 at the layer it names), a sequential
job's network summary, and the datasets panel with the form's dataset and column pickers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings
from tests.service.api.test_sequential import BROKEN, SMALL_MNIST
from tests.ui.conftest import Page
from tests.utils.live_server import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TINY_CSV = "x,colour,label\n" + "".join(
    f"{i},{'red' if i % 3 else 'blue'},{'yes' if i % 2 else 'no'}\n" for i in range(12)
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # No workers: submitted jobs stay queued, which is all the page needs here.
    root = tmp_path_factory.mktemp("ui-designs")
    live = LiveServer(make_settings(root, f"sqlite:///{root / 'kiln.db'}"), root / "log", workers=0)
    live.start()
    yield live
    live.stop()


def type_layers(page: Any, layers: list[dict[str, Any]]) -> None:
    page.fill("#option-layers", "[\n" + ",\n".join(map(json.dumps, layers)) + "\n]")


def total_parameters(page: Any) -> str:
    return page.locator(".layer-editor .net-total td").nth(3).inner_text()


def test_the_layer_editor_summarises_as_typed_and_shows_a_422_at_its_layer(page: Page) -> None:
    tab, page = page, page.page
    page.wait_for_selector("#model-select option[value=sequential]", state="attached")
    page.select_option("#model-select", "sequential")
    editor = page.locator(".layer-editor[data-state=ok]")
    editor.wait_for()
    default = page.request.post("/models/sequential/summary", data={}).json()
    assert total_parameters(page) == f"{default['parameters']:,}"
    assert page.locator(".layer-editor tbody tr").count() == len(default["layers"])

    preset = page.request.get("/models/sequential/presets").json()["data"][2]
    page.select_option("#layer-presets", preset["name"])
    expected = page.request.post("/models/sequential/summary", data=preset["params"]).json()
    page.wait_for_function(
        "n => document.querySelector('.layer-editor .net-total td:nth-child(4)')"
        "?.textContent === n",
        arg=f"{expected['parameters']:,}",
    )
    assert '"type":"conv2d"' in page.input_value("#option-layers").split("\n")[1]
    tab.shoot("preset-summary")

    # Shapes that disagree: the message names the layer; an unknown option: its loc does.
    page.select_option("#option-data", "cifar10")
    type_layers(page, BROKEN)
    wrong = page.locator(".layer-editor tr.layer-error[data-layer='layers[3]']")
    wrong.wait_for()
    message = page.locator(".layer-editor tr.layer-message").inner_text()
    assert "expects 1024 input features, receives 4096 (64×8×8)" in message
    type_layers(page, [*BROKEN[:1], {"type": "linear", "out_features": 10, "widht": 3}])
    page.locator(".layer-editor tr.layer-message", has_text="Extra inputs").wait_for()
    assert page.locator(".layer-editor tr.layer-error").get_attribute("data-layer") == "layers[1]"
    tab.shoot("layer-422")

    page.select_option("#option-data", "mnist")
    type_layers(page, SMALL_MNIST)
    page.locator(".layer-editor[data-state=ok] .net-summary td", has_text="4×7×7").wait_for()
    page.click("#submit-job")
    page.wait_for_url("**/#job/*")
    job_id = int(page.url.rsplit("/", 1)[1])
    network = page.locator("#job-view .job-network")
    network.locator(".net-summary tfoot").wait_for()
    assert network.locator(".network-link").get_attribute("href") == f"/jobs/{job_id}/summary"
    stored = page.request.get(f"/jobs/{job_id}/summary").json()
    assert network.locator("tbody tr").count() == len(SMALL_MNIST)
    assert network.locator(".net-total td").nth(3).inner_text() == f"{stored['parameters']:,}"
    tab.shoot("job-network")
    # A distributed run's world, as the job view words it (GET /jobs/{id}'s `distributed`).
    world = {
        "world_size": 2,
        "backend": "gloo",
        "ranks": [
            {"rank": 0, "host": "a", "device": "cpu", "samples_per_s": 1216.4},
            {"rank": 1, "host": "b", "device": "cpu", "samples_per_s": None},
        ],
    }
    shown = page.evaluate("w => import('/static/js/jobview.js').then((m) => m.worldText(w))", world)
    assert shown == "2 processes (gloo): rank 0 a cpu 1,216 samples/s; rank 1 b cpu"
    assert tab.errors == []


def test_the_datasets_panel_uploads_a_csv_and_feeds_the_pickers(page: Page, tmp_path: Path) -> None:
    tab, page = page, page.page
    page.wait_for_selector("#model-select option", state="attached")
    if page.request.get("/datasets").status == 404:
        assert page.locator("#datasets-panel").is_hidden()
        pytest.skip("this server has no /datasets route: the panel stays hidden")
    csv = tmp_path / "colours.csv"
    csv.write_text(TINY_CSV)
    page.locator("#datasets-panel").wait_for()
    page.set_input_files("#dataset-upload input[name=file]", str(csv))
    page.click("#dataset-upload button[type=submit]")
    schema = page.locator("#datasets-panel .dataset-detail .dataset-schema")
    schema.locator("tr[data-column=label]").wait_for()
    types = {
        name: schema.locator(f"tr[data-column={name}] td").nth(1).inner_text()
        for name in ("x", "colour", "label")
    }
    assert types == {"x": "numeric", "colour": "categorical", "label": "categorical"}
    assert schema.locator("tr[data-column=colour] td").nth(2).inner_text() == "0"  # missing
    dataset_id = int(page.locator(".dataset-detail").get_attribute("data-dataset-id"))
    row = page.locator(f"#dataset-list tr[data-dataset-id='{dataset_id}']")
    assert "12 rows" in row.inner_text()
    tab.shoot("dataset-schema")

    # Any model whose options name a dataset and a target column gets both pickers.
    models = page.request.get("/models").json()["data"]
    tabular = [
        m["name"] for m in models if {"dataset", "target"} <= set(m["options_schema"]["properties"])
    ]
    assert tabular, "no model takes a dataset and a target column"
    page.select_option("#model-select", tabular[0])
    page.select_option("#option-dataset", str(dataset_id))
    assert page.locator("#option-lineage").count() == 0  # readOnly: the server records it
    page.locator("#option-target option[value=label]").wait_for(state="attached")
    columns = page.eval_on_selector_all("#option-target option", "os => os.map(o => o.value)")
    assert columns == ["", "x", "colour", "label"]
    page.select_option("#option-target", "label")
    if page.locator("#option-features").count():
        page.click("#job-fields .advanced summary")
        assert page.locator("#option-features option[value=label]").is_disabled()
        page.select_option("#option-features", ["x", "colour"])
        assert page.input_value("#option-features-typed") == '["x","colour"]'
    # The table defaults' early stopping shows as on (an unchecked box would send null).
    assert page.locator("#option-early_stopping").is_checked()
    tab.shoot("pickers")
    page.click("#submit-job")
    page.wait_for_url("**/#job/*")
    job_id = int(page.url.rsplit("/", 1)[1])
    params = page.request.get(f"/jobs/{job_id}").json()["params"]
    assert (params["dataset"], params["target"]) == (dataset_id, "label")
    assert params["early_stopping"]["metric"] == params["watch"]["metric"] == "val_loss"
    page.request.post(f"/jobs/{job_id}/cancel")  # a queued job's dataset cannot be deleted

    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button.dataset-delete").click()
    row.wait_for(state="detached")
    assert tab.errors == []
