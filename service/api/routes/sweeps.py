"""Sweep routes: start a search, list sweeps, read a leaderboard, cancel, promote the winner."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.engine import Engine

from torchkiln.service.api.deps import EngineDep, ReadSessionDep, SettingsDep, StoreDep
from torchkiln.service.api.routes.jobs import validate_params
from torchkiln.service.api.schemas import ErrorPublic
from torchkiln.service.store import aliases, datasets, sweeps
from torchkiln.service.store.cache_markers import touch_aliases
from torchkiln.service.store.db import read_session, write_session
from torchkiln.service.store.errors import NoSweepWinner
from torchkiln.service.store.init_sources import require_init_sources
from torchkiln.service.store.states import SWEEP_SETTLED, stop_kind
from torchkiln.service.store.sweep_specs import (
    PromoteBody,
    SweepBoard,
    SweepCreate,
    SweepPublic,
    SweepsPublic,
    TrialPublic,
)
from torchkiln.service.store.tables import MAX_ROW_ID, Sweep

router = APIRouter(prefix="/sweeps", tags=["sweeps"])


def sweep_public(sweep: Sweep, trials: list[sweeps.Trial]) -> SweepPublic:
    finished = sum(t.job.status.is_finalized() for t in trials)
    return SweepPublic(
        **sweep.model_dump(exclude={"spec"}),
        spec=sweep.spec,
        trials=len(trials),
        finished=finished,
        rungs=sweep.spec.get("rungs", []),
    )


def trial_public(rank: int, trial: sweeps.Trial, searched: list[str]) -> TrialPublic:
    job = trial.job
    return TrialPublic(
        rank=rank,
        job_id=job.id,  # type: ignore[arg-type]
        params={k: job.params.get(k) for k in searched},
        status=trial.status,
        epoch=job.epoch,
        epochs=job.epochs,
        best_value=trial.best_value,
        best_epoch=trial.best_epoch,
        stop_reason=job.stop_reason,
        stop_kind=stop_kind(job.stop_reason),
    )


def trial_params(body: SweepCreate, engine: Engine) -> list[dict]:
    """Each trial's full params, validated like a job's; 422 names the trial that fails."""
    validated = []
    with read_session(engine) as session:
        lookup = datasets.lookup_in(session)
        for index, values in enumerate(sweeps.trial_assignments(body)):
            try:
                validated.append(validate_params(body.model, {**body.params, **values}, lookup))
            except RequestValidationError as error:
                raise RequestValidationError(
                    [{**e, "msg": f"trial {index} {values}: {e['msg']}"} for e in error.errors()]
                ) from None
    return validated


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SweepPublic)
def create_sweep(body: SweepCreate, engine: EngineDep, settings: SettingsDep) -> SweepPublic:
    """Queue one job per trial, below interactive jobs; the worker pool runs them."""
    params = trial_params(body, engine)
    with write_session(engine) as session:
        require_init_sources(session, model=body.model, params=params)
        sweep = sweeps.create_sweep(
            session, body=body, trial_params=params, max_attempts=settings.max_attempts
        )
        public = sweep_public(sweep, sweeps.leaderboard(session, sweep))
    return public


@router.get("", response_model=SweepsPublic)
def list_sweeps(
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
) -> SweepsPublic:
    """Sweeps newest first, with how many of their trials have ended."""
    page, count = sweeps.list_sweeps(session, limit=limit, offset=offset)
    data = [sweep_public(s, sweeps.leaderboard(session, s)) for s in page]
    return SweepsPublic(data=data, count=count)


@router.get("/{sweep_id}", response_model=SweepBoard)
def read_sweep(sweep_id: int, engine: EngineDep) -> SweepBoard:
    """The leaderboard: trials best first by the sweep's metric, trials without a value last."""
    with read_session(engine) as session:
        sweep = sweeps.get_sweep(session, sweep_id)
        trials = sweeps.leaderboard(session, sweep)
    if sweep.status not in SWEEP_SETTLED and all(t.job.status.is_finalized() for t in trials):
        # Settled lazily, by the first read after the last trial ended.
        with write_session(engine) as session:
            sweep = sweeps.get_sweep(session, sweep_id)
            sweeps.settle(session, sweep, sweeps.leaderboard(session, sweep))
    searched = list(sweep.spec.get("space", {}))
    board = [trial_public(rank, t, searched) for rank, t in enumerate(trials, start=1)]
    return SweepBoard(**sweep_public(sweep, trials).model_dump(), leaderboard=board)


@router.post(
    "/{sweep_id}/cancel",
    response_model=SweepPublic,
    responses={409: {"model": ErrorPublic, "description": "The sweep has already ended."}},
)
def cancel_sweep(sweep_id: int, engine: EngineDep) -> SweepPublic:
    """Cancel the trials still queued (now) or running (at their next batch)."""
    with write_session(engine) as session:
        sweep = sweeps.get_sweep(session, sweep_id)
        sweeps.cancel_sweep(session, sweep)
        trials = sweeps.leaderboard(session, sweep)
        sweeps.settle(session, sweep, trials)
        public = sweep_public(sweep, trials)
    return public


@router.post("/{sweep_id}/promote", response_model=SweepPublic)
def promote_winner(
    sweep_id: int, body: PromoteBody, engine: EngineDep, store: StoreDep
) -> SweepPublic:
    """Point a model alias (say ``champion``) at the sweep's best finished trial."""
    with write_session(engine) as session:
        sweep = sweeps.get_sweep(session, sweep_id)
        trials = sweeps.leaderboard(session, sweep)
        best = sweeps.winner(trials)
        if best is None:
            raise NoSweepWinner(f"sweep {sweep_id} has no succeeded trial with {sweep.metric} yet")
        aliases.set_alias(session, model=sweep.model, alias=body.alias, job_id=best.job.id)  # type: ignore[arg-type]
        sweep.winner_job_id = best.job.id
        session.add(sweep)
        public = sweep_public(sweep, trials)
    touch_aliases(store, sweep.model)
    return public
