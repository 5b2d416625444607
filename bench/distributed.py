"""Distributed training speed: an mnist_mlp epoch with 2 processes (DDP, gloo) vs 1 process.

Each job trains the seed recipe (SGD lr 0.01, momentum 0.5, global batch 64) on all 8,000
digits of ../shared/datasets/mnist-sample (val_fraction=0) for ``--epochs`` epochs, through
the worker's own code: claim, then ``DistributedRun`` (the elastic launcher, c10d on
loopback) or ``JobRun``, with metrics from the database. Rows:
  1 process            JobRun as a worker runs it (the fused MLP step)
  1 process, autograd  the same without the fused step (what every DDP rank runs)
  N processes          DistributedRun, ``--threads`` split between the ranks
Each row runs ``--repeats`` times, alternating; the figures are medians over all epochs of all
repeats (epoch_seconds: the training part of an epoch, wall time), the launch overhead is the
job's wall time less its epochs, and the loss gaps are the largest relative difference of a
train_loss from the 1-process run's (fused) and from the autograd one's (what DDP changes).

    .venv/bin/python bench/distributed.py [--epochs 3] [--repeats 3] [--procs 2] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from sqlmodel import select  # noqa: E402

from tests.utils.store_jobs import claim, enqueue  # noqa: E402
from torchkiln.service.store import jobs  # noqa: E402
from torchkiln.service.store.db import (  # noqa: E402
    make_engine,
    read_session,
    upgrade_database,
)
from torchkiln.service.store.settings import Settings  # noqa: E402
from torchkiln.service.store.tables import MetricPoint  # noqa: E402
from torchkiln.workers.distributed import DistributedRun, is_distributed  # noqa: E402
from torchkiln.workers.job_run import JobRun  # noqa: E402

DATA = REPO_ROOT.parent / "shared" / "datasets" / "mnist-sample"
RECIPE = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.5, "batch_size": 64, "seed": 1}
logger = logging.getLogger("bench.distributed")


def run_job(root: Path, params: dict, *, fused: bool) -> dict:
    """One job through a worker's code in a fresh database; its epoch times and losses."""
    settings = Settings(
        database_url=f"sqlite:///{root / 'kiln.db'}",
        artifacts_dir=root / "artifacts",
        data_dir=DATA,
        fused_mlp_step=fused,
    )
    engine = make_engine(settings)
    upgrade_database(engine)
    enqueue(engine, device="cpu", max_attempts=1, model="mnist_mlp", params=params)
    job = claim(engine, devices=["cpu"])
    assert job is not None and job.id is not None
    run = DistributedRun if is_distributed(job) else JobRun
    started = time.perf_counter()
    run(
        settings, engine, job, device="cpu", worker_id=None, beat_interval_s=1.0,
        should_pause=lambda: False,
    ).perform()  # fmt: skip
    wall = time.perf_counter() - started
    with read_session(engine) as session:
        done = jobs.get_job(session, job.id)
        points = session.exec(select(MetricPoint).where(MetricPoint.job_id == job.id)).all()
    engine.dispose()
    assert done.status == "succeeded", done.error
    seconds = [p.value for p in points if p.name == "epoch_seconds"]
    losses = [p.value for p in sorted(points, key=lambda p: p.epoch) if p.name == "train_loss"]
    return {"wall": wall, "seconds": seconds, "losses": losses, "world": done.distributed}


def loss_gap(results: list[dict], reference: list[float]) -> float:
    """The largest relative difference of a train_loss from ``reference``'s."""
    gap = max(
        abs(got - want) / abs(want)
        for r in results
        for got, want in zip(r["losses"], reference, strict=True)
    )
    return float(f"{gap:.2g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    params = {**RECIPE, "epochs": args.epochs, "val_fraction": 0.0}
    rows = {
        "1 process": (params, True),
        "1 process, autograd": (params, False),
        f"{args.procs} processes": (
            {**params, "distributed": {"nodes": 1, "procs_per_node": args.procs}},
            True,
        ),
    }
    runs: dict[str, list[dict]] = {name: [] for name in rows}
    for _ in range(args.repeats):
        for name, (job_params, fused) in rows.items():
            with tempfile.TemporaryDirectory() as root:
                runs[name].append(run_job(Path(root), job_params, fused=fused))
    fused, autograd = runs["1 process"][0]["losses"], runs["1 process, autograd"][0]["losses"]
    report = {"threads": args.threads, "epochs": args.epochs, "repeats": args.repeats, "rows": {}}
    for name, results in runs.items():
        seconds = [s for r in results for s in r["seconds"]]
        overhead = [r["wall"] - sum(r["seconds"]) for r in results]
        row = {
            "epoch_s_median": round(statistics.median(seconds), 3),
            "job_overhead_s_median": round(statistics.median(overhead), 2),
            "loss_gap_vs_1_process": loss_gap(results, fused),
            "loss_gap_vs_autograd": loss_gap(results, autograd),
        }
        if results[-1]["world"] is not None:
            row["rank_samples_per_s"] = [r["samples_per_s"] for r in results[-1]["world"]["ranks"]]
        report["rows"][name] = row
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
