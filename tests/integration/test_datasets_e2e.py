"""Dataset models through the real service: tiny generated files always, real data when present."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import SHARED_DATASETS, make_settings
from tests.models.fixtures import synthetic_cifar, synthetic_digits, write_cifar_batch, write_idx
from tests.utils.live_server import LiveServer, wait_for_job


def write_tiny_data(root: Path) -> None:
    raw = root / "MNIST" / "raw"
    for split, n, seed in (("train", 200, 1), ("t10k", 60, 2)):
        images, labels = synthetic_digits(n, seed=seed)
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    cifar = root / "cifar-10-batches-py"
    write_cifar_batch(cifar / "data_batch_1", *synthetic_cifar(80, seed=1))
    write_cifar_batch(cifar / "test_batch", *synthetic_cifar(20, seed=2))


def link_shared_data(root: Path) -> None:
    (root / "MNIST").symlink_to(SHARED_DATASETS / "mnist-sample" / "MNIST")
    cifar = SHARED_DATASETS / "cifar10-sample" / "cifar-10-batches-py"
    (root / "cifar-10-batches-py").symlink_to(cifar)


def start(root: Path, data: Path, workers: int = 1) -> LiveServer:
    settings = make_settings(root, f"sqlite:///{root / 'kiln.db'}")
    settings = settings.model_copy(update={"data_dir": data})
    live = LiveServer(settings, root / "log", workers=workers)
    live.start()
    return live


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root = tmp_path_factory.mktemp("tiny")
    write_tiny_data(root / "data")
    live = start(root, root / "data")
    with live.client() as http:
        yield http
    live.stop()


def png(pixels: np.ndarray, scale: int = 1) -> bytes:
    image = Image.fromarray(pixels)
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def train(http: httpx.Client, model: str, timeout_s: float = 300, **params: object) -> dict:
    job = http.post("/jobs", json={"model": model, "params": params})
    assert job.status_code == 201, job.text
    done = wait_for_job(http, job.json()["id"], timeout_s=timeout_s)
    assert done["status"] == "succeeded", done
    return done


def last(http: httpx.Client, job_id: int, name: str) -> float:
    return http.get(f"/jobs/{job_id}/metrics", params={"name": name}).json()["points"][-1]["value"]


def test_each_dataset_model_trains_records_and_answers(tiny: httpx.Client) -> None:
    for model in ("mnist_mlp", "mnist_cnn", "cifar10_cnn", "diabetes"):
        job = train(tiny, model, epochs=2, batch_size=32)
        names = {p["name"] for p in tiny.get(f"/jobs/{job['id']}/metrics").json()["points"]}
        assert {"train_loss", "val_loss", "val_accuracy", "epoch_seconds"} <= names, model
        if model != "diabetes":
            assert "test_accuracy" in names
    digits = tiny.post(
        "/predict/mnist",
        files={"file": ("d.png", png(np.eye(28, dtype=np.uint8) * 255), "image/png")},
    )
    assert digits.status_code == 200, digits.text
    answer = digits.json()["predictions"][0]
    assert 0 <= answer["digit"] <= 9 and len(answer["top3"]) == 3
    assert digits.json()["model"] == "mnist_cnn"  # its production alias moved last
    images, _ = synthetic_cifar(2, seed=5)
    cifar = tiny.post(
        "/predict/cifar10",
        files=[("file", (f"{i}.png", png(images[i]), "image/png")) for i in range(2)],
    )
    assert cifar.status_code == 200, cifar.text
    assert len(cifar.json()["predictions"]) == 2
    diabetes = tiny.post("/predict/diabetes", json={"features": [[0.0] * 8]})
    assert diabetes.status_code == 200 and 0 <= diabetes.json()["probabilities"][0] <= 1


def test_init_from_continues_an_earlier_job(tiny: httpx.Client) -> None:
    first = train(tiny, "diabetes", epochs=30, optimizer="adam", lr=0.01)
    again = train(tiny, "diabetes", epochs=1, optimizer="adam", lr=0.001, init_from=first["id"])
    fresh = train(tiny, "diabetes", epochs=1, optimizer="adam", lr=0.001)
    assert last(tiny, again["id"], "val_loss") < last(tiny, fresh["id"], "val_loss")
    wrong = tiny.post("/jobs", json={"model": "mnist_mlp", "params": {"init_from": first["id"]}})
    assert wrong.status_code == 422 and "init_from" in wrong.json()["detail"]


def test_missing_data_fails_at_once_naming_the_files(tmp_path: Path) -> None:
    live = start(tmp_path, tmp_path / "empty")
    try:
        with live.client() as http:
            job = http.post("/jobs", json={"model": "mnist_mlp"}).json()
            failed = wait_for_job(http, job["id"])
    finally:
        live.stop()
    assert failed["status"] == "failed" and failed["attempts"] == 1
    assert str(tmp_path / "empty" / "MNIST" / "raw") in failed["error"]
    assert "train-images-idx3-ubyte" in failed["error"]


@pytest.mark.parametrize(
    ("upload", "status"),
    [
        (b"", 422),
        (b"plain text, not a picture", 415),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", 415),
        (png(np.zeros((28, 28), np.uint8))[:40], 422),
    ],
)
def test_bad_uploads_are_4xx_with_a_reason(tiny: httpx.Client, upload: bytes, status: int) -> None:
    response = tiny.post("/predict/mnist", files={"file": ("x.png", upload, "image/png")})
    assert response.status_code == status
    assert response.json()["detail"]


def test_oversized_uploads_are_413(tiny: httpx.Client) -> None:
    bomb = Image.new("L", (30_000, 30_000))
    buffer = io.BytesIO()
    bomb.save(buffer, format="PNG")
    response = tiny.post(
        "/predict/mnist", files={"file": ("bomb.png", buffer.getvalue(), "image/png")}
    )
    assert response.status_code == 413 and "pixels" in response.json()["detail"]
    huge = b"\x89PNG\r\n\x1a\n" + b"\0" * 6_000_000
    response = tiny.post("/predict/mnist", content=huge, headers={"content-type": "image/png"})
    assert response.status_code == 413


def test_a_batch_may_pass_one_uploads_limit_but_each_file_may_not(tiny: httpx.Client) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (1450, 1450), dtype=np.uint8)
    photo = png(noise)  # incompressible: about 2.1 MB, so three pass MAX_UPLOAD_BYTES (5 MB)
    assert 2_000_000 < len(photo) < 5_000_000
    files = [("file", (f"{i}.png", photo, "image/png")) for i in range(3)]
    batch = tiny.post("/predict/mnist", files=files)
    assert batch.status_code == 200, batch.text
    assert len(batch.json()["predictions"]) == 3
    oversized = b"\x89PNG\r\n\x1a\n" + b"\0" * 6_000_000
    files = [
        ("file", ("ok.png", photo, "image/png")),
        ("file", ("big.png", oversized, "image/png")),
    ]
    response = tiny.post("/predict/mnist", files=files)
    assert response.status_code == 413 and "5,000,000-byte limit" in response.json()["detail"]


needs_shared = pytest.mark.skipif(
    not (SHARED_DATASETS / "mnist-sample").is_dir(), reason="../shared/datasets is not present"
)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root = tmp_path_factory.mktemp("real")
    (root / "data").mkdir()
    link_shared_data(root / "data")
    live = start(root, root / "data")
    with live.client() as http:
        yield http
    live.stop()


def read_idx(path: Path, offset: int) -> np.ndarray:
    return np.frombuffer(path.read_bytes()[offset:], np.uint8)


@needs_shared
@pytest.mark.shared_data
def test_real_mnist_trains_to_92_and_reads_real_pngs(real: httpx.Client) -> None:
    job = train(real, "mnist_mlp", epochs=5, optimizer="adam", lr=1e-3, momentum=0)
    accuracy = last(real, job["id"], "test_accuracy")
    assert accuracy >= 0.92
    raw = SHARED_DATASETS / "mnist-sample" / "MNIST" / "raw"
    images = read_idx(raw / "t10k-images-idx3-ubyte", 16).reshape(-1, 28, 28)[:100]
    labels = read_idx(raw / "t10k-labels-idx1-ubyte", 8)[:100]
    for variant in ("as-is", "inverted-4x"):
        files = [
            (
                "file",
                (f"{i}.png", png(255 - img, 4) if variant != "as-is" else png(img), "image/png"),
            )
            for i, img in enumerate(images)
        ]
        answers = real.post("/predict/mnist", files=files).json()["predictions"]
        hits = np.mean([a["digit"] == label for a, label in zip(answers, labels, strict=True)])
        # The upload path recentres digits the MNIST way, so it tracks the model's accuracy.
        assert hits >= accuracy - 0.06, (variant, hits, accuracy)


@needs_shared
@pytest.mark.shared_data
def test_real_cifar_recipes_reach_the_plain_loop_figures(real: httpx.Client) -> None:
    plain = train(
        real, "cifar10_cnn", timeout_s=900, epochs=5, optimizer="sgd", lr=0.01, momentum=0.9
    )
    best = max(
        p["value"]
        for p in real.get(f"/jobs/{plain['id']}/metrics", params={"name": "test_accuracy"}).json()[
            "points"
        ]
    )
    # 5 of the recipe's 12 epochs (0.417 by epoch 5 here, 0.22 after one, chance 0.10; 0.50
    # at 12): bench/cifar_recipes.py runs them all. Short, for the suite's time.
    assert best >= 0.39, best
    # 4 of the recipe's 20 epochs (0.432 by epoch 4 here, seed 0); bench/cifar_recipes.py
    # runs all 20 (0.59+).
    tuned = train(
        real,
        "cifar10_cnn",
        timeout_s=1200,
        epochs=4,
        optimizer="adam",
        lr=1e-3,
        batch_norm=True,
        dropout=0.3,
        augment=True,
    )
    best = max(
        p["value"]
        for p in real.get(f"/jobs/{tuned['id']}/metrics", params={"name": "test_accuracy"}).json()[
            "points"
        ]
    )
    assert best >= 0.41, best
