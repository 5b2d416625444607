from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.models.fixtures import train
from torchkiln.models.common.registry import DataRoot
from torchkiln.models.mnist_cnn import SPEC
from torchkiln.models.mnist_mlp import MnistOptions


def test_spec_shares_the_mnist_interface() -> None:
    assert SPEC.tags == ("mnist",) and SPEC.options is MnistOptions
    assert SPEC.decode_upload is not None and SPEC.augment is not None


@pytest.mark.parametrize("batch_norm", [False, True])
def test_network_output_shape_and_options(batch_norm: bool) -> None:
    net = SPEC.build(MnistOptions(batch_norm=batch_norm, dropout=0.25))
    assert any(isinstance(m, nn.BatchNorm2d) for m in net) == batch_norm
    assert [m.p for m in net if isinstance(m, nn.Dropout)] == [0.25, 0.25]
    assert sum(isinstance(m, nn.Conv2d) for m in net) == 2
    net.eval()
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_training_lowers_the_loss(mnist_root: DataRoot) -> None:
    options = MnistOptions(epochs=3, optimizer="adam", lr=1e-3, batch_size=16, batch_norm=True)
    history = train(SPEC, options, SPEC.load_data(options, mnist_root))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
