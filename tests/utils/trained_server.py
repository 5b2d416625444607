"""A live server on tiny MNIST files with one succeeded job of each small model under test."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_settings
from tests.models.fixtures import synthetic_digits, write_idx
from tests.utils.http_jobs import submit
from tests.utils.live_server import LiveServer, wait_for_job

SMALL_JOBS: dict[str, dict[str, object]] = {
    "linear": {"epochs": 500},
    "logistic_hours": {"epochs": 1000, "optimizer": "sgd", "lr": 0.05},
    "mnist_mlp": {"epochs": 1, "batch_size": 32},
}


def write_tiny_mnist(data_dir: Path, train: int = 300, test: int = 60) -> None:
    """Synthetic digits in the MNIST file layout: enough to train in seconds."""
    raw = data_dir / "MNIST" / "raw"
    for split, n, seed in (("train", train, 1), ("t10k", test, 2)):
        images, labels = synthetic_digits(n, seed=seed)
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)


def start_mnist_server(root: Path, workers: int = 2) -> LiveServer:
    """A running server, with workers, on tiny MNIST files in ``root``."""
    settings = make_settings(root, f"sqlite:///{root / 'kiln.db'}")
    write_tiny_mnist(settings.data_dir)
    live = LiveServer(settings, root / "log", workers=workers)
    live.start()
    return live


def start_trained(root: Path) -> tuple[LiveServer, dict[str, int]]:
    """The running server, and the succeeded job id of each model in ``SMALL_JOBS``."""
    write_tiny_mnist(root / "data", train=120, test=40)
    settings = make_settings(root, f"sqlite:///{root / 'kiln.db'}")
    server = LiveServer(settings.model_copy(update={"data_dir": root / "data"}), root / "log")
    server.start()
    ids: dict[str, int] = {}
    with server.client() as http:
        for model, params in SMALL_JOBS.items():
            ids[model] = submit(http, model, **params)
        for job_id in ids.values():
            job = wait_for_job(http, job_id, timeout_s=120)
            assert job["status"] == "succeeded", job
    return server, ids


def start_image_models(root: Path, models: tuple[str, ...]) -> LiveServer:
    """A running server on tiny MNIST and CIFAR-10 files with one succeeded job of each of
    ``models`` (one epoch), so uploads get as far as a network."""
    from tests.integration.test_datasets_e2e import train, write_tiny_data

    write_tiny_data(root / "data")
    settings = make_settings(root, f"sqlite:///{root / 'kiln.db'}")
    live = LiveServer(settings.model_copy(update={"data_dir": root / "data"}), root / "log")
    live.start()
    with live.client() as http:
        for model in models:
            train(http, model, epochs=1, batch_size=32)
    return live
