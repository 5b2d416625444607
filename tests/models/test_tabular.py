"""The tabular model: task inference, the submit-time 422s, preprocessing fitted on the
training split, and a short fit on a written table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from tests.utils.fit_runs import run_fit
from tests.utils.uploaded_datasets import lookup_in, write_images, write_table
from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import DataRoot, DataUnavailable
from torchkiln.models.common.tabular_data import infer_task
from torchkiln.models.tabular import RowsRejected, TabularInputs

SPEC = REGISTRY["tabular"]


def small_table(n: int = 120, seed: int = 0) -> dict[str, list[Any]]:
    rng = np.random.default_rng(seed)
    a = rng.normal(50, 10, n)
    colour = rng.choice(["red", "green", "blue"], n)
    label = [bool(v > 50) for v in a]
    a_list: list[Any] = a.round(2).tolist()
    a_list[3] = None  # a missing value, imputed
    return {
        "a": a_list,
        "b": rng.integers(0, 5, n).tolist(),
        "colour": colour.tolist(),
        "ok": label,
        "y": (2 * a + rng.normal(0, 1, n)).tolist(),
        "name": [f"row-{i}" for i in range(n)],
    }


@pytest.fixture
def datasets(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    write_table(root, 1, small_table())
    write_images(
        root, 2, {"": {"x": [np.zeros((4, 4), np.uint8)], "y": [np.ones((4, 4), np.uint8)]}}
    )
    return root


def parse(datasets: Path, **params: Any) -> Any:
    return SPEC.parse_options(
        {"dataset": 1, **params}, strict=True, context={"dataset_lookup": lookup_in(datasets)}
    )


def error_of(datasets: Path, **params: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        parse(datasets, **params)
    return str(caught.value)


def test_the_task_follows_the_target_column() -> None:
    def column(kind: str, distinct: int, categories: int = 0) -> dict[str, Any]:
        return {"name": "t", "type": kind, "distinct": distinct, "categories": ["c"] * categories}

    assert infer_task(column("boolean", 2, 2), None) == "binary"
    assert infer_task(column("categorical", 3, 3), None) == "multiclass"
    assert infer_task(column("numeric", 2), None) == "binary"
    assert infer_task(column("numeric", 7), None) == "regression"
    assert infer_task(column("numeric", 7), "multiclass") == "multiclass"
    with pytest.raises(ValueError, match="use task 'regression'"):
        infer_task(column("numeric", 300), "multiclass")
    with pytest.raises(ValueError, match="regression needs a numeric"):
        infer_task(column("categorical", 3, 3), "regression")


def test_submit_fills_lineage_and_names_what_is_wrong(datasets: Path) -> None:
    options = parse(datasets, target="ok", features=["a", "colour"])
    [entry] = options.lineage["datasets"]
    assert entry["id"] == 1 and entry["role"] == "train" and entry["schema"]["kind"] == "table"
    assert options.task == "binary" and options.loss == "bce"
    seed = parse(datasets, target="ok", preset="seed")
    assert (seed.hidden, seed.optimizer, seed.momentum) == ([6, 4], "sgd", 0.9)
    # Stored params parse again without the lookup.
    assert SPEC.parse_options(options.model_dump(mode="json")).lineage == options.lineage
    assert "does not exist; upload one with POST /datasets" in error_of(
        datasets, dataset=9, target="ok"
    )
    assert "is an image dataset" in error_of(datasets, dataset=2, target="ok")
    message = error_of(datasets, target="nope")
    assert "'nope' is not a column" in message and "columns: a, b, colour, ok, y, name" in message
    assert "'zzz' are not columns" in error_of(datasets, target="ok", features=["a", "zzz"])
    with pytest.raises(ValidationError, match="lineage missing"):
        SPEC.parse_options({"dataset": 1, "target": "ok"})


def test_text_columns_are_named_and_left_out(tmp_path: Path) -> None:
    table = small_table(1100)
    write_table(tmp_path, 1, table)
    assert "'name' are text columns" in error_of(tmp_path, target="ok", features=["a", "name"])
    options = parse(tmp_path, target="ok")
    assert "name" not in [c.name for c in options.plan().features]


def fitted(datasets: Path, **params: Any) -> tuple[Any, Any, list[dict[str, float]]]:
    options = parse(datasets, epochs=2, batch_size=16, **params)
    root = DataRoot(Path("unused"), datasets=datasets)
    state, history, _ = run_fit("tabular", options.model_dump(mode="json"), data_root=root)
    # The same job's spec again: it reads the same columns (its fitted figures are in state).
    return SPEC.for_options(options), state, history


def test_classifier_fits_preprocessing_on_the_training_split(datasets: Path) -> None:
    spec, state, history = fitted(datasets, target="ok", features=["a", "b", "colour"])
    assert {"train_loss", "val_loss", "val_accuracy"} <= set(history[-1])
    encoder = state.module.encoder
    # Means and stds of a and b over the training rows, missing a left out.
    values = np.array([v for v in small_table()["a"] if v is not None])
    assert abs(float(encoder.mean[0]) - values.mean()) < 3 * values.std() / math.sqrt(90)
    assert float(encoder.std[1]) > 0
    rows = [
        {"a": None, "b": 2, "colour": "purple", "ok": True},
        {"a": 70.0, "b": 1, "colour": "red"},
    ]
    batch = spec.preprocess(TabularInputs(rows=rows))
    assert math.isnan(batch[0, 0]) and batch[0, 2] == 3  # unknown colour: the reserved index
    with torch.no_grad():
        encoded = encoder(batch)
    assert encoded[0, 0] == 0  # imputed with the training mean: 0 once standardised
    assert encoded.shape == (2, 2 + 4)  # a, b and colour one-hot with "unknown"
    answer = spec.postprocess(state.module(batch))
    assert set(answer["predictions"][0]["probabilities"]) == {"false", "true"}
    with pytest.raises(RowsRejected, match="missing feature\\(s\\) 'colour'"):
        spec.preprocess(TabularInputs(rows=[{"a": 1, "b": 2}]))
    with pytest.raises(RowsRejected, match="'a' must be a number"):
        spec.preprocess(TabularInputs(rows=[{"a": "x", "b": 2, "colour": "red"}]))


def test_regression_records_rmse_mae_and_r2(datasets: Path) -> None:
    spec, state, history = fitted(datasets, target="y", features=["a", "colour"], lr=0.05)
    assert spec.task == "regression"
    assert {"val_rmse", "val_mae", "val_r2"} <= set(history[-1])
    # The output is in the target's units: its mean is stored, so predictions start near it.
    assert 80 < float(state.module.target_mean) < 120
    answer = spec.postprocess(
        state.module(spec.preprocess(TabularInputs(rows=[{"a": 50, "colour": "red"}])))
    )
    assert isinstance(answer["predictions"][0]["value"], float)


def test_a_missing_dataset_folder_is_data_unavailable(datasets: Path, tmp_path: Path) -> None:
    options = parse(datasets, target="ok")
    with pytest.raises(DataUnavailable, match="dataset 1 not found"):
        SPEC.for_options(options).load_data(options, DataRoot(Path("x"), datasets=tmp_path / "no"))


def test_defaults_stop_on_val_loss_and_serve_the_best_epoch(datasets: Path) -> None:
    options = parse(datasets, target="ok")
    assert (options.early_stopping.metric, options.early_stopping.patience) == ("val_loss", 5)
    assert options.watch is not None and options.watch.metric == "val_loss"
    # No validation split, no val_loss to watch: the defaults step aside, a user's stay.
    bare = parse(datasets, target="ok", val_fraction=0)
    assert bare.early_stopping is None and bare.watch is None
    kept = parse(datasets, target="ok", early_stopping=None, watch={"metric": "train_loss"})
    assert kept.early_stopping is None and kept.watch.metric == "train_loss"
    seed = parse(datasets, target="ok", preset="seed")
    assert seed.early_stopping is None and seed.watch is None  # the lesson's recipe, exactly
    # Labels that are noise: val_loss stalls within a few epochs of a wide network, and the
    # job stops there instead of memorising the training rows for all 300 epochs.
    noisy = small_table(200)
    noisy["ok"] = np.random.default_rng(1).integers(0, 2, 200).astype(bool).tolist()
    write_table(datasets, 3, noisy)
    params = {"dataset": 3, "target": "ok", "hidden": [256, 256], "lr": 0.01, "epochs": 300}
    root = DataRoot(Path("unused"), datasets=datasets)
    _, history, result = run_fit(
        "tabular", parse(datasets, **params).model_dump(mode="json"), data_root=root
    )
    assert len(history) < 300 and "val_loss" in (result.reason or ""), result
