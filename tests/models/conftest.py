"""Tiny MNIST- and CIFAR-shaped data sets written in the real file formats under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.models.fixtures import synthetic_cifar, synthetic_digits, write_cifar_batch, write_idx
from torchkiln.models.common.registry import DataRoot


@pytest.fixture
def mnist_root(tmp_path: Path) -> DataRoot:
    """120 training digits (gzip files) and 40 test digits (plain files)."""
    raw = tmp_path / "MNIST" / "raw"
    train_x, train_y = synthetic_digits(120, seed=1)
    test_x, test_y = synthetic_digits(40, seed=2)
    write_idx(raw / "train-images-idx3-ubyte.gz", train_x, gz=True)
    write_idx(raw / "train-labels-idx1-ubyte.gz", train_y, gz=True)
    write_idx(raw / "t10k-images-idx3-ubyte", test_x)
    write_idx(raw / "t10k-labels-idx1-ubyte", test_y)
    return DataRoot(tmp_path)


@pytest.fixture
def cifar_root(tmp_path: Path) -> DataRoot:
    """A partial set: data_batch_1 (60) and data_batch_3 (40) and a test_batch (30)."""
    directory = tmp_path / "cifar-10-batches-py"
    write_cifar_batch(directory / "data_batch_1", *synthetic_cifar(60, seed=1))
    write_cifar_batch(directory / "data_batch_3", *synthetic_cifar(40, seed=3))
    write_cifar_batch(directory / "test_batch", *synthetic_cifar(30, seed=9))
    return DataRoot(tmp_path)
