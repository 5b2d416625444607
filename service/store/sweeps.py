"""Sweeps: expanding a search space into trials, the leaderboard, and successive halving."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from torchkiln.service.store.db import read_session
from torchkiln.service.store.errors import InvalidInput, SweepNotCancellable, SweepNotFound
from torchkiln.service.store.jobs import cancel_job, enqueue_job
from torchkiln.service.store.metric_history import finite_or_none
from torchkiln.service.store.states import (
    SWEEP_SETTLED,
    TERMINAL,
    TRIAL_PRUNED,
    JobState,
    StopKind,
    SweepState,
    TrialState,
    stop_kind,
)
from torchkiln.service.store.sweep_specs import MAX_TRIALS, Choice, Range, SweepCreate
from torchkiln.service.store.tables import MAX_ROW_ID, Job, MetricPoint, Sweep


def trial_assignments(body: SweepCreate) -> list[dict[str, Any]]:
    """Every trial's searched values: the grid's product, each with ``trials`` random draws."""
    grid = {k: v for k, v in body.space.items() if isinstance(v, list)}
    drawn = {k: v for k, v in body.space.items() if not isinstance(v, list)}
    points = math.prod(len(v) for v in grid.values()) * (body.trials if drawn else 1)
    if points > MAX_TRIALS:
        raise InvalidInput(f"the space makes {points} trials; at most {MAX_TRIALS}")
    if any(not values for values in grid.values()):
        raise InvalidInput("a grid list in space is empty")
    rng = random.Random(body.seed)
    assignments = []
    for combination in itertools.product(*grid.values()):
        for _ in range(body.trials if drawn else 1):
            values = dict(zip(grid, combination, strict=True))
            values.update({k: _draw(entry, rng) for k, entry in drawn.items()})
            assignments.append({k: values[k] for k in body.space})
    return assignments


def _draw(entry: Range | Choice, rng: random.Random) -> Any:
    if isinstance(entry, Choice):
        return rng.choice(entry.values)
    is_integer = isinstance(entry.low, int) and isinstance(entry.high, int)
    if entry.scale == "log":
        value = math.exp(rng.uniform(math.log(entry.low), math.log(entry.high)))
        return round(value) if is_integer else value
    return rng.randint(entry.low, entry.high) if is_integer else rng.uniform(entry.low, entry.high)


def create_sweep(
    session: Session,
    *,
    body: SweepCreate,
    trial_params: Sequence[dict[str, Any]],
    max_attempts: int,
) -> Sweep:
    """The sweep row and one queued child job per trial (params already validated)."""
    epochs = max(int(p["epochs"]) for p in trial_params)
    rungs = body.halving.rung_epochs(epochs) if body.halving is not None else []
    spec = {**body.model_dump(mode="json"), "rungs": rungs}
    sweep = Sweep(model=body.model, spec=spec, metric=body.metric, mode=str(body.mode))
    session.add(sweep)
    session.flush()
    for params in trial_params:
        job = enqueue_job(
            session=session,
            model=body.model,
            params=params,
            device=body.device,
            priority=body.priority,
            max_attempts=max_attempts,
        )
        job.sweep_id = sweep.id
    return sweep


def get_sweep(session: Session, sweep_id: int) -> Sweep:
    sweep = session.get(Sweep, sweep_id) if 0 < sweep_id <= MAX_ROW_ID else None
    if sweep is None:
        raise SweepNotFound(sweep_id)
    return sweep


def list_sweeps(session: Session, *, limit: int, offset: int) -> tuple[list[Sweep], int]:
    count = session.exec(select(func.count()).select_from(Sweep)).one()
    page = session.exec(select(Sweep).order_by(col(Sweep.id).desc()).offset(offset).limit(limit))
    return list(page.all()), count


@dataclass(frozen=True)
class Trial:
    job: Job
    best_value: float | None
    best_epoch: int | None

    @property
    def status(self) -> TrialState:
        if stop_kind(self.job.stop_reason) == StopKind.PRUNED:
            return TrialState.PRUNED
        return TrialState(self.job.status)


def best_values(
    session: Session, job_ids: Sequence[int], metric: str, mode: str
) -> dict[int, tuple[float, int]]:
    """Each job's best value of ``metric`` and the first epoch that reached it."""
    if not job_ids:
        return {}
    aggregate = func.min if mode == "min" else func.max
    best = (
        select(MetricPoint.job_id, aggregate(MetricPoint.value).label("best"))
        .where(col(MetricPoint.job_id).in_(job_ids), MetricPoint.name == metric)
        .where(col(MetricPoint.value).is_not(None))
        .group_by(col(MetricPoint.job_id))
        .subquery()
    )
    rows = session.exec(
        select(MetricPoint.job_id, best.c.best, func.min(MetricPoint.epoch))
        .join(best, sa.and_(MetricPoint.job_id == best.c.job_id, MetricPoint.value == best.c.best))
        .where(MetricPoint.name == metric)
        .group_by(col(MetricPoint.job_id), best.c.best)
    ).all()
    return {job_id: (value, epoch) for job_id, value, epoch in rows}


def leaderboard(session: Session, sweep: Sweep) -> list[Trial]:
    """The sweep's trials, best first by its metric (direction aware), no value last."""
    children = session.exec(select(Job).where(Job.sweep_id == sweep.id)).all()
    ids = [job.id for job in children if job.id is not None]
    best = best_values(session, ids, sweep.metric, sweep.mode)
    trials = [Trial(job, *best.get(job.id, (None, None))) for job in children]  # type: ignore[arg-type]
    sign = 1 if sweep.mode == "min" else -1

    def order(trial: Trial) -> tuple[bool, float, int]:
        value = trial.best_value
        return (value is None, sign * value if value is not None else 0.0, trial.job.id or 0)

    return sorted(trials, key=order)


def winner(trials: Sequence[Trial]) -> Trial | None:
    """The best trial that trained to its end (pruned ones saw fewer epochs)."""
    return next(
        (t for t in trials if t.status == JobState.SUCCEEDED and t.best_value is not None), None
    )


def settle(session: Session, sweep: Sweep, trials: Sequence[Trial]) -> bool:
    """Once every trial ended, record the winner, and a running sweep as finished (a
    cancelled one stays cancelled); True if it changed."""
    if sweep.status in SWEEP_SETTLED or any(t.job.status not in TERMINAL for t in trials):
        return False
    best = winner(trials)
    sweep.winner_job_id = best.job.id if best else None
    sweep.status = (
        SweepState.CANCELLED if sweep.status == SweepState.CANCELLING else SweepState.FINISHED
    )
    session.add(sweep)
    return True


def cancel_sweep(session: Session, sweep: Sweep) -> list[int]:
    """Cancel every trial not yet ended: queued ones now, running ones at their next batch.

    The sweep reads "cancelling" until the running trials have stopped, then "cancelled";
    trials that had already succeeded keep their results, so a winner can still be promoted.
    """
    if sweep.status in SWEEP_SETTLED:
        raise SweepNotCancellable(sweep.id, sweep.status)  # type: ignore[arg-type]
    pending = session.exec(
        select(Job.id).where(Job.sweep_id == sweep.id, col(Job.status).not_in(TERMINAL))
    ).all()
    for job_id in pending:
        cancel_job(session, job_id)
    sweep.status = SweepState.CANCELLING
    session.add(sweep)
    return list(pending)


@dataclass(frozen=True)
class RungRule:
    """A sweep child's rule at each rung: go on only if in the top 1/eta of trials so far.

    Asynchronous successive halving (ASHA, as Ray Tune's stopping variant): a trial decides
    when it reaches a rung, against the values its siblings recorded at that rung before it.
    No trial waits for the others, so the worker pool never idles; the price is that the
    first trials to arrive always go on.
    """

    engine: Engine
    sweep_id: int
    metric: str
    mode: str
    eta: int
    rungs: frozenset[int]

    def decide(self, job_id: int, epoch: int, value: float) -> str | None:
        """None to go on; otherwise why this trial stops here."""
        others = self.rung_values(job_id, epoch)
        value_or_none = finite_or_none(value)
        recorded = [v for v in [*others, value_or_none] if v is not None]
        if value_or_none is None:
            return (
                f"{TRIAL_PRUNED} by successive halving at epoch {epoch}: "
                f"{self.metric} is not finite"
            )
        # The 1/eta quantile from the good end: a trial worse than it is in the bottom part.
        signed = sorted(v if self.mode == "min" else -v for v in recorded)
        cutoff = _quantile(signed, 1 / self.eta)
        mine = value if self.mode == "min" else -value
        if mine <= cutoff:
            return None
        shown = cutoff if self.mode == "min" else -cutoff
        return (
            f"{TRIAL_PRUNED} by successive halving at epoch {epoch}: {self.metric} {value:.4g} "
            f"is not in the top 1/{self.eta} of {len(recorded)} trials (cutoff {shown:.4g})"
        )

    def rung_values(self, job_id: int, epoch: int) -> list[float | None]:
        with read_session(self.engine) as session:
            rows = session.exec(
                select(MetricPoint.value)
                .join(Job, col(Job.id) == MetricPoint.job_id)
                .where(Job.sweep_id == self.sweep_id, col(Job.id) != job_id)
                .where(MetricPoint.epoch == epoch, MetricPoint.name == self.metric)
            ).all()
        return list(rows)


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default method)."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def halving_for(engine: Engine, job: Job) -> RungRule | None:
    """The halving rule of a sweep child, or None (not a sweep child, or no halving)."""
    if job.sweep_id is None:
        return None
    with read_session(engine) as session:
        sweep = session.get(Sweep, job.sweep_id)
    if sweep is None or not sweep.spec.get("halving") or not sweep.spec.get("rungs"):
        return None
    return RungRule(
        engine=engine,
        sweep_id=job.sweep_id,
        metric=sweep.metric,
        mode=sweep.mode,
        eta=int(sweep.spec["halving"]["eta"]),
        rungs=frozenset(int(r) for r in sweep.spec["rungs"]),
    )
