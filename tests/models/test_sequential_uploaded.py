"""A layer list on an uploaded dataset: images and tables train, predict, and are refused
at submit when the list cannot fit them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from tests.models.test_image_classifier import shapes
from tests.models.test_tabular import small_table
from tests.utils.fit_runs import run_fit
from tests.utils.uploaded_datasets import lookup_in, png, write_images, write_table
from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import DataRoot

SPEC = REGISTRY["sequential"]
IMAGE_LAYERS = [
    {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"type": "relu"},
    {"type": "flatten"},
    {"type": "linear", "out_features": 2},
]
TABLE_LAYERS = [{"type": "linear", "out_features": 8}, {"type": "relu"}]


@pytest.fixture
def datasets(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    write_images(root, 1, {"train": shapes(24, 0), "val": shapes(8, 1)})
    write_table(root, 2, small_table(60))
    return root


def parse(datasets: Path, **params: Any) -> Any:
    context = {"dataset_lookup": lookup_in(datasets)}
    return SPEC.parse_options(params, strict=True, context=context)


def refusal(datasets: Path, **params: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        parse(datasets, **params)
    return caught.value.errors()[0]["msg"]


def test_an_image_dataset_trains_and_predicts_an_upload(datasets: Path) -> None:
    options = parse(datasets, data=1, image_size=8, layers=IMAGE_LAYERS, epochs=1, batch_size=8)
    params = options.model_dump(mode="json")
    assert [d["id"] for d in params["lineage"]["datasets"]] == [1]
    assert (params["optimizer"], params["image_size"]) == ("adam", 8)
    summary = SPEC.describe(SPEC.parse_options(params))  # stored params: no lookup needed
    assert summary.input_shape == [1, 8, 8] and summary.output_shape == [2]
    root = DataRoot(Path("unused"), datasets=datasets)
    state, history, _ = run_fit("sequential", params, data_root=root)
    assert len(history) == 1 and "val_accuracy" in history[0]
    assert 0.1 < float(state.module[0].mean) < 0.6  # the fitted standardisation
    spec = SPEC.for_options(options)
    network = state.module.eval()
    answer = spec.postprocess(network(spec.decode_upload(png(shapes(1, 9)["a"][0]))))
    assert answer["predictions"][0]["label"] in {"a", "b"}
    body = SPEC.inputs.model_validate({"image": shapes(2, 9)["b"][0].tolist()})
    assert spec.postprocess(network(spec.preprocess(body)))["predictions"][0]["top_k"]


def test_a_list_that_does_not_fit_the_dataset_is_refused_naming_it(datasets: Path) -> None:
    wide = [*IMAGE_LAYERS[:-1], {"type": "linear", "out_features": 10}]
    assert "dataset 1 needs 2 class scores" in refusal(datasets, data=1, layers=wide)
    wrong = [{"type": "flatten"}, {"type": "linear", "in_features": 5, "out_features": 2}]
    assert "layers[1] (linear): expects 5 input features" in refusal(datasets, data=1, layers=wrong)
    assert "dataset 9 does not exist" in refusal(datasets, data=9, layers=wide)
    assert "target applies to uploaded tables" in refusal(
        datasets, data=1, layers=IMAGE_LAYERS, target="x"
    )
    assert "has no default network" in refusal(datasets, data=1)
    assert "lineage is recorded for uploaded" in refusal(datasets, lineage={"datasets": []})
    with pytest.raises(ValidationError, match="dataset lineage missing"):
        SPEC.parse_options({"data": 1, "layers": IMAGE_LAYERS})


def test_a_table_dataset_needs_a_target_then_serves_raw_rows(datasets: Path) -> None:
    layers = [*TABLE_LAYERS, {"type": "linear", "out_features": 1}]
    message = refusal(datasets, data=2, layers=layers)
    assert "a table dataset needs target: one of ['a', 'b', 'colour', 'ok', 'y', 'name']" in message
    three = [*TABLE_LAYERS, {"type": "linear", "out_features": 3}]
    assert "needs 1 logit" in refusal(datasets, data=2, target="ok", layers=three)
    options = parse(
        datasets, data=2, target="ok", features=["a", "colour"], layers=layers, epochs=1
    )
    assert (options.task, options.loss) == ("binary", "bce")
    # 1 numeric column, "colour" one-hot over its 3 values and "unknown".
    assert SPEC.describe(options).input_shape == [5]
    root = DataRoot(Path("unused"), datasets=datasets)
    params = options.model_dump(mode="json")
    state, history, _ = run_fit("sequential", params, data_root=root)
    assert len(history) == 1
    assert torch.isfinite(state.module.encoder.mean).all()
    spec = SPEC.for_options(options)
    rows = [{"a": 61.0, "colour": "red"}, {"a": None, "colour": "mauve"}]  # missing, unknown
    body = SPEC.inputs.model_validate({"rows": rows})
    answer = spec.postprocess(state.module.eval()(spec.preprocess(body)))
    assert [set(p["probabilities"]) for p in answer["predictions"]] == [{"false", "true"}] * 2
    regression = parse(datasets, data=2, target="y", layers=layers, loss="l1")
    assert SPEC.for_options(regression).task == "regression"
