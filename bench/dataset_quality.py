"""Quality of the uploaded-dataset models on real data, on held-out rows and images.

(a) ``../shared/datasets/diabetes/diabetes.csv.gz`` (758 rows, no header: 8 scaled features
and a 0/1 label) as a table dataset, through ``tabular``: the seed network (``preset: seed``:
hidden [6, 4], sigmoid, the diabetes lesson's SGD recipe, every epoch, the last weights), the
default config (early stopping on val_loss, the best val_loss epoch served), the same without
them (every epoch, the last weights) and, for scale, a logistic regression (``hidden: []``).
One split of 152 rows is a noisy figure (0.72 to 0.80 for a logistic regression, by split),
so the figure is repeated 5-fold cross-validation: for each of ``--repeats`` seeded
partitions into five folds, each fold's rows as ``test_dataset`` and the other four as the
dataset (their own stratified 20% is the validation split that early stopping and ``watch``
see); the mean test accuracy of the weights a prediction would use (the watched best epoch,
or the last). The test rows never steer a run. The last epoch's accuracy on the whole
file's stratified split is printed too.
(b) 4,000 digits of ``../shared/datasets/mnist-sample`` training files as PNGs in an
ImageFolder (``images/<digit>/``), the sample's 2,000 test digits as a second dataset given
as ``test_dataset``, through ``image_classifier``; the figure is the last epoch's test
accuracy (target >= 0.95). Nothing is tuned on the test digits.

Both train in this process with the workers' own ``fit``, datasets written to a temp folder
in the layout the datasets resource writes.

    .venv/bin/python bench/dataset_quality.py [--epochs 8] [--repeats 10] [--skip-images]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared" / "datasets"
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from tests.utils.uploaded_datasets import lookup_in, write_images, write_table  # noqa: E402
from torchkiln.models import REGISTRY  # noqa: E402
from torchkiln.models.common.datasets import read_idx  # noqa: E402
from torchkiln.models.common.registry import DataRoot  # noqa: E402
from torchkiln.workers.training import fit, new_state, to_device  # noqa: E402

MNIST_RAW = SHARED / "mnist-sample" / "MNIST" / "raw"
TRAIN_DIGITS = 4000
logger = logging.getLogger("bench.dataset_quality")


def train(model: str, params: dict, datasets: Path) -> list[dict[str, float]]:
    """One job of ``model`` on the written datasets; its per-epoch metrics."""
    return train_options(model, params, datasets)[1]


def train_options(model: str, params: dict, datasets: Path) -> tuple[Any, list[dict[str, float]]]:
    """One job's parsed options and per-epoch metrics."""
    base = REGISTRY[model]
    options = base.parse_options(params, context={"dataset_lookup": lookup_in(datasets)})
    spec = base.for_options(options)
    cpu = torch.device("cpu")
    data = to_device(spec.load_data(options, DataRoot(Path("unused"), datasets=datasets)), cpu)
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
    return options, history


def served(options: Any, history: list[dict[str, float]]) -> dict[str, float]:
    """The epoch whose weights a prediction uses: the watched best (as ``BestKeeper``
    picks it: strictly better, ties keep the earlier), or the last."""
    if options.watch is None:
        return history[-1]
    best: dict[str, float] | None = None
    for metrics in history:
        value = metrics[options.watch.metric]
        if options.watch.is_better(value, None if best is None else best[options.watch.metric]):
            best = metrics
    return best or history[-1]


FOLDS = 5
COLUMNS = [f"x{i}" for i in range(1, 9)] + ["Outcome"]


def read_diabetes() -> pd.DataFrame:
    frame = pd.read_csv(SHARED / "diabetes" / "diabetes.csv.gz", header=None)
    frame.columns = COLUMNS
    frame["Outcome"] = frame["Outcome"].astype(int)
    return frame


def write_rows(datasets: Path, dataset_id: int, frame: pd.DataFrame) -> None:
    write_table(datasets, dataset_id, {name: frame[name].tolist() for name in COLUMNS})


def cross_validated(
    configs: dict[str, dict], frame: pd.DataFrame, datasets: Path, repeats: int
) -> dict[str, dict[str, Any]]:
    """Per config: the served epoch's test accuracy over ``repeats`` x 5 folds."""
    scores: dict[str, list[float]] = {label: [] for label in configs}
    epochs: dict[str, list[int]] = {label: [] for label in configs}
    for repeat in range(repeats):
        fold = np.random.default_rng(repeat).permutation(len(frame)) % FOLDS
        for k in range(FOLDS):
            train_id, test_id = 1000 + 10 * repeat + k, 2000 + 10 * repeat + k
            write_rows(datasets, train_id, frame[fold != k])
            write_rows(datasets, test_id, frame[fold == k])
            for label, params in configs.items():
                run = {**params, "dataset": train_id, "test_dataset": test_id}
                options, history = train_options("tabular", run, datasets)
                scores[label].append(served(options, history)["test_accuracy"])
                epochs[label].append(len(history))
    results = {}
    for label, values in scores.items():
        # The spread of the partitions' means: each partition uses every row once.
        means = np.array(values).reshape(repeats, FOLDS).mean(axis=1)
        results[label] = {
            "test_accuracy": round(float(np.mean(values)), 4),
            "partition_means": [round(float(m), 4) for m in means],
            "standard_error": round(float(means.std(ddof=1) / np.sqrt(repeats)), 4)
            if repeats > 1
            else None,
            "mean_epochs": round(float(np.mean(epochs[label])), 1),
        }
    return results


def write_mnist(datasets: Path) -> None:
    images, labels = (
        read_idx(MNIST_RAW / "train-images-idx3-ubyte"),
        read_idx(MNIST_RAW / "train-labels-idx1-ubyte"),
    )
    test_images, test_labels = (
        read_idx(MNIST_RAW / "t10k-images-idx3-ubyte"),
        read_idx(MNIST_RAW / "t10k-labels-idx1-ubyte"),
    )
    for dataset_id, x, y in (
        (2, images[:TRAIN_DIGITS], labels[:TRAIN_DIGITS]),
        (3, test_images, test_labels),
    ):
        classes: dict[str, list[np.ndarray]] = {str(d): [] for d in range(10)}
        for pixels, label in zip(x, y, strict=True):
            classes[str(int(label))].append(np.ascontiguousarray(pixels))
        write_images(datasets, dataset_id, {"": classes})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="image_classifier epochs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10, help="5-fold partitions")
    parser.add_argument("--skip-images", action="store_true", help="the diabetes part only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        datasets = Path(folder)
        frame = read_diabetes()
        write_rows(datasets, 1, frame)
        if not args.skip_images:
            write_mnist(datasets)
        table = {"target": "Outcome"}
        configs = {
            "diabetes_seed": {**table, "preset": "seed"},
            "diabetes_default": table,
            # The same network without the stop and the best epoch: what they are worth.
            "diabetes_default_every_epoch": {**table, "early_stopping": None, "watch": None},
            "diabetes_logistic_regression": {**table, "hidden": [], "epochs": 100},
        }
        folds = cross_validated(configs, frame, datasets, args.repeats)
        for label, params in configs.items():
            options, history = train_options("tabular", {**params, "dataset": 1}, datasets)
            results[label] = {
                "split_val_accuracy_served": round(served(options, history)["val_accuracy"], 4),
                "split_epochs": len(history),
                f"{args.repeats}x{FOLDS}fold": folds[label],
            }
            logger.info("%s: %s", label, results[label])
        if args.skip_images:
            sys.stdout.write(json.dumps(results, indent=2) + "\n")
            return
        history = train(
            "image_classifier",
            {"dataset": 2, "test_dataset": 3, "epochs": args.epochs, "val_fraction": 0.1},
            datasets,
        )
        results["mnist_image_folder"] = {
            "train_digits": TRAIN_DIGITS,
            "test_digits": 2000,
            "epochs": len(history),
            "test_accuracy": round(history[-1]["test_accuracy"], 4),
            "val_accuracy": round(history[-1]["val_accuracy"], 4),
            "epoch_seconds": round(float(np.median([h["epoch_seconds"] for h in history])), 2),
        }
        logger.info("mnist: %s", results["mnist_image_folder"])
    sys.stdout.write(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
