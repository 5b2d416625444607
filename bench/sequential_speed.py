"""Training speed: a sequential copy of mnist_mlp (its preset layer list) vs the built-in.

Both run the seed recipe (SGD lr 0.01, momentum 0.5, batch 64, seed 1, all 8,000 training
digits of ../shared/datasets/mnist-sample, val_fraction 0) through the workers' own ``fit``
in this one process, alternating built-in / sequential each repeat, so both get the same
preloaded tensors, batching by index and (where the network qualifies) the fused MLP step.
The figures are medians of ``epoch_seconds`` over all epochs of all repeats; the target is
a ratio of at most 1.2.

    .venv/bin/python bench/sequential_speed.py [--epochs 3] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = REPO_ROOT.parent / "shared" / "datasets" / "mnist-sample"

import torch  # noqa: E402

from torchkiln.models import REGISTRY  # noqa: E402
from torchkiln.models.common.presets import PRESETS  # noqa: E402
from torchkiln.models.common.registry import DataRoot  # noqa: E402
from torchkiln.workers.training import fit, new_state, to_device  # noqa: E402

RECIPE = {"lr": 0.01, "momentum": 0.5, "batch_size": 64, "seed": 1, "val_fraction": 0}
logger = logging.getLogger("bench.sequential_speed")


def epochs_of(name: str, params: dict, epochs: int) -> tuple[list[float], float]:
    """Each epoch's training seconds and the final test accuracy of one fresh job."""
    base = REGISTRY[name]
    options = base.parse_options({**params, "epochs": epochs})
    spec = base.for_options(options)
    cpu = torch.device("cpu")
    data = to_device(spec.load_data(options, DataRoot(DATA)), cpu)
    state = new_state(spec, options, cpu)
    history: list[dict[str, float]] = []
    fit(
        spec,
        options,
        data,
        state,
        on_epoch=lambda s, m: history.append(m),
        should_stop=lambda: False,
    )
    return [m["epoch_seconds"] for m in history], history[-1]["test_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    torch.set_num_threads(args.threads)
    mlp_layers = next(p for p in PRESETS if p["name"] == "mnist_mlp")["params"]["layers"]
    sides = {
        "mnist_mlp": ("mnist_mlp", RECIPE),
        "sequential": ("sequential", {**RECIPE, "data": "mnist", "layers": mlp_layers}),
    }
    seconds: dict[str, list[float]] = {side: [] for side in sides}
    accuracy: dict[str, float] = {}
    for repeat in range(args.repeats):
        for side, (name, params) in sides.items():
            times, accuracy[side] = epochs_of(name, params, args.epochs)
            seconds[side] += times
            logger.info(
                "repeat %d %-10s %s", repeat + 1, side, ", ".join(f"{t:.3f}" for t in times)
            )
    medians = {side: statistics.median(times) for side, times in seconds.items()}
    result = {
        "threads": args.threads,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "median_epoch_s": {side: round(m, 4) for side, m in medians.items()},
        "ratio": round(medians["sequential"] / medians["mnist_mlp"], 3),
        "test_accuracy": accuracy,
    }
    logger.info("%s", json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
