"""Run the two cifar10_cnn recipes on the shared CIFAR-10 sample and log per-epoch accuracy.

PYTHONPATH=. .venv/bin/python bench/cifar_recipes.py [--data-root DIR] [--val-fraction F]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch

from torchkiln.models.cifar10_cnn import SPEC
from torchkiln.models.common.registry import DataRoot
from torchkiln.workers.training import TrainState, fit, new_state, to_device

logger = logging.getLogger("bench.cifar_recipes")

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-sample"
RECIPES: dict[str, dict[str, Any]] = {
    "sgd": {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "epochs": 12},
    "bn_dropout_augment_adam": {
        "optimizer": "adam",
        "lr": 1e-3,
        "batch_norm": True,
        "dropout": 0.3,
        "augment": True,
        "epochs": 20,
    },
}


def run_recipe(name: str, params: dict[str, Any], root: DataRoot, device: torch.device) -> None:
    """Train one recipe from scratch, logging every epoch and the best test accuracy."""
    options = SPEC.parse_options(params)
    data = to_device(SPEC.load_data(options, root), device)
    state = new_state(SPEC, options, device)
    best = (0.0, 0)

    def on_epoch(state: TrainState, metrics: dict[str, float]) -> None:
        nonlocal best
        best = max(best, (metrics["test_accuracy"], state.epoch))
        logger.info(
            "%s epoch %2d  train_loss %.3f  val_acc %s  test_acc %.3f  %.1f s",
            name,
            state.epoch,
            metrics["train_loss"],
            f"{metrics['val_accuracy']:.3f}" if "val_accuracy" in metrics else "-",
            metrics["test_accuracy"],
            metrics["epoch_seconds"],
        )

    logger.info(
        "%s: %s, %d train / %s val", name, options, len(data.train), data.val and len(data.val)
    )
    fit(SPEC, options, data, state, on_epoch=on_epoch, should_stop=lambda: False)
    logger.info("%s: best test accuracy %.3f at epoch %d", name, *best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--val-fraction", type=float, default=None)
    parser.add_argument("--recipe", choices=sorted(RECIPES), action="append")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    root, device = DataRoot(args.data_root), torch.device(args.device)
    for name in args.recipe or list(RECIPES):
        params = dict(RECIPES[name])
        if args.val_fraction is not None:
            params["val_fraction"] = args.val_fraction
        run_recipe(name, params, root, device)


if __name__ == "__main__":
    main()
