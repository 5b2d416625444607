"""A 2-process (gloo) mnist_mlp job through the elastic launcher: it follows the one-process
loss curve, records each epoch once, and a run handed back mid-way resumes from its
checkpoint. Each launch starts two interpreters, so there are only two here."""

from __future__ import annotations

import math

import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from tests.utils.distributed_runs import run_next
from tests.utils.prometheus_text import sample
from tests.utils.store_jobs import claim, enqueue, status_of
from tests.utils.trained_server import write_tiny_mnist
from torchkiln.models import REGISTRY
from torchkiln.service.store import jobs
from torchkiln.service.store.checkpoint_files import job_log_path
from torchkiln.service.store.db import read_session
from torchkiln.service.store.settings import Settings
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import MetricPoint
from torchkiln.service.store.world import record_world
from torchkiln.workers.distributed import GroupRanks

EPOCHS = 5
# 240 training rows (300 less a fifth for validation): 32 does not divide them, so the last
# batch is a short one, split 8 and 8.
ONE = {"epochs": EPOCHS, "batch_size": 32, "seed": 0, "checkpoint_every": 1}
TWO = {**ONE, "distributed": {"nodes": 1, "procs_per_node": 2}}
# Measured here over the 5 epochs, relative: train_loss 6e-7, val_loss 2e-7, test_loss 6e-6,
# accuracies equal. Only float order differs: the one process takes the fused MLP step on
# batches of 32, the two take autograd on 16 each and add their gradient halves (gloo), and
# the loss means are summed in float64 across ranks. A wrong shard or batch is off by 1e-2.
REL_TOL = 1e-4


def history(engine: Engine, job_id: int) -> dict[str, list[tuple[int, float | None]]]:
    with read_session(engine) as session:
        points = session.exec(
            select(MetricPoint).where(MetricPoint.job_id == job_id).order_by(MetricPoint.id)
        ).all()
    by_name: dict[str, list[tuple[int, float | None]]] = {}
    for point in points:
        if point.name != "epoch_seconds":
            by_name.setdefault(point.name, []).append((point.epoch, point.value))
    return by_name


@pytest.mark.slow  # two launches of two interpreters each
def test_two_processes_follow_one_and_resume_from_the_checkpoint(
    settings: Settings, engine: Engine
) -> None:
    write_tiny_mnist(settings.data_dir)
    two = enqueue(engine, model="mnist_mlp", params=TWO)
    one = enqueue(engine, model="mnist_mlp", params=ONE)

    # A warm shutdown once an epoch is recorded: the ranks finish that epoch, rank 0 writes
    # its checkpoint and hands the job back.
    run_next(settings, engine, should_pause=lambda: status_of(engine, two).epoch >= 1)
    paused = status_of(engine, two)
    assert paused.status == JobState.QUEUED and 1 <= paused.epoch < EPOCHS, paused
    run_next(settings, engine)
    run_next(settings, engine)

    job = status_of(engine, two)
    assert job.status == JobState.SUCCEEDED and job.epoch == EPOCHS, job.error
    log = job_log_path(settings.artifacts_dir, two).read_text()
    assert f"resumes from epoch {paused.epoch}" in log
    world = job.distributed
    assert world is not None and world["world_size"] == 2 and world["backend"] == "gloo"
    assert [rank["rank"] for rank in world["ranks"]] == [0, 1]
    assert all(rank["device"] == "cpu" and rank["samples_per_s"] > 0 for rank in world["ranks"])

    assert status_of(engine, one).status == JobState.SUCCEEDED
    distributed, alone = history(engine, two), history(engine, one)
    assert distributed.keys() == alone.keys()
    for name, points in distributed.items():
        assert [epoch for epoch, _ in points] == list(range(1, EPOCHS + 1)), name  # once each
        for (_, got), (_, want) in zip(points, alone[name], strict=True):
            assert got is not None and want is not None
            assert math.isclose(got, want, rel_tol=REL_TOL, abs_tol=1e-9), (name, got, want)


def test_shards_are_distributed_samplers() -> None:
    """Padded with the first rows to a multiple of the world, then every world-th row."""
    order = torch.tensor([4, 0, 3, 1, 2])
    shards = [GroupRanks(r, 2, torch.device("cpu"), "gloo", seed=0).shard(order) for r in (0, 1)]
    assert [s.tolist() for s in shards] == [[4, 3, 2], [0, 1, 4]]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"batch_size": 33}, "make it a multiple of 2"),
        ({"optimizer": "lbfgs", "momentum": 0}, "lbfgs"),
        ({"distributed": {"nodes": 17}}, "less than or equal to 16"),
        ({"distributed": {"procs_per_node": 9}}, "less than or equal to 8"),
    ],
)
def test_distributed_options_are_checked(params: dict, message: str) -> None:
    spec = REGISTRY["mnist_mlp"]
    with pytest.raises(ValueError, match=message):
        spec.parse_options({"distributed": {"procs_per_node": 2}, **params})


WORLD = {
    "world_size": 2,
    "backend": "gloo",
    "ranks": [
        {"rank": 0, "host": "a", "pid": 11, "device": "cpu", "samples_per_s": 900.5},
        {"rank": 1, "host": "a", "pid": 12, "device": "cpu", "samples_per_s": 880.0},
    ],
}


def test_the_world_shows_in_the_job_json_and_prometheus(client: TestClient) -> None:
    """No processes: the row as rank 0 writes it, read back by the API."""
    job_id = client.post("/jobs", json={"model": "mnist_mlp", "params": TWO}).json()["id"]
    engine = client.app.state.engine  # type: ignore[attr-defined]
    job = claim(engine)
    assert job is not None and job.id == job_id
    assert record_world(engine, jobs.Lease(job_id, job.attempts), WORLD)
    assert client.get(f"/jobs/{job_id}").json()["distributed"] == WORLD
    text = client.get("/metrics").text
    assert sample(text, "torchkiln_job_world_size", job_id=str(job_id)) == 2
    speed = sample(
        text, "torchkiln_rank_samples_per_second", job_id=str(job_id), rank="1", host="a",
        device="cpu",
    )  # fmt: skip
    assert speed == 880.0
