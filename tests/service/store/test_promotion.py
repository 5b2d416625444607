"""The production alias: set by a model's first version, moved only by rules, on a real database."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from tests.utils.store_jobs import claim
from torchkiln.service.store import aliases, jobs, progress
from torchkiln.service.store.db import ALEMBIC_DIR, read_session, upgrade_database, write_session
from torchkiln.service.store.promotion import (
    PRODUCTION,
    NoProductionVersion,
    PromoteRule,
    finish_and_promote,
    production_job_id,
)


def succeed(
    engine: Engine, val_loss: float, promote: dict[str, Any] | None = None, model: str = "linear"
) -> tuple[int, tuple[str, ...]]:
    """Run one job to success with a final val_loss; its id and the aliases it moved."""
    with write_session(engine) as session:
        job = jobs.enqueue_job(
            session=session,
            model=model,
            params={"epochs": 1, "seed": 0},
            device="auto",
            priority=0,
            max_attempts=3,
            promote=promote,
        )
        job_id = job.id
    claimed = claim(engine)
    assert claimed is not None and claimed.id == job_id
    lease = jobs.Lease(job_id, claimed.attempts)  # type: ignore[arg-type]
    assert progress.record_epochs(engine, lease, [(1, {"val_loss": val_loss})])
    finished = finish_and_promote(engine, lease, stop_reason=None)
    assert finished.is_owner
    return job_id, finished.moved_aliases  # type: ignore[return-value]


def production(engine: Engine, model: str = "linear") -> int | None:
    with read_session(engine) as session:
        return production_job_id(session, [model])


def test_the_first_version_becomes_production_and_a_second_does_not(any_engine: Engine) -> None:
    assert production(any_engine) is None
    first, moved = succeed(any_engine, 0.5)
    assert moved == (PRODUCTION,) and production(any_engine) == first
    second, moved = succeed(any_engine, 0.1)
    assert moved == () and production(any_engine) == first
    assert second != first


def test_a_rule_promotes_only_when_its_metric_is_better(any_engine: Engine) -> None:
    rule = {"alias": PRODUCTION, "if_better": "val_loss"}
    first, _ = succeed(any_engine, 0.5)
    _, moved = succeed(any_engine, 0.7, rule)
    assert moved == () and production(any_engine) == first
    better, moved = succeed(any_engine, 0.2, rule)
    assert moved == (PRODUCTION,) and production(any_engine) == better
    unconditional, moved = succeed(any_engine, 9.0, {"alias": "canary"})
    with read_session(any_engine) as session:
        assert aliases.aliased_job_id(session, ["linear"], "canary") == unconditional
    assert moved == ("canary",) and production(any_engine) == better


def test_versions_without_a_production_alias_refuse_to_guess(any_engine: Engine) -> None:
    succeed(any_engine, 0.5)
    with write_session(any_engine) as session:
        aliases.delete_alias(session, model="linear", alias=PRODUCTION)
    with pytest.raises(NoProductionVersion, match="PUT /models/linear/aliases/production"):
        production(any_engine)
    _, moved = succeed(any_engine, 0.1)
    assert moved == ()  # only a model's very first version takes production by itself


def test_mode_defaults_from_the_metric_name() -> None:
    assert PromoteRule(if_better="val_accuracy").mode == "max"
    assert PromoteRule(if_better="val_loss").mode == "min"
    with pytest.raises(ValueError, match="set mode"):
        PromoteRule(if_better="w")


def test_the_upgrade_points_production_at_the_version_that_was_answering(
    any_engine: Engine,
) -> None:
    with any_engine.begin() as connection:
        for table in ("model_alias", "metric_point", "checkpoint", "job", "sweep"):
            connection.execute(sa.text(f"DELETE FROM {table}"))
        config = Config()
        config.set_main_option("script_location", str(ALEMBIC_DIR))
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
        for job_id, finished in ((1, "2026-01-01"), (2, "2026-02-01")):
            connection.execute(
                sa.text(
                    "INSERT INTO job (id, model, params, device_requested, status, priority,"
                    " attempts, max_attempts, epoch, epochs, seed, is_cancel_requested,"
                    " created_at, finished_at) VALUES (:id, 'linear', '{}', 'auto',"
                    " 'succeeded', 0, 1, 3, 1, 1, 0, :false, :at, :at)"
                ),
                {"id": job_id, "at": finished, "false": False},
            )
    upgrade_database(any_engine)
    assert production(any_engine) == 2
