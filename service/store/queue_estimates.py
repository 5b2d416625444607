"""When a queued job will start: the epochs left in the jobs running and queued ahead of it,
timed by recent epochs of their models, handed out to the live workers in queue order."""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Iterable

from sqlmodel import Session, col, select

from torchkiln.service.store.jobs import queue_order
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import Job, MetricPoint
from torchkiln.service.store.worker_processes import count_live_workers

# A model's epoch time is the median over its newest jobs' last epochs: recent enough to
# follow a changed machine, many enough that one slow epoch (a first-epoch warm-up) is noise.
RECENT_JOBS = 5
RECENT_EPOCHS = 200


def epoch_seconds(session: Session, models: Iterable[str]) -> dict[str, float]:
    """Median seconds an epoch of each model took lately; models never trained are absent."""
    medians = {}
    for model in set(models):
        job_ids = session.exec(
            select(Job.id)
            .where(Job.model == model, Job.epoch > 0)
            .order_by(col(Job.id).desc())
            .limit(RECENT_JOBS)
        ).all()
        values = [
            value
            for job_id in job_ids
            for value in session.exec(
                select(MetricPoint.value)
                .where(MetricPoint.job_id == job_id, MetricPoint.name == "epoch_seconds")
                .order_by(col(MetricPoint.id).desc())
                .limit(RECENT_EPOCHS)
            ).all()
            if value is not None
        ]
        if values:
            medians[model] = statistics.median(values)
    return medians


def queue_estimates(session: Session, jobs: list[Job], lease_s: float) -> dict[int, float]:
    """Estimated seconds until each queued job in ``jobs`` starts.

    Each live worker is free once its running job's remaining epochs are done; each queued
    job ahead takes the worker free soonest. Devices are not modelled (any worker may take
    any job). Left out: jobs with no live worker, and jobs behind one whose model has never
    run an epoch (its length is unknown).
    """
    wanted = {job.id for job in jobs if job.status == JobState.QUEUED}
    workers = count_live_workers(session, lease_s) if wanted else 0
    if not workers:
        return {}
    running = session.exec(select(Job).where(Job.status == JobState.RUNNING)).all()
    queued = session.exec(
        select(Job).where(Job.status == JobState.QUEUED).order_by(*queue_order())
    ).all()
    seconds = epoch_seconds(session, [j.model for j in [*running, *queued]])
    free_at = [_remaining_s(job, seconds) for job in running]
    if None in free_at:
        return {}
    # More workers than running jobs: the others are free now.
    slots = [t or 0.0 for t in free_at] + [0.0] * max(0, workers - len(free_at))
    heapq.heapify(slots)
    estimates: dict[int, float] = {}
    for job in queued:
        if job.id is not None and job.id in wanted:
            estimates[job.id] = round(slots[0], 1)
        duration = _remaining_s(job, seconds)
        if duration is None or len(estimates) == len(wanted):
            break
        heapq.heapreplace(slots, slots[0] + duration)
    return estimates


def _remaining_s(job: Job, seconds: dict[str, float]) -> float | None:
    per_epoch = seconds.get(job.model)
    return None if per_epoch is None else max(0, job.epochs - job.epoch) * per_epoch
