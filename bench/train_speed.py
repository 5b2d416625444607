"""Training speed: an mnist_mlp epoch through the service vs the classic PyTorch loop.

Both run the seed recipe (784-512-256-128-64-10 ReLU MLP, SGD lr 0.01, momentum 0.5, batch 64,
the same initial weights from torch.manual_seed) on ../shared/datasets/mnist-sample, in this
one invocation:
  classic  torchvision.datasets.MNIST with ToTensor + Normalize per sample, a shuffling
           DataLoader, the usual train loop (what pytorch/examples/mnist does)
  service  a real ``torchkiln serve`` with one worker: POST /jobs, then the epoch_seconds
           and test_accuracy the worker recorded (the epoch's training part, wall time)
Both train on all 8,000 training digits (val_fraction=0), so an epoch is 125 steps in each and
accuracy is compared after the same number of steps. Prints the median epoch times, their
ratio and both test accuracies.

    .venv/bin/python bench/train_speed.py [--epochs 5] [--data ../shared/datasets/mnist-sample]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from models import REGISTRY  # noqa: E402
from service.settings import Settings  # noqa: E402
from tests.utils.live_server import LiveServer, wait_for_job  # noqa: E402

RECIPE = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.5, "batch_size": 64, "seed": 1}
logger = logging.getLogger("bench.train_speed")


def classic(data: Path, epochs: int) -> tuple[list[float], float]:
    """The textbook loop; returns each epoch's training seconds and the final test accuracy."""
    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    )
    train = datasets.MNIST(str(data), train=True, download=False, transform=transform)
    test = datasets.MNIST(str(data), train=False, download=False, transform=transform)
    train_loader = DataLoader(train, batch_size=64, shuffle=True)
    test_loader = DataLoader(test, batch_size=1000)
    spec = REGISTRY["mnist_mlp"]
    torch.manual_seed(RECIPE["seed"])
    model = spec.build(spec.parse_options({**RECIPE, "val_fraction": 0}))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    loss_fn = nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        seconds.append(time.perf_counter() - started)
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test_loader:
            correct += (model(x).argmax(1) == y).sum().item()
    return seconds, correct / len(test)


def service(data: Path, epochs: int, threads: int) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(
            database_url=f"sqlite:///{root / 'kiln.db'}",
            artifacts_dir=root / "a",
            data_dir=data,
            train_threads=threads,
        )
        server = LiveServer(settings, root / "server.log", workers=1)
        server.start()
        try:
            with server.client() as http:
                params = {**RECIPE, "epochs": epochs, "val_fraction": 0}
                job = http.post("/jobs", json={"model": "mnist_mlp", "params": params}).json()
                done = wait_for_job(http, job["id"], timeout_s=600)
                assert done["status"] == "succeeded", done
                points = http.get(f"/jobs/{job['id']}/metrics").json()["points"]
        finally:
            server.stop()
    seconds = [p["value"] for p in points if p["name"] == "epoch_seconds"]
    accuracy = [p["value"] for p in points if p["name"] == "test_accuracy"][-1]
    return seconds, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both loops")
    parser.add_argument(
        "--data", type=Path, default=REPO_ROOT.parent / "shared" / "datasets" / "mnist-sample"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not (args.data / "MNIST" / "raw").is_dir():
        sys.exit(f"no MNIST sample at {args.data}/MNIST/raw")
    torch.set_num_threads(args.threads)
    classic_s, classic_acc = classic(args.data, args.epochs)
    service_s, service_acc = service(args.data, args.epochs, args.threads)
    classic_median, service_median = statistics.median(classic_s), statistics.median(service_s)
    logger.info(
        "epochs: %d x 125 steps (batch 64) on 8,000 digits, %d torch thread(s) each",
        args.epochs,
        args.threads,
    )
    logger.info("classic loop  epoch %.3f s (median; %s)", classic_median, _list(classic_s))
    logger.info("service       epoch %.3f s (median; %s)", service_median, _list(service_s))
    logger.info("speed-up      %.1fx", classic_median / service_median)
    logger.info(
        "test accuracy classic %.2f%%, service %.2f%% (difference %.2f points)",
        100 * classic_acc,
        100 * service_acc,
        100 * abs(classic_acc - service_acc),
    )


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


if __name__ == "__main__":
    main()
