from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from tests.models.fixtures import train
from torchkiln.models.common.registry import DataRoot
from torchkiln.models.diabetes import SPEC, DiabetesInputs, DiabetesOptions, diabetes_table

ROW = [0.0, 0.5, -0.5, 0.1, -0.2, 0.3, -0.9, 1.0]


def test_shipped_table_has_758_scaled_rows() -> None:
    table = diabetes_table()
    assert table.x.shape == (758, 8) and table.y.shape == (758, 1)
    assert table.x.dtype == table.y.dtype == torch.float32
    assert table.x.abs().max() <= 1 and set(table.y.unique().tolist()) == {0.0, 1.0}


def test_validation_split_follows_val_fraction(tmp_path) -> None:
    data = SPEC.load_data(DiabetesOptions(), DataRoot(tmp_path))
    assert data.val is not None and (len(data.train), len(data.val)) == (606, 152)
    assert data.test is None
    data = SPEC.load_data(DiabetesOptions(val_fraction=0), DataRoot(tmp_path))
    assert data.val is None and len(data.train) == 758


def test_network_is_8_6_4_1_and_outputs_a_logit() -> None:
    net = SPEC.build(DiabetesOptions(dropout=0.2))
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 6), (6, 4), (4, 1)]
    assert isinstance(net[-1], torch.nn.Linear)
    assert sum(isinstance(m, torch.nn.Sigmoid) for m in net) == 2
    assert net(torch.zeros(5, 8)).shape == (5, 1)


def test_training_lowers_the_loss(tmp_path) -> None:
    options = DiabetesOptions(epochs=20, optimizer="adam", lr=0.01)
    history = train(SPEC, options, SPEC.load_data(options, DataRoot(tmp_path)))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_accuracy"] > 0.7


def test_prediction_returns_probabilities() -> None:
    inputs = DiabetesInputs(features=[ROW, [0.0] * 8])
    batch = SPEC.preprocess(inputs)
    assert batch.shape == (2, 8)
    result = SPEC.postprocess(SPEC.build(DiabetesOptions())(batch))
    assert len(result["probabilities"]) == 2
    assert all(0 < p < 1 for p in result["probabilities"])


@pytest.mark.parametrize(
    "features",
    [[ROW[:7]], [[*ROW, 0.0]], [[*ROW[:7], 2.0]], [[*ROW[:7], math.nan]], []],
    ids=["seven", "nine", "out-of-range", "nan", "empty"],
)
def test_inputs_reject_bad_rows(features: list[list[float]]) -> None:
    with pytest.raises(ValidationError):
        DiabetesInputs(features=features)
