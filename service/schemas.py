"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.states import JobState

DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d{1,2})?)$"


class JobCreate(BaseModel):
    """A job spec: which model, its options (validated against the model's schema), where."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="A model name from GET /models.", examples=["logistic_hours"])
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The model's options; see options_schema in GET /models.",
        examples=[{"epochs": 1000, "optimizer": "sgd", "lr": 0.05}],
    )
    device: str = Field(
        "auto", pattern=DEVICE_PATTERN, description="auto (cuda, then mps, then cpu), or one."
    )
    priority: int = Field(0, ge=-1000, le=1000, description="Higher runs first; ties: oldest.")


class WorkerPublic(BaseModel):
    host: str
    pid: int


class JobPublic(BaseModel):
    id: int
    model: str
    status: JobState
    params: dict[str, Any]
    device_requested: str
    device: str | None = Field(description="The device it actually ran on.")
    priority: int
    queue_position: int | None = Field(description="1 = next to run; null unless queued.")
    epoch: int = Field(description="Epochs finished.")
    epochs: int = Field(description="Epochs asked for.")
    attempts: int
    max_attempts: int
    seed: int
    torch_version: str | None
    error: str | None
    worker: WorkerPublic | None
    is_cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    duration_s: float | None = Field(description="Wall time from start to finish (or now).")


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int


class MetricPointPublic(BaseModel):
    id: int = Field(description="Cursor: pass the last one seen as ?since= to poll for more.")
    epoch: int
    name: str
    value: float | None = Field(description="null where the value was NaN or infinite.")


class MetricsPublic(BaseModel):
    job_id: int
    points: list[MetricPointPublic]
    next_since: int | None = Field(description="Cursor for the next poll.")
    is_truncated: bool = Field(description="True if `limit` cut the page short.")
    is_downsampled: bool


class ModelPublic(BaseModel):
    name: str
    summary: str
    task: str
    tags: list[str]
    defaults: dict[str, Any]
    options_schema: dict[str, Any]
    inputs_schema: dict[str, Any]
    accepts_upload: bool = Field(description="POST /predict/{name} also takes image files.")


class ModelsPublic(BaseModel):
    data: list[ModelPublic]
    count: int


class HealthPublic(BaseModel):
    status: str
