"""Shared data loading for the data-set models: IDX and CIFAR files, caching, validation split.

Decoded, normalised tensors are cached in-process, keyed on each file's path, mtime and size,
so a second job in the same worker reuses them. Callers must not modify the cached tensors in
place (the training loop only index-selects them).
"""

from __future__ import annotations

import gzip
import logging
import pickle
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, model_validator

from torchkiln.models.common.options import TrainOptions
from torchkiln.models.common.registry import DataRoot, DataUnavailable, Split

logger = logging.getLogger(__name__)

# Fixed, not the job's seed: every job of a model sees the same validation images, so their
# val figures compare, and init_from never trains on images an earlier job validated on.
SPLIT_SEED = 1729

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
MNIST_DIR = Path("MNIST") / "raw"
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_DIR = Path("cifar-10-batches-py")
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
CIFAR_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

_IDX_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
_SGD_LIKE = {"sgd", "rmsprop"}

FileStamp = tuple[str, int, int]


class DatasetOptions(TrainOptions):
    """Options every data-set model accepts on top of the optimizer settings."""

    batch_size: int | None = Field(64, ge=1, le=65_536, description="Mini-batch size.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout probability.")
    val_fraction: float = Field(
        0.1, ge=0, le=0.5, description="Share of the training file held out for validation."
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_default_momentum(cls, data: Any) -> Any:
        # The recipes default to SGD with momentum; switching only the optimizer (to adam,
        # say) should not trip the "momentum applies to sgd and rmsprop only" check.
        if isinstance(data, dict) and "momentum" not in data:
            optimizer = data.get("optimizer", cls.model_fields["optimizer"].default)
            if optimizer not in _SGD_LIKE:
                return {**data, "momentum": 0.0}
        return data


class ImageOptions(DatasetOptions):
    """Options of the image classifiers."""

    epochs: int = Field(10, ge=1, le=100_000)
    batch_norm: bool = Field(False, description="Batch normalisation after each layer.")
    augment: bool = Field(False, description="Random shifts/crops of each training batch.")


def split_off_validation(
    x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int = SPLIT_SEED
) -> tuple[Split, Split | None]:
    """A seeded random ``fraction`` of the rows as validation split, the rest as training."""
    n = int(x.shape[0])
    n_val = min(round(n * fraction), n - 1)
    if n_val <= 0:
        return Split(x, y), None
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_index, train_index = order[:n_val].sort().values, order[n_val:].sort().values
    train = Split(x.index_select(0, train_index), y.index_select(0, train_index))
    return train, Split(x.index_select(0, val_index), y.index_select(0, val_index))


def split_stratified(
    x: torch.Tensor, labels: torch.Tensor, fraction: float, y: torch.Tensor | None = None
) -> tuple[Split, Split | None]:
    """As ``split_off_validation``, but ``fraction`` of each class (by ``labels``) goes to
    validation, so a rare class is in both splits; ``y`` (default ``labels``) are the targets."""
    y = labels if y is None else y
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    val_parts = []
    for label in labels.unique():
        members = torch.nonzero(labels == label).view(-1)
        n_val = min(round(len(members) * fraction), len(members) - 1)
        if n_val > 0:
            order = torch.randperm(len(members), generator=generator)
            val_parts.append(members[order[:n_val]])
    if not val_parts:
        return Split(x, y), None
    is_val = torch.zeros(len(labels), dtype=torch.bool)
    is_val[torch.cat(val_parts)] = True
    val_index, train_index = torch.nonzero(is_val).view(-1), torch.nonzero(~is_val).view(-1)
    train = Split(x.index_select(0, train_index), y.index_select(0, train_index))
    return train, Split(x.index_select(0, val_index), y.index_select(0, val_index))


def normalise_mnist(pixels: torch.Tensor) -> torch.Tensor:
    """Grey levels in [0, 1] → the standardised values the MNIST models train on."""
    return (pixels - MNIST_MEAN) / MNIST_STD


def normalise_cifar(pixels: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1], channels first (..., 3, H, W) → per-channel standardised values."""
    mean = torch.tensor(CIFAR_MEAN, dtype=pixels.dtype).view(3, 1, 1)
    std = torch.tensor(CIFAR_STD, dtype=pixels.dtype).view(3, 1, 1)
    return (pixels - mean) / std


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX file (plain or gzip) as a numpy array of its declared shape."""
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != _IDX_UBYTE:
        raise DataUnavailable(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise DataUnavailable(f"{path} is truncated or corrupt: its size does not match {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _stamp(path: Path) -> FileStamp:
    stat = path.stat()
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def _find_mnist_files(directory: Path) -> dict[str, Path] | None:
    found = {}
    for key, name in MNIST_FILES.items():
        # torchvision's download leaves both; the plain file is quicker to read.
        candidates = [directory / name, directory / f"{name}.gz"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return None
        found[key] = path
    return found


def _download(dataset: str, data_root: DataRoot) -> None:
    from torchvision import datasets

    logger.info("downloading %s into %s", dataset, data_root.path)
    try:
        getattr(datasets, dataset)(root=str(data_root.path), train=True, download=True)
    except Exception as exc:  # any network or disk failure means the same to the job
        raise DataUnavailable(f"could not download {dataset} into {data_root.path}: {exc}") from exc


def mnist_files(data_root: DataRoot) -> dict[str, Path]:
    """The four MNIST IDX files under the root, downloaded first if missing and allowed."""
    directory = data_root.path / MNIST_DIR
    found = _find_mnist_files(directory)
    if found is None and data_root.allow_download:
        _download("MNIST", data_root)
        found = _find_mnist_files(directory)
    if found is None:
        names = ", ".join(f"{name}[.gz]" for name in MNIST_FILES.values())
        raise DataUnavailable(f"MNIST not found: expected {names} in {directory}")
    return found


def load_mnist(data_root: DataRoot) -> tuple[Split, Split]:
    """Normalised MNIST (N, 1, 28, 28) float32 images and int64 labels: training and test."""
    files = mnist_files(data_root)
    return _decode_mnist(tuple(_stamp(files[key]) for key in MNIST_FILES))


@lru_cache(maxsize=2)
def _decode_mnist(stamps: tuple[FileStamp, ...]) -> tuple[Split, Split]:
    train_x, train_y, test_x, test_y = (read_idx(Path(stamp[0])) for stamp in stamps)
    logger.info("decoded MNIST: %d training and %d test images", len(train_x), len(test_x))
    return _mnist_split(train_x, train_y, stamps[0][0]), _mnist_split(test_x, test_y, stamps[2][0])


def _mnist_split(images: np.ndarray, labels: np.ndarray, source: str) -> Split:
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise DataUnavailable(
            f"{source}: expected N x 28 x 28 images with N labels, got {images.shape} "
            f"and {labels.shape}"
        )
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return Split(normalise_mnist(x), torch.from_numpy(labels.astype(np.int64)))


def _find_cifar_files(directory: Path) -> tuple[list[Path], Path] | None:
    train = [directory / name for name in CIFAR_TRAIN_FILES if (directory / name).is_file()]
    test = directory / CIFAR_TEST_FILE
    return (train, test) if train and test.is_file() else None


def cifar_files(data_root: DataRoot) -> tuple[list[Path], Path]:
    """The CIFAR-10 training batches present (at least one) and the test batch."""
    directory = data_root.path / CIFAR_DIR
    found = _find_cifar_files(directory)
    if found is None and data_root.allow_download:
        _download("CIFAR10", data_root)
        found = _find_cifar_files(directory)
    if found is None:
        names = ", ".join((*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE))
        raise DataUnavailable(
            f"CIFAR-10 not found: expected {CIFAR_TEST_FILE} and at least one of "
            f"data_batch_1..5 (of {names}) in {directory}"
        )
    return found


def load_cifar(data_root: DataRoot) -> tuple[Split, Split]:
    """Normalised CIFAR-10 (N, 3, 32, 32) float32 images and int64 labels: training and test."""
    train, test = cifar_files(data_root)
    return _decode_cifar(tuple(_stamp(p) for p in train), _stamp(test))


@lru_cache(maxsize=2)
def _decode_cifar(train: tuple[FileStamp, ...], test: FileStamp) -> tuple[Split, Split]:
    parts = [_read_cifar_batch(Path(stamp[0])) for stamp in train]
    train_split = Split(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]))
    test_split = _read_cifar_batch(Path(test[0]))
    logger.info(
        "decoded CIFAR-10: %d training and %d test images", len(train_split), len(test_split)
    )
    return train_split, test_split


def _read_cifar_batch(path: Path) -> Split:
    # Pickle runs code from the file: the data root is operator-provided, never an upload.
    with path.open("rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data = np.asarray(batch.get(b"data")) if isinstance(batch, dict) else None
    labels = np.asarray(batch.get(b"labels")) if isinstance(batch, dict) else None
    if data is None or labels is None or data.ndim != 2 or data.shape[1] != 3072:
        raise DataUnavailable(f"{path} is not a CIFAR-10 batch (a dict with N x 3072 b'data')")
    if labels.shape != data.shape[:1] or labels.min() < 0 or labels.max() > 9:
        raise DataUnavailable(f"{path}: expected {data.shape[0]} labels in 0-9")
    x = torch.from_numpy(data.astype(np.float32) / 255.0).view(-1, 3, 32, 32)
    return Split(normalise_cifar(x), torch.from_numpy(labels.astype(np.int64)))
