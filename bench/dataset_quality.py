"""Quality of the uploaded-dataset models on real data, on held-out rows and images.

(a) ``../shared/datasets/diabetes/diabetes.csv.gz`` (758 rows, no header: 8 scaled features
and a 0/1 label) as a table dataset, through ``tabular``: the seed network (hidden [6, 4],
sigmoid, the diabetes lesson's SGD recipe) and the default config; the figure is the last
epoch's accuracy on the stratified 20% validation split (target >= 0.75). One split of 152
rows is a noisy figure (on this one a logistic regression scores 0.72, on the built-in
diabetes model's random split 0.80), so each config is also run five times, 5-fold: each
fold's rows as ``test_dataset``, the other four as the dataset; the mean test accuracy.
(b) 4,000 digits of ``../shared/datasets/mnist-sample`` training files as PNGs in an
ImageFolder (``images/<digit>/``), the sample's 2,000 test digits as a second dataset given
as ``test_dataset``, through ``image_classifier``; the figure is the last epoch's test
accuracy (target >= 0.95). Nothing is tuned on the test digits.

Both train in this process with the workers' own ``fit``, datasets written to a temp folder
in the layout the datasets resource writes.

    .venv/bin/python bench/dataset_quality.py [--epochs 8] [--threads 1] [--skip-images]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

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
    return history


FOLDS = 5


def write_diabetes(datasets: Path) -> None:
    """Dataset 1: every row; 10 + k and 20 + k: fold k's training rows and its test rows."""
    frame = pd.read_csv(SHARED / "diabetes" / "diabetes.csv.gz", header=None)
    names = [f"x{i}" for i in range(1, 9)] + ["Outcome"]
    frame.columns = names
    frame["Outcome"] = frame["Outcome"].astype(int)
    write_table(datasets, 1, {name: frame[name].tolist() for name in names})
    fold = np.random.default_rng(0).permutation(len(frame)) % FOLDS
    for k in range(FOLDS):
        for dataset_id, part in ((10 + k, frame[fold != k]), (20 + k, frame[fold == k])):
            write_table(datasets, dataset_id, {name: part[name].tolist() for name in names})


def cross_validated(params: dict, datasets: Path) -> float:
    """Mean last-epoch test accuracy over the folds."""
    scores = []
    for k in range(FOLDS):
        fold = {**params, "dataset": 10 + k, "test_dataset": 20 + k}
        scores.append(train("tabular", fold, datasets)[-1]["test_accuracy"])
    return float(np.mean(scores))


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
    parser.add_argument("--skip-images", action="store_true", help="the diabetes part only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        datasets = Path(folder)
        write_diabetes(datasets)
        if not args.skip_images:
            write_mnist(datasets)
        table = {"dataset": 1, "target": "Outcome"}
        for label, params in (
            ("diabetes_seed", {**table, "preset": "seed"}),
            ("diabetes_default", table),
        ):
            history = train("tabular", params, datasets)
            results[label] = {
                "epochs": len(history),
                "val_accuracy": round(history[-1]["val_accuracy"], 4),
                "best_val_accuracy": round(max(h["val_accuracy"] for h in history), 4),
                "5fold_test_accuracy": round(cross_validated(params, datasets), 4),
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
