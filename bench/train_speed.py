"""Training speed: an mnist_mlp epoch through the service vs the classic PyTorch loop.

Both run the seed recipe (784-512-256-128-64-10 ReLU MLP, SGD lr 0.01, momentum 0.5, batch 64,
the same initial weights from torch.manual_seed) on ../shared/datasets/mnist-sample, in this
one invocation:
  classic  torchvision.datasets.MNIST with ToTensor + Normalize per sample, a shuffling
           DataLoader, the usual train loop (what pytorch/examples/mnist does), in a plain
           Python process with stock PyTorch
  service  a real ``torchkiln serve`` with one worker: POST /jobs, then the epoch_seconds
           and test_accuracy the worker recorded (the epoch's training part, wall time)
Both train on all 8,000 training digits (val_fraction=0), so an epoch is 125 steps in each and
accuracy is compared after the same number of steps. Each side runs ``--repeats`` times,
alternating; the figures are medians over all epochs of all repeats.

The service trains this network with one hand-fused Linear/ReLU + SGD step
(workers/mlp_step.py); a third row runs the service with it off (autograd + torch.optim.SGD)
so its share of the speed-up shows. On an AMD CPU with AVX-512 the service's workers also get
MKL's AVX-512 kernels (workers/mkl_dispatch.py); so that the speed-up can be told apart from
the kernel choice, two more rows run there: the classic loop given the same kernels, and the
service without them.

    .venv/bin/python bench/train_speed.py [--epochs 5] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402

from tests.utils.live_server import LiveServer, wait_for_job  # noqa: E402
from torchkiln.models import REGISTRY  # noqa: E402
from torchkiln.service.store.settings import Settings  # noqa: E402
from torchkiln.workers.mkl_dispatch import shim_for_this_host, with_preload  # noqa: E402

RECIPE = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.5, "batch_size": 64, "seed": 1}
logger = logging.getLogger("bench.train_speed")


@dataclass(frozen=True)
class Run:
    seconds: list[float]
    accuracy: float


def classic(data: Path, epochs: int) -> Run:
    """The textbook loop: each epoch's training seconds and the final test accuracy."""
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
    return Run(seconds, correct / len(test))


def classic_in_child(data: Path, epochs: int, threads: int, preload: Path | None) -> Run:
    """The classic loop in a fresh interpreter: stock, or with ``preload`` in LD_PRELOAD."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if preload is not None:
        env = with_preload(env, preload)
    command = [sys.executable, __file__, "--classic-child", "--data", str(data)]
    command += ["--epochs", str(epochs), "--threads", str(threads)]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    return Run(report["seconds"], report["accuracy"])


def service(
    data: Path, epochs: int, threads: int, *, mkl_amd_avx512: bool = True, fused: bool = True
) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(
            database_url=f"sqlite:///{root / 'kiln.db'}",
            artifacts_dir=root / "a",
            data_dir=data,
            train_threads=threads,
            mkl_amd_avx512=mkl_amd_avx512,
            fused_mlp_step=fused,
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
    return Run(seconds, accuracy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, every side")
    parser.add_argument(
        "--data", type=Path, default=REPO_ROOT.parent / "shared" / "datasets" / "mnist-sample"
    )
    parser.add_argument("--classic-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (args.data / "MNIST" / "raw").is_dir():
        sys.exit(f"no MNIST sample at {args.data}/MNIST/raw")
    torch.set_num_threads(args.threads)
    if args.classic_child:
        run = classic(args.data, args.epochs)
        print(json.dumps({"seconds": run.seconds, "accuracy": run.accuracy}))  # noqa: T201
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logger.info("CPU: %s; torch %s", _cpu_name(), torch.__version__)

    shim = shim_for_this_host(enabled=True)
    sides = {
        "classic loop": lambda: classic_in_child(args.data, args.epochs, args.threads, None),
        "service": lambda: service(args.data, args.epochs, args.threads),
        "service, autograd step": lambda: service(
            args.data, args.epochs, args.threads, fused=False
        ),
    }
    if shim is not None:
        sides["classic loop + AVX-512 MKL"] = lambda: classic_in_child(
            args.data, args.epochs, args.threads, shim
        )
        sides["service, AVX2 MKL"] = lambda: service(
            args.data, args.epochs, args.threads, mkl_amd_avx512=False
        )
    runs: dict[str, list[Run]] = {name: [] for name in sides}
    for repeat in range(args.repeats):
        for name, side in sides.items():
            runs[name].append(side())
            logger.info("repeat %d: %-28s %s", repeat + 1, name, _list(runs[name][-1].seconds))

    medians = {
        name: statistics.median(s for r in rs for s in r.seconds) for name, rs in runs.items()
    }
    logger.info(
        "\n%d epochs x 125 steps (batch 64) on 8,000 digits, %d torch thread(s) each, "
        "%d repeats; median epoch seconds:",
        args.epochs,
        args.threads,
        args.repeats,
    )
    for name, rs in runs.items():
        accuracy = statistics.median(r.accuracy for r in rs)
        logger.info("  %-28s %.3f s   test accuracy %.2f%%", name, medians[name], 100 * accuracy)
    classic_s, service_s = medians["classic loop"], medians["service"]
    logger.info("speed-up, service vs classic loop: %.1fx", classic_s / service_s)
    logger.info(
        "  the fused Linear/ReLU+SGD step alone: %.2fx (service with autograd + optimizer)",
        medians["service, autograd step"] / service_s,
    )
    if shim is not None:
        logger.info(
            "  same MKL kernels on both sides: %.1fx (AVX-512) and %.1fx (AVX2)",
            medians["classic loop + AVX-512 MKL"] / service_s,
            classic_s / medians["service, AVX2 MKL"],
        )
    accuracy_gap = abs(
        statistics.median(r.accuracy for r in runs["classic loop"])
        - statistics.median(r.accuracy for r in runs["service"])
    )
    logger.info("test accuracy difference after the same steps: %.2f points", 100 * accuracy_gap)


def _cpu_name() -> str:
    """The model name and vector width this machine reports: figures differ by CPU."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    name = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return (
        f"{name}, {'AVX-512' if ' avx512f' in cpuinfo else 'AVX2 at most'}, {os.cpu_count()} cores"
    )


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


if __name__ == "__main__":
    main()
