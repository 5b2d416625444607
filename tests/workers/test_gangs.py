"""Multi-host jobs as gangs through the job row: node slots, the published rendezvous
endpoint, a gang that cannot assemble, and two real worker commands on loopback acting as
two nodes of one ``nodes: 2`` job."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from tests.utils.distributed_runs import run_next
from tests.utils.store_jobs import claim, enqueue, status_of
from tests.utils.trained_server import write_tiny_mnist
from tests.utils.worker_command import WorkerCommand
from torchkiln.service.store.db import make_engine, read_session, upgrade_database
from torchkiln.service.store.gangs import join_gang, publish_endpoint, requeue_unassembled
from torchkiln.service.store.jobs import Lease
from torchkiln.service.store.settings import Settings
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import Job, MetricPoint

GANG = {"epochs": 2, "batch_size": 32, "seed": 0, "distributed": {"nodes": 2}}


def test_node_slots_are_taken_once_each_and_freed_when_the_gang_gives_up(
    any_db_settings: Settings,
) -> None:
    engine = make_engine(any_db_settings)
    try:
        upgrade_database(engine)
        job_id = enqueue(engine, model="mnist_mlp", params={**GANG, "distributed": {"nodes": 3}})
        leader = claim(engine)
        assert leader is not None and leader.gang_nodes == 3 and leader.gang_joined == 1
        assert join_gang(engine, devices=["auto"]) is None  # nothing published yet
        lease = Lease(job_id, leader.attempts)
        assert publish_endpoint(engine, lease, "127.0.0.1:29999")
        joined = [join_gang(engine, devices=["auto"]) for _ in range(3)]
        assert [j.gang_joined if j else None for j in joined] == [2, 3, None]
        assert joined[0] is not None and joined[0].gang_endpoint == "127.0.0.1:29999"
        assert requeue_unassembled(engine, lease, "gang did not assemble: 1 of 3")
        job = status_of(engine, job_id)
        assert job.status == JobState.QUEUED and job.gang_joined == 0 and job.attempts == 1
        assert job.gang_endpoint is None and job.error == "gang did not assemble: 1 of 3"
    finally:
        engine.dispose()


def test_a_gang_that_cannot_assemble_times_out_saying_why_and_loses_nothing(
    settings: Settings, engine: Engine
) -> None:
    """One node of two: the rendezvous gives up, the job goes back to the queue with the
    reason (the attempt counts), and fails with it once its attempts are spent."""
    settings = settings.model_copy(update={"gang_timeout_s": 2.0, "node_address": "127.0.0.1"})
    job_id = enqueue(engine, model="mnist_mlp", params=GANG, max_attempts=2)
    reason = "gang did not assemble: 1 of 2 nodes joined within gang_timeout_s=2"
    for attempt, status in ((1, JobState.QUEUED), (2, JobState.FAILED)):
        assert run_next(settings, engine) == job_id
        job = status_of(engine, job_id)
        assert (job.status, job.attempts, job.error) == (status, attempt, reason)
        assert job.gang_joined == 0 and job.gang_endpoint is None


@pytest.mark.slow  # two worker commands, each with its worker and one rank, twice
def test_two_worker_commands_run_a_two_node_job_through_a_killed_rank(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """One node's rank SIGKILLed mid-job: the gang stops, the job is requeued as one lost
    attempt, the two workers assemble again and finish it from its last checkpoint."""
    settings = settings.model_copy(update={"gang_timeout_s": 60.0, "node_address": "127.0.0.1"})
    write_tiny_mnist(settings.data_dir)
    epochs = 12
    job_id = enqueue(
        engine, model="mnist_mlp", params={**GANG, "epochs": epochs, "checkpoint_every": 1}
    )
    nodes = [WorkerCommand(settings, tmp_path / f"node{n}.log") for n in range(2)]

    def wait_for(done: Callable[[Job], bool]) -> Job:
        deadline = time.monotonic() + 120
        while not done(job := status_of(engine, job_id)):
            assert time.monotonic() < deadline, (job, [node.log() for node in nodes])
            time.sleep(0.1)
        return job

    try:
        for node in nodes:
            node.start()
        running = wait_for(lambda job: job.status == JobState.RUNNING and job.epoch >= 2)
        # Rank 1: rank 0, on the other node, then trains on holding a lease the gang lost,
        # and its agent would wait minutes at its exit barrier unless rank 0 fails.
        assert running.distributed is not None
        rank = running.distributed["ranks"][1]["pid"]
        os.kill(rank, signal.SIGKILL)
        job = wait_for(lambda job: job.status not in (JobState.QUEUED, JobState.RUNNING))
        assert job.status == JobState.SUCCEEDED, (job.error, [node.log() for node in nodes])
        assert job.attempts == 2 and job.epoch == epochs
        world = job.distributed
        assert world is not None and world["world_size"] == 2
        assert [rank["rank"] for rank in world["ranks"]] == [0, 1]
        with read_session(engine) as session:
            points = session.exec(
                select(MetricPoint).where(
                    MetricPoint.job_id == job_id, MetricPoint.name == "train_loss"
                )
            ).all()
        assert sorted(p.epoch for p in points) == list(range(1, epochs + 1))  # once each
        assert "resumes from epoch" in nodes[0].log() + nodes[1].log()
        for node in nodes:
            assert node.stop(signal.SIGTERM) == 0
    finally:
        for node in nodes:
            node.kill_group()


def proc_stat(pid: int) -> list[str]:
    """/proc/<pid>/stat after "pid (comm)": state, ppid, ... (comm may hold spaces)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def is_running(pid: int) -> bool:
    """Alive and not a zombie waiting for a parent to reap it."""
    try:
        return proc_stat(pid)[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_rank_whose_worker_is_sigkilled_leaves_and_the_gang_stops(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """Node 1's worker process SIGKILLed (not its rank): the rank it launched must not train
    on as an orphan; it leaves, and the gang stops with the attempt lost."""
    settings = settings.model_copy(update={"gang_timeout_s": 60.0, "node_address": "127.0.0.1"})
    write_tiny_mnist(settings.data_dir)
    job_id = enqueue(engine, model="mnist_mlp", params={**GANG, "epochs": 400})
    nodes = [WorkerCommand(settings, tmp_path / f"node{n}.log") for n in range(2)]
    try:
        for node in nodes:
            node.start()
        deadline = time.monotonic() + 120
        while not (
            (job := status_of(engine, job_id)).status == JobState.RUNNING and job.epoch >= 2
        ):
            assert time.monotonic() < deadline, (job, [node.log() for node in nodes])
            time.sleep(0.1)
        assert job.distributed is not None
        rank = job.distributed["ranks"][1]["pid"]
        os.kill(int(proc_stat(rank)[1]), signal.SIGKILL)  # its parent: node 1's worker
        deadline = time.monotonic() + 60
        while is_running(rank):
            assert time.monotonic() < deadline, [node.log() for node in nodes]
            time.sleep(0.2)
        while (job := status_of(engine, job_id)).attempts == 1 and job.status == JobState.RUNNING:
            assert time.monotonic() < deadline, (job, [node.log() for node in nodes])
            time.sleep(0.2)
        assert job.epoch < 400, job  # stopped, not trained through to the end
    finally:
        for node in nodes:
            node.kill_group()
