"""The image classifier: split folders, the decoded-size cap, fitted channel statistics, and
a short fit on written images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from tests.utils.fit_runs import run_fit
from tests.utils.uploaded_datasets import lookup_in, png, write_images, write_table
from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import DataRoot, DataUnavailable

SPEC = REGISTRY["image_classifier"]


def shapes(n: int, seed: int, rgb: bool = False) -> dict[str, list[np.ndarray]]:
    """Bright squares top-left ("a") or bottom-right ("b") on noise, 12x12."""
    rng = np.random.default_rng(seed)
    classes: dict[str, list[np.ndarray]] = {"a": [], "b": []}
    for i in range(n):
        pixels = rng.integers(0, 60, (12, 12, 3) if rgb else (12, 12)).astype(np.uint8)
        name = "ab"[i % 2]
        if name == "a":
            pixels[1:6, 1:6] = 250
        else:
            pixels[6:11, 6:11] = 250
        classes[name].append(pixels)
    return classes


@pytest.fixture
def datasets(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    write_images(root, 1, {"train": shapes(40, 0), "val": shapes(10, 1), "test": shapes(10, 2)})
    write_images(root, 2, {"": shapes(30, 3, rgb=True)})
    write_table(root, 3, {"x": [1, 2], "y": ["a", "b"]})
    return root


def parse(datasets: Path, **params: Any) -> Any:
    context = {"dataset_lookup": lookup_in(datasets)}
    return SPEC.parse_options({"dataset": 1, **params}, strict=True, context=context)


def test_split_folders_train_and_statistics_travel_in_the_network(datasets: Path) -> None:
    options = parse(
        datasets, image_size=8, channels=[4], epochs=2, batch_size=8, augment=["flip", "crop"]
    )
    root = DataRoot(Path("unused"), datasets=datasets)
    state, history, _ = run_fit("image_classifier", options.model_dump(mode="json"), data_root=root)
    assert {"val_accuracy", "test_accuracy"} <= set(history[-1])
    standardise = state.module[0]
    assert standardise.mean.shape == (1, 1, 1) and 0.1 < float(standardise.mean) < 0.6
    spec = SPEC.for_options(options)
    answer = spec.postprocess(state.module.eval()(spec.decode_upload(png(shapes(1, 9)["a"][0]))))
    assert answer["predictions"][0]["label"] in {"a", "b"}
    assert [g["label"] for g in answer["predictions"][0]["top_k"]] != []


def test_no_split_folders_rgb_and_a_stratified_validation_split(datasets: Path) -> None:
    options = parse(datasets, dataset=2, image_size=8, val_fraction=0.2)
    data = SPEC.for_options(options).load_data(options, DataRoot(Path("x"), datasets=datasets))
    assert data.train.x.shape[1:] == (3, 8, 8) and len(data.val) == 6
    assert data.val.y.bincount().tolist() == [3, 3]
    assert data.train.x.dtype == torch.float32 and float(data.train.x.max()) <= 1


def test_too_many_decoded_bytes_fail_at_once(datasets: Path) -> None:
    options = parse(datasets, image_size=64)
    root = DataRoot(Path("x"), datasets=datasets, max_decoded_bytes=500_000)
    with pytest.raises(DataUnavailable, match="over the MAX_DECODED_BYTES limit"):
        SPEC.for_options(options).load_data(options, root)


def test_wrong_kind_and_tiny_images_are_422s(datasets: Path) -> None:
    assert parse(datasets, augment=True).augment == ["flip", "crop"]
    with pytest.raises(ValidationError, match="dataset 3 is a table dataset"):
        parse(datasets, dataset=3)
    with pytest.raises(ValidationError, match="too small for 4 pooling blocks"):
        parse(datasets, image_size=8, channels=[4, 4, 4, 4])
