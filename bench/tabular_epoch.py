"""A ``tabular`` epoch over a 1,000,000-row x 20-column table vs a hand-written PyTorch loop.

The table (20 numeric columns, a binary target from a noisy linear rule) is written as a
Parquet dataset and read once through the model's ``load_data``; then, alternating each
repeat, (1) the workers' own ``fit`` trains one epoch of a fresh ``tabular`` job (its
``epoch_seconds``: the training pass alone, the network imputing and standardising each batch
itself) and (2) a hand-written loop trains the same MLP (20-64-32-1 ReLU, Adam lr 0.003,
BCE-with-logits, the same batch size) over the same preloaded training tensors,
standardised once beforehand, shuffled each epoch. Medians over the repeats; the target is a
ratio of at most 1.5.

    .venv/bin/python bench/tabular_epoch.py [--rows 1000000] [--batch-size 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from tests.utils.uploaded_datasets import lookup_in, write_table  # noqa: E402
from torchkiln.models import REGISTRY  # noqa: E402
from torchkiln.models.common.registry import DataRoot, Split  # noqa: E402
from torchkiln.workers.training import fit, new_state, to_device  # noqa: E402

COLUMNS = 20
HIDDEN = [64, 32]
LR = 0.003
logger = logging.getLogger("bench.tabular_epoch")


def write_data(datasets: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (rows, COLUMNS)).astype(np.float32) * rng.uniform(1, 100, COLUMNS)
    weights = rng.normal(0, 1, COLUMNS) / rng.uniform(1, 100, COLUMNS)
    label = (x @ weights + rng.normal(0, 1, rows)) > 0
    columns = {f"c{i}": x[:, i] for i in range(COLUMNS)}
    write_table(datasets, 1, {**columns, "label": label})


def torchkiln_epoch(spec, options, data) -> float:
    state = new_state(spec, options, torch.device("cpu"))
    seconds: list[float] = []
    fit(
        spec,
        options,
        data,
        state,
        on_epoch=lambda s, m: seconds.append(m["epoch_seconds"]),
        should_stop=lambda: False,
    )
    return seconds[0]


def hand_written_epoch(train: Split, batch_size: int, seed: int) -> float:
    torch.manual_seed(seed)
    mean, std = train.x.mean(0), train.x.std(0)
    x, y = (train.x - mean) / std, train.y  # standardised once, as one would by hand
    layers: list[nn.Module] = []
    width = COLUMNS
    for size in HIDDEN:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    model = nn.Sequential(*layers, nn.Linear(width, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.BCEWithLogitsLoss()
    started = time.perf_counter()
    order = torch.randperm(len(x))
    xs, ys = x[order], y[order]
    for start in range(0, len(xs), batch_size):
        xb, yb = xs[start : start + batch_size], ys[start : start + batch_size]
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        datasets = Path(folder)
        write_data(datasets, args.rows)
        params = {
            "dataset": 1,
            "target": "label",
            "hidden": HIDDEN,
            "lr": LR,
            "epochs": 1,
            "batch_size": args.batch_size,
            "val_fraction": 0.1,
        }
        base = REGISTRY["tabular"]
        options = base.parse_options(params, context={"dataset_lookup": lookup_in(datasets)})
        spec = base.for_options(options)
        started = time.perf_counter()
        data = to_device(
            spec.load_data(options, DataRoot(Path("x"), datasets=datasets)), torch.device("cpu")
        )
        load_s = time.perf_counter() - started
        ours, theirs = [], []
        for repeat in range(args.repeats):
            ours.append(torchkiln_epoch(spec, options, data))
            theirs.append(hand_written_epoch(data.train, args.batch_size, repeat))
            logger.info(
                "repeat %d: tabular %.2f s, hand-written %.2f s", repeat, ours[-1], theirs[-1]
            )
    result = {
        "rows": args.rows,
        "columns": COLUMNS,
        "train_rows": len(data.train),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "load_seconds": round(load_s, 2),
        "tabular_epoch_s": round(statistics.median(ours), 3),
        "hand_written_epoch_s": round(statistics.median(theirs), 3),
        "ratio": round(statistics.median(ours) / statistics.median(theirs), 3),
        "target_ratio": 1.5,
    }
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
