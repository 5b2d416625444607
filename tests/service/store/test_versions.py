"""Checkpoint kinds and retention, rewind, aliases and deleting jobs, on a real database."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from tests.utils.store_jobs import claim, enqueue, status_of
from torchkiln.service.store import aliases, jobs, progress, versions
from torchkiln.service.store.db import read_session, write_session
from torchkiln.service.store.errors import InvalidInput, JobInUse
from torchkiln.service.store.tables import CheckpointKind


def record(engine: Engine, lease: jobs.Lease, epoch: int, kind: CheckpointKind, keep: int) -> list:
    best = kind == CheckpointKind.BEST
    saved = progress.CheckpointFile(
        epoch=epoch,
        path=f"jobs/{lease.job_id}/epoch-{epoch:06d}{'.best' if best else ''}.pt",
        sha256="0" * 64,
        size_bytes=10,
        kind=kind,
        metric_value=1.0 / epoch if best else None,
    )
    return progress.record_checkpoint(engine, lease, saved, keep=keep)


def running_lease(engine: Engine) -> jobs.Lease:
    job_id = enqueue(engine)
    job = claim(engine)
    assert job is not None and job.id == job_id
    return jobs.Lease(job_id, job.attempts)


def test_retention_keeps_the_newest_of_each_kind(any_engine: Engine) -> None:
    lease = running_lease(any_engine)
    dropped = []
    for epoch in (1, 2, 3, 4):
        dropped += record(any_engine, lease, epoch, CheckpointKind.BEST, keep=1)
        dropped += record(any_engine, lease, epoch, CheckpointKind.LAST, keep=2)
    assert sorted(dropped) == sorted(
        [f"jobs/{lease.job_id}/epoch-00000{e}.best.pt" for e in (1, 2, 3)]
        + [f"jobs/{lease.job_id}/epoch-00000{e}.pt" for e in (1, 2)]
    )
    with read_session(any_engine) as session:
        serving = progress.serving_checkpoint(session, lease.job_id)
        resume = progress.resume_checkpoint(session, lease.job_id)
        sizes = versions.disk_bytes(session, [lease.job_id])
    assert serving is not None and serving.kind == CheckpointKind.BEST and serving.epoch == 4
    assert resume is not None and resume.kind == CheckpointKind.LAST and resume.epoch == 4
    assert sizes == {lease.job_id: 30}
    job = status_of(any_engine, lease.job_id)
    assert job.best_epoch == 4 and job.best_value == pytest.approx(0.25)


def test_rewind_drops_best_checkpoints_past_the_resume_epoch(any_engine: Engine) -> None:
    lease = running_lease(any_engine)
    record(any_engine, lease, 2, CheckpointKind.BEST, keep=3)
    record(any_engine, lease, 2, CheckpointKind.LAST, keep=1)
    record(any_engine, lease, 3, CheckpointKind.BEST, keep=3)
    rewind = progress.rewind_to_checkpoint(any_engine, lease)
    assert rewind.checkpoint is not None and rewind.checkpoint.epoch == 2
    assert rewind.best is not None and rewind.best.epoch == 2
    assert rewind.stale_paths == [f"jobs/{lease.job_id}/epoch-000003.best.pt"]
    assert status_of(any_engine, lease.job_id).best_epoch == 2


def test_aliases_name_succeeded_versions_and_block_deletion(any_engine: Engine) -> None:
    lease = running_lease(any_engine)
    with write_session(any_engine) as session, pytest.raises(InvalidInput):
        aliases.set_alias(session, model="linear", alias="champion", job_id=lease.job_id)
    with write_session(any_engine) as session, pytest.raises(JobInUse, match="cancel it first"):
        versions.delete_job(session, lease.job_id)
    assert jobs.finish_job(any_engine, lease)
    with write_session(any_engine) as session:
        aliases.set_alias(session, model="linear", alias="champion", job_id=lease.job_id)
    with read_session(any_engine) as session:
        assert aliases.aliased_job_id(session, ["quadratic", "linear"], "champion") == lease.job_id
        rows = versions.version_rows(session, "linear")
    assert [(r["job_id"], r["aliases"]) for r in rows] == [(lease.job_id, ["champion"])]
    with write_session(any_engine) as session, pytest.raises(JobInUse, match="champion"):
        versions.delete_job(session, lease.job_id)
    with write_session(any_engine) as session:
        aliases.delete_alias(session, model="linear", alias="champion")
        versions.delete_job(session, lease.job_id)
    with read_session(any_engine) as session:
        assert versions.succeeded_jobs(session, "linear") == []
