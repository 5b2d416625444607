"""Helpers for the model tests: tiny data in the real MNIST/CIFAR file formats, a fit runner."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import torch

from torchkiln.models.common.options import TrainOptions
from torchkiln.models.common.registry import ModelSpec, TrainingData
from torchkiln.workers.training import FitOutcome, TrainState, fit, new_state

SHARED_DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    """Write a uint8 array as an IDX file (gzip-compressed when ``gz``)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy dark images whose label says where a bright 6x6 square sits: easy to learn."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
        top, left = 3 + 12 * (label // 5), 1 + 5 * (label % 5)
        image[top : top + 6, left : left + 6] = 255
    return images, labels


def synthetic_cifar(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """N x 32 x 32 x 3 uint8 images whose label sets the tint and a bright band's row."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, 32, 32, 3)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
        image[3 * label : 3 * label + 3, :, label % 3] = 250
    return images, labels


def write_cifar_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """A batch file in the official layout: channel-major N x 3072 bytes under b"data"."""
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {b"batch_label": b"test", b"labels": [int(v) for v in labels], b"data": data}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(batch, f, protocol=2)
    return path


def train(
    spec: ModelSpec, options: TrainOptions, data: TrainingData, *, fused_steps: bool = True
) -> list[dict[str, float]]:
    """Run ``fit`` on CPU and return every epoch's metrics."""
    history: list[dict[str, float]] = []
    state = new_state(spec, options, torch.device("cpu"))

    def on_epoch(state: TrainState, metrics: dict[str, float]) -> None:
        history.append(metrics)

    result = fit(
        spec,
        options,
        data,
        state,
        on_epoch=on_epoch,
        should_stop=lambda: False,
        fused_steps=fused_steps,
    )
    assert result.outcome == FitOutcome.COMPLETED
    return history
