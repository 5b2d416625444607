"""/predict/tabular for one diabetes row under load, beside /predict/mnist in the same run.

Sets up a temporary torchkiln (SQLite), uploads ``../shared/datasets/diabetes/diabetes.csv.gz``
through ``POST /datasets`` (header-less, so with ``columns``), trains the seed ``tabular``
network on it with one worker, seeds a production ``mnist_mlp`` job (as bench/predict.py),
then restarts ``torchkiln serve`` with no training workers, one HTTP process, and drives
``POST /predict/tabular?job_id=N`` with one JSON row and ``POST /predict/mnist`` with a
multipart PNG, with wrk, taking turns, ``--repeats`` rounds; medians. For scale, the issue's
measurement of Ludwig 0.17's ``ludwig serve`` on one diabetes row on this machine: 28-33 req/s
(p50 29 ms at 1 connection, 279 ms at 8); Ludwig is not installed here, so its figure is the
issue's, not this run's.

    .venv/bin/python bench/predict_tabular.py [--connections 1 8] [--duration 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.predict import Load, digit_png, median_load, multipart_lua, run_wrk  # noqa: E402
from tests.utils.live_server import LiveServer, wait_for_job  # noqa: E402
from tests.utils.seeded_jobs import seed_mlp_job  # noqa: E402
from torchkiln.service.store.settings import Settings  # noqa: E402

DIABETES = REPO_ROOT.parent / "shared" / "datasets" / "diabetes" / "diabetes.csv.gz"
COLUMNS = [f"x{i}" for i in range(1, 9)] + ["Outcome"]
LUDWIG_REQ_S = (28.0, 33.0)
logger = logging.getLogger("bench.predict_tabular")


def train_tabular(settings: Settings, root: Path) -> tuple[int, dict[str, float]]:
    """Upload the diabetes table, train the seed network; the job id and one of its rows."""
    server = LiveServer(settings, root / "train.log", workers=1)
    server.start()
    try:
        with server.client() as http:
            upload = http.post(
                "/datasets",
                files={"file": ("diabetes.csv.gz", DIABETES.read_bytes())},
                data={"columns": ",".join(COLUMNS)},
            )
            assert upload.status_code in (200, 201), upload.text
            params = {
                "dataset": upload.json()["id"],
                "target": "Outcome",
                "preset": "seed",
                "epochs": 20,
            }
            created = http.post("/jobs", json={"model": "tabular", "params": params})
            assert created.status_code == 201, created.text
            job = wait_for_job(http, created.json()["id"], timeout_s=300)
            assert job["status"] == "succeeded", job
    finally:
        server.stop()
    with gzip.open(DIABETES, "rt") as text:
        values = [float(v) for v in text.readline().split(",")]
    return job["id"], dict(zip(COLUMNS[:-1], values, strict=False))


def json_lua(body: dict, script: Path) -> None:
    """A wrk script posting ``body`` as JSON, encoded once."""
    encoded = json.dumps(body).replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.body = "{encoded}"\n'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians are printed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(
            database_url=f"sqlite:///{root / 'kiln.db'}",
            artifacts_dir=root / "artifacts",
            datasets_dir=root / "datasets",
        )
        mnist_job = seed_mlp_job(settings)
        tabular_job, row = train_tabular(settings, root)
        png = root / "digit.png"
        png.write_bytes(digit_png())
        scripts = {"tabular": root / "row.lua", "mnist": root / "digit.lua"}
        json_lua({"rows": [row]}, scripts["tabular"])
        multipart_lua(png, scripts["mnist"])
        urls = {"tabular": f"/predict/tabular?job_id={tabular_job}", "mnist": "/predict/mnist"}
        server = LiveServer(settings, root / "serve.log", workers=0)
        server.start()
        try:
            with server.client() as http:
                check = http.post(urls["tabular"], json={"rows": [row]})
                logger.info("check: %s", check.text[:200])
                assert check.status_code == 200, check.text
                assert (
                    http.post("/predict/mnist", files={"file": png.read_bytes()}).json()["job_id"]
                    == mnist_job
                )
            for name, path in urls.items():  # warm-up, not counted
                run_wrk(server.url + path, scripts[name], 8, 2)
            samples: dict[tuple[str, int], list[Load]] = {}
            for _ in range(args.repeats):
                for count in args.connections:
                    for name, path in urls.items():
                        load = run_wrk(server.url + path, scripts[name], count, args.duration)
                        samples.setdefault((name, count), []).append(load)
        finally:
            server.stop()
    report({key: median_load(loads) for key, loads in samples.items()})


def report(loads: dict[tuple[str, int], Load]) -> None:
    low, high = LUDWIG_REQ_S
    for (name, count), load in sorted(loads.items()):
        logger.info(
            "/predict/%s, %d conn: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d errors",
            name,
            count,
            load.requests_per_s,
            load.p50_ms,
            load.p99_ms,
            load.errors,
        )
    for (name, count), load in sorted(loads.items()):
        if name != "tabular":
            continue
        mnist = loads.get(("mnist", count))
        versus = (
            f", {load.requests_per_s / mnist.requests_per_s:.2f}x /predict/mnist" if mnist else ""
        )
        logger.info(
            "tabular at %d conn: %.0f-%.0fx Ludwig's %g-%g req/s (the issue's figure)%s",
            count,
            load.requests_per_s / high,
            load.requests_per_s / low,
            low,
            high,
            versus,
        )


if __name__ == "__main__":
    main()
