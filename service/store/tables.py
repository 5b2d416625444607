"""Database tables. Their schema changes only through alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from torchkiln.service.store.states import JobState, SweepState, WorkerState


class UTCDateTime(sa.types.TypeDecorator):
    """Stores naive UTC, returns aware UTC: SQLite keeps no zone, and we compare in SQL."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class _StrEnumText(sa.types.TypeDecorator):
    """A ``StrEnum`` as text in the database, its members in Python."""

    impl = sa.String(16)
    enum: type[StrEnum]

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Any) -> StrEnum | None:
        return None if value is None else self.enum(value)


class JobStateType(_StrEnumText):
    cache_ok = True  # SQLAlchemy reads it from each class's own namespace
    enum = JobState


class WorkerStateType(_StrEnumText):
    cache_ok = True
    enum = WorkerState


class CheckpointKind(StrEnum):
    LAST = "last"
    BEST = "best"


class CheckpointKindType(_StrEnumText):
    cache_ok = True
    enum = CheckpointKind


# Ids are INTEGER columns, 32-bit on PostgreSQL: a larger number names no row, and binding
# it would fail in the driver (an overflow on SQLite, "out of range" on PostgreSQL).
MAX_ROW_ID = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def _timestamp(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class Job(SQLModel, table=True):
    """One training run: its spec, its place in the queue and what happened to it."""

    __tablename__ = "job"
    __table_args__ = (sa.Index("ix_job_queue", "status", "priority", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=64, index=True)
    params: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    device_requested: str = Field(default="auto", max_length=32)
    status: JobState = Field(default=JobState.QUEUED, sa_type=JobStateType, index=True)
    priority: int = Field(default=0)
    attempts: int = Field(default=0)
    max_attempts: int = Field(default=3)
    epoch: int = Field(default=0)
    epochs: int = Field(default=0)
    seed: int = Field(default=0)
    error: str | None = Field(default=None, sa_type=sa.Text)
    device: str | None = Field(default=None, max_length=32)
    torch_version: str | None = Field(default=None, max_length=64)
    worker_host: str | None = Field(default=None, max_length=255)
    worker_pid: int | None = Field(default=None)
    is_cancel_requested: bool = Field(default=False)
    cancel_requested_at: datetime | None = _timestamp()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    started_at: datetime | None = _timestamp()
    finished_at: datetime | None = _timestamp()
    heartbeat_at: datetime | None = _timestamp()
    lease_expires_at: datetime | None = _timestamp()
    best_epoch: int | None = Field(default=None)
    best_value: float | None = Field(default=None)
    # Why a succeeded job ended before its last epoch (early stopping, sweep halving).
    stop_reason: str | None = Field(default=None, sa_type=sa.Text)
    sweep_id: int | None = Field(default=None, foreign_key="sweep.id", index=True)
    # A person's labels: what the job is for; PATCH /jobs/{id} edits them at any state.
    name: str | None = Field(default=None, max_length=128)
    tags: list[str] = Field(
        default_factory=list,
        sa_type=sa.JSON,
        nullable=False,
        sa_column_kwargs={"server_default": sa.text("'[]'")},
    )
    note: str | None = Field(default=None, sa_type=sa.Text)

    # Opt-in rule for moving an alias when the job succeeds (service/store/promotion.py).
    promote: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON, nullable=True)
    # A distributed run's world: world_size, backend, ranks (host, device, samples/s).
    distributed: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON, nullable=True)
    # A multi-host job's gang (service/store/gangs.py): nodes it needs, node slots taken this
    # attempt, and the rendezvous endpoint (host:port) its first node published.
    gang_nodes: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    gang_joined: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    gang_endpoint: str | None = Field(default=None, max_length=255)


class MetricPoint(SQLModel, table=True):
    """One value of one named metric at one epoch. ``value`` is NULL for NaN/inf."""

    __tablename__ = "metric_point"
    __table_args__ = (sa.Index("ix_metric_point_job_name_id", "job_id", "name", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", ondelete="CASCADE", index=True)
    epoch: int
    name: str = Field(max_length=64)
    value: float | None = Field(default=None)


class Checkpoint(SQLModel, table=True):
    """A checkpoint file on disk; ``path`` is relative to the artifacts directory."""

    __tablename__ = "checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", ondelete="CASCADE", index=True)
    epoch: int
    path: str = Field(max_length=512)
    sha256: str = Field(max_length=64)
    size_bytes: int
    is_final: bool = Field(default=False)
    # "last" files resume a run; "best" files (the watched metric's best epoch) serve it.
    kind: CheckpointKind = Field(
        default=CheckpointKind.LAST,
        sa_type=CheckpointKindType,
        sa_column_kwargs={"server_default": CheckpointKind.LAST.value},
    )
    # The watched metric at this epoch (best checkpoints): a resume restores the best so far.
    metric_value: float | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class ModelAlias(SQLModel, table=True):
    """A name (``champion``) for one succeeded job of a model; moved by PUT, read per request."""

    __tablename__ = "model_alias"
    __table_args__ = (sa.UniqueConstraint("model", "alias", name="uq_model_alias_model_alias"),)

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=64)
    alias: str = Field(max_length=64)
    job_id: int = Field(foreign_key="job.id", index=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class WorkerProcess(SQLModel, table=True):
    """One worker process on some host; its heartbeat says it is alive, even when idle."""

    __tablename__ = "worker"

    id: int | None = Field(default=None, primary_key=True)
    host: str = Field(max_length=255)
    pid: int
    device: str = Field(max_length=32)
    status: WorkerState = Field(default=WorkerState.IDLE, sa_type=WorkerStateType)
    job_id: int | None = Field(default=None)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    heartbeat_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True
    )


class Sweep(SQLModel, table=True):
    """A hyper-parameter search: its spec, and the child jobs (``Job.sweep_id``) it queued."""

    __tablename__ = "sweep"

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=64)
    spec: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    metric: str = Field(max_length=64)
    mode: str = Field(max_length=8)
    status: str = Field(default=SweepState.RUNNING, max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    winner_job_id: int | None = Field(default=None)


class DatasetKind(StrEnum):
    TABLE = "table"
    IMAGES = "images"


class Dataset(SQLModel, table=True):
    """An uploaded dataset; its files are ``<datasets_dir>/<id>/`` (schema.json and the data)."""

    __tablename__ = "dataset"
    # AUTOINCREMENT: a deleted dataset's id is never reused, so a job's lineage names one upload.
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    kind: str = Field(max_length=16)
    format: str = Field(max_length=16)
    sha256: str = Field(max_length=64, unique=True)
    size_bytes: int = Field(sa_type=sa.BigInteger)
    data_schema: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
