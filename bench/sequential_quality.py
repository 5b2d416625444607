"""Test accuracy of layer-list networks on the shared samples, beside the built-in model.

An LSTM reading MNIST digits row by row, and the README's residual CIFAR-10 network against
the built-in ``cifar10_cnn`` with the same epochs, optimizer and augmentation.

PYTHONPATH=. .venv/bin/python bench/sequential_quality.py [--cifar-epochs 4] [--lstm-epochs 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any

import torch

from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import DataRoot
from torchkiln.workers.training import TrainState, fit, new_state, to_device

logger = logging.getLogger("bench.sequential_quality")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
README = Path(__file__).resolve().parents[1] / "README.md"
LSTM_LAYERS = [{"type": "lstm", "hidden_size": 64}, {"type": "linear", "out_features": 10}]


def readme_cifar_layers() -> list[dict[str, Any]]:
    """The residual network of the README's "Networks as data" example, as it is written."""
    body = re.search(r"-d '(\{\"model\": \"sequential\",.*?)'\n", README.read_text(), re.S)
    if body is None:
        raise SystemExit("README has no sequential example")
    return json.loads(body.group(1))["params"]["layers"]


def test_accuracy(name: str, params: dict[str, Any], root: Path) -> float:
    """Train ``name`` with ``params`` on CPU from scratch; the last epoch's test accuracy."""
    base = REGISTRY[name]
    options = base.parse_options(params)
    spec = base.for_options(options)
    device = torch.device("cpu")
    data = to_device(spec.load_data(options, DataRoot(root)), device)
    state = new_state(spec, options, device)
    last: dict[str, float] = {}

    def on_epoch(state: TrainState, metrics: dict[str, float]) -> None:
        last.update(metrics)
        logger.info("%s epoch %d test_accuracy %.4f", name, state.epoch, metrics["test_accuracy"])

    fit(spec, options, data, state, on_epoch=on_epoch, should_stop=lambda: False)
    return last["test_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lstm-epochs", type=int, default=5)
    parser.add_argument("--cifar-epochs", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(0)
    lstm = {"data": "mnist", "layers": LSTM_LAYERS, "optimizer": "adam", "lr": 3e-3}
    lstm_accuracy = test_accuracy(
        "sequential", {**lstm, "epochs": args.lstm_epochs}, SHARED / "mnist-sample"
    )
    recipe = {"optimizer": "adam", "lr": 1e-3, "epochs": args.cifar_epochs, "augment": True}
    cifar = SHARED / "cifar10-sample"
    builtin = test_accuracy("cifar10_cnn", recipe, cifar)
    residual = test_accuracy(
        "sequential", {**recipe, "data": "cifar10", "layers": readme_cifar_layers()}, cifar
    )
    logger.info(
        "LSTM on MNIST rows, %d epochs: test accuracy %.4f", args.lstm_epochs, lstm_accuracy
    )
    logger.info(
        "CIFAR-10 sample, %d epochs, adam + augment: cifar10_cnn %.4f, README residual %.4f",
        args.cifar_epochs,
        builtin,
        residual,
    )


if __name__ == "__main__":
    main()
