from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from tests.models.fixtures import synthetic_digits, write_cifar_batch, write_idx
from torchkiln.models.cifar10_cnn import Cifar10Options
from torchkiln.models.common.datasets import (
    CIFAR_MEAN,
    CIFAR_STD,
    MNIST_FILES,
    MNIST_MEAN,
    MNIST_STD,
    ImageOptions,
    load_cifar,
    load_mnist,
    read_idx,
    split_off_validation,
)
from torchkiln.models.common.registry import DataRoot, DataUnavailable


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_plain_and_gzip(tmp_path: Path, gz: bool) -> None:
    images, labels = synthetic_digits(5, seed=0)
    assert np.array_equal(read_idx(write_idx(tmp_path / "i", images, gz=gz)), images)
    assert np.array_equal(read_idx(write_idx(tmp_path / "l", labels, gz=gz)), labels)


def test_read_idx_refuses_truncated_and_foreign_files(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "images", synthetic_digits(3, seed=0)[0])
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataUnavailable, match="truncated"):
        read_idx(path)
    path.write_bytes(b"PNG not idx")
    with pytest.raises(DataUnavailable, match="not an unsigned-byte IDX"):
        read_idx(path)


def test_load_mnist_normalises_and_keeps_labels(mnist_root: DataRoot) -> None:
    train, test = load_mnist(mnist_root)
    images, labels = synthetic_digits(120, seed=1)
    assert train.x.shape == (120, 1, 28, 28) and train.x.dtype == torch.float32
    assert test.x.shape == (40, 1, 28, 28)
    assert train.y.dtype == torch.int64 and train.y.tolist() == labels.tolist()
    expected = (torch.from_numpy(images).float() / 255 - MNIST_MEAN) / MNIST_STD
    torch.testing.assert_close(train.x[:, 0], expected)
    assert train.x.max().item() == pytest.approx((1 - MNIST_MEAN) / MNIST_STD)


def test_load_mnist_is_cached_until_a_file_changes(mnist_root: DataRoot) -> None:
    first, _ = load_mnist(mnist_root)
    assert load_mnist(mnist_root)[0] is first
    labels = mnist_root.path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    stat = labels.stat()
    os.utime(labels, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert load_mnist(mnist_root)[0] is not first


def test_missing_mnist_names_directory_and_files(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailable) as caught:
        load_mnist(DataRoot(tmp_path))
    message = str(caught.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert all(name in message for name in MNIST_FILES.values())


def test_mnist_download_is_used_only_when_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    class FakeMNIST:
        """Stands in for torchvision's downloader: writes the four files, no network."""

        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append(root)
            images, labels = synthetic_digits(4, seed=0)
            for name in MNIST_FILES.values():
                write_idx(
                    Path(root) / "MNIST" / "raw" / name, images if "images" in name else labels
                )

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    with pytest.raises(DataUnavailable):
        load_mnist(DataRoot(tmp_path, allow_download=False))
    assert calls == []
    train, _ = load_mnist(DataRoot(tmp_path, allow_download=True))
    assert calls == [str(tmp_path)] and len(train) == 4


def test_failed_download_raises_data_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(**kwargs: object) -> None:
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataUnavailable, match="could not download CIFAR10.*network unreachable"):
        load_cifar(DataRoot(tmp_path, allow_download=True))


def test_load_cifar_reads_a_partial_set_channel_major(cifar_root: DataRoot) -> None:
    train, test = load_cifar(cifar_root)
    assert train.x.shape == (100, 3, 32, 32) and test.x.shape == (30, 3, 32, 32)
    assert train.y.dtype == torch.int64 and 0 <= train.y.min() and train.y.max() <= 9
    # A white pixel maps to (1 - mean) / std in each channel.
    directory = cifar_root.path / "cifar-10-batches-py"
    image = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    image[0, 0, 0] = (255, 0, 255)
    write_cifar_batch(directory / "data_batch_1", image, np.array([7]))
    (directory / "data_batch_3").unlink()
    train, _ = load_cifar(cifar_root)
    pixel = train.x[0, :, 0, 0].tolist()
    expected = [(v - m) / s for v, m, s in zip((1, 0, 1), CIFAR_MEAN, CIFAR_STD, strict=True)]
    assert pixel == pytest.approx(expected, abs=1e-5)
    assert train.y.tolist() == [7]


def test_missing_cifar_names_directory_and_files(tmp_path: Path) -> None:
    write_cifar_batch(tmp_path / "cifar-10-batches-py" / "test_batch", *_one_image())
    with pytest.raises(DataUnavailable) as caught:
        load_cifar(DataRoot(tmp_path))
    message = str(caught.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "data_batch_1" in message and "test_batch" in message


def test_corrupt_cifar_batch_is_refused(cifar_root: DataRoot) -> None:
    (cifar_root.path / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(DataUnavailable, match="not a CIFAR-10 batch"):
        load_cifar(cifar_root)


def test_validation_split_sizes_disjoint_and_deterministic() -> None:
    x, y = torch.arange(100).float().unsqueeze(1), torch.arange(100)
    train, val = split_off_validation(x, y, 0.2)
    assert val is not None and (len(train), len(val)) == (80, 20)
    assert set(train.y.tolist()).isdisjoint(val.y.tolist())
    assert torch.equal(train.x[:, 0].long(), train.y)
    again_train, again_val = split_off_validation(x, y, 0.2)
    assert again_val is not None and torch.equal(again_val.y, val.y)
    other = split_off_validation(x, y, 0.2, seed=5)[1]
    assert other is not None and not torch.equal(other.y, val.y)


def test_validation_split_of_zero_or_tiny_data() -> None:
    x, y = torch.zeros(3, 1), torch.zeros(3)
    train, val = split_off_validation(x, y, 0.0)
    assert val is None and train.x is x
    train, val = split_off_validation(torch.zeros(2, 1), torch.zeros(2), 0.5)
    assert val is not None and (len(train), len(val)) == (1, 1)


def test_image_options_drop_default_momentum_for_other_optimizers() -> None:
    assert Cifar10Options().momentum == 0.9
    assert Cifar10Options(optimizer="adam").momentum == 0
    with pytest.raises(ValueError, match="momentum applies to sgd and rmsprop"):
        Cifar10Options(optimizer="adam", momentum=0.5)
    with pytest.raises(ValueError, match="Extra inputs"):
        ImageOptions(colour=True)


def _one_image() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((1, 32, 32, 3), dtype=np.uint8), np.array([0])
