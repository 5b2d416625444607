from __future__ import annotations

import math
from io import BytesIO

import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from torch import nn

from tests.models.fixtures import SHARED_DATASETS, synthetic_digits, train
from torchkiln.models.common.datasets import MNIST_MEAN, MNIST_STD
from torchkiln.models.common.images import ImageLimits, ImageRejected
from torchkiln.models.common.registry import DataRoot
from torchkiln.models.mnist_mlp import SPEC, MnistInputs, MnistOptions

BLANK = [[0] * 28 for _ in range(28)]


def test_spec_is_tagged_mnist_with_tuned_defaults_and_the_seed_recipe_as_a_preset() -> None:
    options = MnistOptions()
    assert SPEC.tags == ("mnist",) and SPEC.task == "multiclass"
    assert (options.optimizer, options.lr, options.momentum) == ("sgd", 0.05, 0.9)
    seed = MnistOptions(preset="seed")
    assert (seed.optimizer, seed.lr, seed.momentum) == ("sgd", 0.01, 0.5)
    assert MnistOptions(preset="seed", lr=0.2).lr == 0.2  # given options win
    assert (options.batch_size, options.epochs, options.val_fraction) == (64, 10, 0.1)
    assert (options.dropout, options.batch_norm, options.augment) == (0.0, False, False)


def test_load_data_splits_training_file_and_tests_on_t10k(mnist_root: DataRoot) -> None:
    data = SPEC.load_data(MnistOptions(val_fraction=0.25), mnist_root)
    assert data.val is not None and data.test is not None
    assert (len(data.train), len(data.val), len(data.test)) == (90, 30, 40)
    assert data.train.x.shape[1:] == (1, 28, 28)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_network_layers_and_output_shape(batch_norm: bool) -> None:
    net = SPEC.build(MnistOptions(batch_norm=batch_norm, dropout=0.2))
    linears = [m for m in net if isinstance(m, nn.Linear)]
    widths = [(m.in_features, m.out_features) for m in linears]
    assert widths == [(784, 512), (512, 256), (256, 128), (128, 64), (64, 10)]
    assert any(isinstance(m, nn.BatchNorm1d) for m in net) == batch_norm
    assert sum(isinstance(m, nn.Dropout) for m in net) == 4
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_preprocess_matches_the_training_normalisation(mnist_root: DataRoot) -> None:
    images, _ = synthetic_digits(120, seed=1)
    train_x = SPEC.load_data(MnistOptions(val_fraction=0), mnist_root).train.x
    batch = SPEC.preprocess(MnistInputs(images=images[:2].tolist()))
    assert batch.shape == (2, 1, 28, 28)
    torch.testing.assert_close(batch, train_x[:2])
    single = SPEC.preprocess(MnistInputs(image=BLANK))
    assert single.shape == (1, 1, 28, 28)
    assert single.unique().tolist() == pytest.approx([-MNIST_MEAN / MNIST_STD])


def test_postprocess_reports_digit_probability_and_top3() -> None:
    logits = torch.tensor([[0.0] * 7 + [5.0, 3.0, 1.0], [9.0] + [0.0] * 9])
    predictions = SPEC.postprocess(logits)["predictions"]
    assert [p["digit"] for p in predictions] == [7, 0]
    first = predictions[0]
    assert [t["digit"] for t in first["top3"]] == [7, 8, 9]
    assert first["probability"] == first["top3"][0]["probability"]
    assert sum(torch.softmax(logits[0], 0).tolist()) == pytest.approx(1)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"image": BLANK, "images": [BLANK]},
        {"image": BLANK[:27]},
        {"image": [row[:27] for row in BLANK]},
        {"image": [[256] * 28] + BLANK[1:]},
        {"image": [[-1] * 28] + BLANK[1:]},
        {"image": [[math.nan] * 28] + BLANK[1:]},
        {"image": [[0.5] * 28] + BLANK[1:]},
        {"images": []},
        {"image": BLANK, "colour": True},
    ],
    ids=[
        "nothing",
        "both",
        "27-rows",
        "27-cols",
        "over-255",
        "negative",
        "nan",
        "fraction",
        "empty-list",
        "extra",
    ],
)
def test_inputs_reject_bad_bodies(body: dict) -> None:
    with pytest.raises(ValidationError):
        MnistInputs.model_validate(body)


def test_inputs_name_the_problem() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        MnistInputs.model_validate({})
    with pytest.raises(ValidationError, match="less than or equal to 255"):
        MnistInputs.model_validate({"image": [[300] * 28] + BLANK[1:]})
    with pytest.raises(ValidationError, match="at least 28 items"):
        MnistInputs.model_validate({"image": BLANK[:3]})


def test_augment_shifts_within_two_pixels_and_keeps_shape() -> None:
    assert SPEC.augment(MnistOptions()) is None
    shift = SPEC.augment(MnistOptions(augment=True))
    images = torch.full((64, 1, 28, 28), -MNIST_MEAN / MNIST_STD)
    images[:, :, 12:16, 12:16] = 2.0
    shifted = shift(images, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape
    assert not torch.equal(shifted, images)
    # The square only moved: same ink, background filled with the normalised black.
    torch.testing.assert_close(shifted.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)))
    assert (shifted[:, :, 14:14, 14:14] == 2.0).all()
    assert (shifted[:, :, 10:18, 10:18] == 2.0).sum(dim=(1, 2, 3)).eq(16).all()
    again = shift(images, torch.Generator().manual_seed(0))
    assert torch.equal(again, shifted)


def test_training_lowers_the_loss(mnist_root: DataRoot) -> None:
    options = MnistOptions(epochs=4, optimizer="adam", lr=1e-3, batch_size=16, augment=True)
    history = train(SPEC, options, SPEC.load_data(options, mnist_root))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert {"val_accuracy", "test_accuracy", "epoch_seconds"} <= history[-1].keys()


def test_seed_recipe_trains_the_same_with_and_without_the_fused_step(
    mnist_root: DataRoot,
) -> None:
    """The fast path (workers/mlp_step.py) is an implementation detail, not another recipe."""
    options = MnistOptions(
        epochs=3, batch_size=16, augment=True, lr=0.1, momentum=0.9, weight_decay=1e-3
    )
    data = SPEC.load_data(options, mnist_root)
    fused = train(SPEC, options, data)
    autograd = train(SPEC, options, data, fused_steps=False)
    for left, right in zip(fused, autograd, strict=True):
        assert left.keys() == right.keys()
        for key in left.keys() - {"epoch_seconds"}:
            assert left[key] == pytest.approx(right[key], rel=1e-5, abs=1e-7), key
    assert fused[-1]["train_loss"] < fused[0]["train_loss"]


def test_decode_upload_gives_one_normalised_sample() -> None:
    image = Image.new("L", (60, 90), 255)
    image.paste(0, (20, 20, 40, 70))
    buffer = BytesIO()
    image.save(buffer, "PNG")
    sample = SPEC.decode_upload(buffer.getvalue())
    assert sample.shape == (1, 1, 28, 28) and sample.dtype == torch.float32
    assert sample.min().item() == pytest.approx(-MNIST_MEAN / MNIST_STD)
    assert sample.max().item() == pytest.approx((1 - MNIST_MEAN) / MNIST_STD, abs=0.05)
    with pytest.raises(ImageRejected):
        SPEC.decode_upload(buffer.getvalue(), ImageLimits(max_bytes=10))


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED_DATASETS / "mnist-sample").is_dir(), reason="no shared data")
def test_adam_reaches_92_percent_on_the_shared_sample() -> None:
    options = MnistOptions(epochs=5, optimizer="adam", lr=1e-3)
    data = SPEC.load_data(options, DataRoot(SHARED_DATASETS / "mnist-sample"))
    # About 2 s of training on 2 CPU cores: 7,200 digits, 5 epochs of 113 batches.
    history = train(SPEC, options, data)
    assert history[-1]["test_accuracy"] >= 0.92, history[-1]
