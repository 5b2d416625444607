from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from torch import nn

from tests.models.fixtures import synthetic_cifar, train
from torchkiln.models.cifar10_cnn import SPEC, Cifar10Inputs, Cifar10Options
from torchkiln.models.common.datasets import CIFAR_CLASSES, CIFAR_MEAN, CIFAR_STD
from torchkiln.models.common.registry import DataRoot

BLACK = [[[0, 0, 0] for _ in range(32)] for _ in range(32)]


def test_spec_is_tagged_cifar10_with_recipe_defaults() -> None:
    options = Cifar10Options()
    assert SPEC.tags == ("cifar10",) and SPEC.task == "multiclass"
    assert (options.optimizer, options.lr, options.momentum) == ("sgd", 0.01, 0.9)
    assert (options.batch_size, options.val_fraction) == (64, 0.1)


def test_load_data_uses_every_training_batch_present(cifar_root: DataRoot) -> None:
    data = SPEC.load_data(Cifar10Options(val_fraction=0.2), cifar_root)
    assert data.val is not None and data.test is not None
    assert (len(data.train), len(data.val), len(data.test)) == (80, 20, 30)
    assert data.train.x.shape[1:] == (3, 32, 32) and data.train.y.dtype == torch.int64


@pytest.mark.parametrize("batch_norm", [False, True])
def test_network_is_the_classic_three_block_net(batch_norm: bool) -> None:
    net = SPEC.build(Cifar10Options(batch_norm=batch_norm, dropout=0.3))
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size) for m in convs] == [
        (3, 32, (5, 5)),
        (32, 32, (5, 5)),
        (32, 64, (5, 5)),
    ]
    linears = [(m.in_features, m.out_features) for m in net if isinstance(m, nn.Linear)]
    assert linears == [(1024, 64), (64, 10)]
    assert any(isinstance(m, nn.BatchNorm2d) for m in net) == batch_norm
    net.eval()
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_preprocess_matches_the_training_normalisation(cifar_root: DataRoot) -> None:
    images, _ = synthetic_cifar(60, seed=1)
    train_x = SPEC.load_data(Cifar10Options(val_fraction=0), cifar_root).train.x
    batch = SPEC.preprocess(Cifar10Inputs(images=images[:2].tolist()))
    assert batch.shape == (2, 3, 32, 32)
    torch.testing.assert_close(batch, train_x[:2])
    single = SPEC.preprocess(Cifar10Inputs(image=BLACK))
    expected = [-m / s for m, s in zip(CIFAR_MEAN, CIFAR_STD, strict=True)]
    assert single[0, :, 5, 5].tolist() == pytest.approx(expected)


def test_postprocess_names_the_classes() -> None:
    logits = torch.zeros(1, 10)
    logits[0, 3], logits[0, 5], logits[0, 0] = 4.0, 3.0, 2.0
    (prediction,) = SPEC.postprocess(logits)["predictions"]
    assert prediction["label"] == "cat" and prediction["class_index"] == 3
    assert [t["label"] for t in prediction["top3"]] == ["cat", "dog", "airplane"]
    assert 0.5 < prediction["probability"] < 1
    assert CIFAR_CLASSES[9] == "truck"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"image": BLACK, "images": [BLACK]},
        {"image": BLACK[:31]},
        {"image": [[[0, 0]] * 32] + BLACK[1:]},
        {"image": [[[0, 0, 256]] * 32] + BLACK[1:]},
        {"image": [[[0, 0, float("nan")]] * 32] + BLACK[1:]},
        {"image": np.zeros((3, 32, 32), dtype=int).tolist()},
        {"images": [BLACK] * 65},
    ],
    ids=["nothing", "both", "31-rows", "two-channels", "over-255", "nan", "chw", "too-many"],
)
def test_inputs_reject_bad_bodies(body: dict) -> None:
    with pytest.raises(ValidationError):
        Cifar10Inputs.model_validate(body)


def test_augment_crops_and_flips_batch_wise() -> None:
    assert SPEC.augment(Cifar10Options()) is None
    crop_and_flip = SPEC.augment(Cifar10Options(augment=True))
    images = torch.randn(32, 3, 32, 32)
    out = crop_and_flip(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    changed = (out != images).flatten(1).any(dim=1)
    assert changed.sum() > 16
    assert torch.equal(crop_and_flip(images, torch.Generator().manual_seed(0)), out)


def test_training_lowers_the_loss(cifar_root: DataRoot) -> None:
    options = Cifar10Options(
        epochs=4, optimizer="adam", lr=1e-3, batch_size=16, batch_norm=True, augment=True
    )
    history = train(SPEC, options, SPEC.load_data(options, cifar_root))
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_decode_upload_gives_one_normalised_sample() -> None:
    buffer = BytesIO()
    Image.new("RGB", (64, 48), (255, 0, 0)).save(buffer, "PNG")
    sample = SPEC.decode_upload(buffer.getvalue())
    assert sample.shape == (1, 3, 32, 32) and sample.dtype == torch.float32
    expected = [(v - m) / s for v, m, s in zip((1, 0, 0), CIFAR_MEAN, CIFAR_STD, strict=True)]
    assert sample[0, :, 16, 16].tolist() == pytest.approx(expected, abs=1e-4)
