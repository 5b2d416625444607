"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from torchkiln.models.common.registry import ModelSpec, Task
from torchkiln.service.store.patterns import DEVICE_PATTERN, TAG_PATTERN
from torchkiln.service.store.promotion import PromoteRule
from torchkiln.service.store.states import JobState, StopKind, WorkerState
from torchkiln.service.store.whole_numbers import WholeNumber

JobName = Annotated[str, Field(min_length=1, max_length=128, examples=["baseline"])]
JobTags = Annotated[
    list[Annotated[str, Field(pattern=TAG_PATTERN)]],
    Field(
        max_length=16, description="Short words to filter by (GET /jobs?tag=).", examples=[["a"]]
    ),
]
JobNote = Annotated[str, Field(max_length=10_000, description="Free text.")]


class JobCreate(BaseModel):
    """A job spec: which model, its options (validated against the model's schema), where."""

    # Strict: the schema says integer, so `"priority": false` or `"7"` is a 422, not a 0 or 7.
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(description="A model name from GET /models.", examples=["logistic_hours"])
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The model's options; see options_schema in GET /models.",
        examples=[{"epochs": 1000, "optimizer": "sgd", "lr": 0.05}],
    )
    device: str = Field(
        "auto", pattern=DEVICE_PATTERN, description="auto (cuda, then mps, then cpu), or one."
    )
    priority: WholeNumber = Field(
        0, ge=-1000, le=1000, description="Higher runs first; ties: oldest."
    )
    name: JobName | None = None
    tags: JobTags = Field(default_factory=list)
    note: JobNote | None = None
    promote: PromoteRule | None = Field(
        None,
        description="On success, move this alias to the job (only if if_better improves). "
        "Without it a new version serves only once an alias is pointed at it.",
        examples=[{"alias": "production", "if_better": "val_loss"}],
    )


class JobUpdate(BaseModel):
    """PATCH /jobs/{id}: the labels given are replaced (null clears a name or note)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: JobName | None = None
    tags: JobTags | None = None
    note: JobNote | None = None


class WorkerPublic(BaseModel):
    host: str
    pid: int


class JobLinks(BaseModel):
    """Related resources of a job, as paths on this server."""

    summary: str | None = Field(
        None, description="GET: its network's summary (models described as a layer list)."
    )


class RankPublic(BaseModel):
    rank: int
    host: str
    pid: int | None = Field(None, description="Its process id on that host.")
    device: str
    samples_per_s: float | None = Field(None, description="Its training samples/s, last epoch.")


class DistributedPublic(BaseModel):
    """The processes of a distributed run (params.distributed), as its rank 0 reported them."""

    world_size: int
    backend: str = Field(description="gloo (CPU) or nccl (CUDA).")
    ranks: list[RankPublic]


class JobPublic(BaseModel):
    id: int
    model: str
    status: JobState
    params: dict[str, Any]
    device_requested: str
    device: str | None = Field(description="The device it actually ran on.")
    priority: int
    queue_position: int | None = Field(description="1 = next to run; null unless queued.")
    queue_estimate_s: float | None = Field(
        None,
        description="Estimated seconds until it starts: the epochs left ahead of it, timed by "
        "recent epochs of their models, over the live workers. Null unless queued, or when a "
        "job ahead is of a model that has never run.",
    )
    epoch: int = Field(description="Epochs finished.")
    epochs: int = Field(description="Epochs asked for.")
    attempts: int
    max_attempts: int
    seed: int
    torch_version: str | None
    error: str | None
    best_epoch: int | None = Field(None, description="Epoch with the best watched metric.")
    best_value: float | None = Field(None, description="The watched metric at best_epoch.")
    disk_bytes: int = Field(0, description="Bytes of checkpoints this job keeps on disk.")
    stop_reason: str | None = Field(None, description="Why it ended before its last epoch.")
    stop_kind: StopKind | None = Field(None, description="The kind of stop_reason.")
    sweep_id: int | None = Field(None, description="The sweep that queued it, if any.")
    promote: dict[str, Any] | None = Field(None, description="Its promotion rule, if any.")
    worker: WorkerPublic | None
    is_cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    duration_s: float | None = Field(description="Wall time from start to finish (or now).")
    name: str | None = None
    tags: list[str] = Field(default_factory=list)
    note: str | None = None
    waiting_reason: str | None = Field(
        None, description="Why a queued job cannot start (no live worker can run its device)."
    )
    links: JobLinks = Field(default_factory=JobLinks)
    distributed: DistributedPublic | None = Field(
        None, description="Its processes, once a distributed run has started."
    )


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
    task: Task
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


class WorkerProcessPublic(BaseModel):
    id: int
    host: str
    pid: int
    device: str
    status: WorkerState
    job_id: int | None = Field(description="The job it was training at its last heartbeat.")
    started_at: datetime
    heartbeat_at: datetime
    is_live: bool = Field(description="Not stopped and heard from within two leases.")


class WorkersPublic(BaseModel):
    data: list[WorkerProcessPublic]
    count: int
    live: int = Field(description="How many of all workers (not just this page) are live.")


class ErrorPublic(BaseModel):
    """An error body: what went wrong, in words."""

    detail: str


class FieldErrorPublic(BaseModel):
    """One bad field of an invalid request."""

    type: str = Field(examples=["missing"])
    loc: list[str | int] = Field(
        description="Where: body, query, path or header, then the field's path.",
        examples=[["body", "params", "epochs"]],
    )
    msg: str
    input: str | int | float | bool | None = Field(
        None, description="The value given, when it is a plain value (strings cut to 200)."
    )


class ValidationErrorPublic(BaseModel):
    """A 422: each bad field of the request, or, for a rule about several, a message."""

    detail: list[FieldErrorPublic] | str


# Documented on every protected route: what the API key, the body limit, the domain errors
# and a busy database can answer besides the route's own success.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ValidationErrorPublic if status == 422 else ErrorPublic, "description": text}
    for status, text in {
        400: "The body could not be parsed (not UTF-8 JSON, or a broken multipart form).",
        401: "Missing or wrong API key.",
        404: "No such job or model.",
        409: "The job is not in a state that allows this.",
        413: "Request body too large.",
        415: "A body in a format this endpoint does not read.",
        422: "Invalid request; `detail` names each bad field.",
        503: "The database is busy; retry after `Retry-After` seconds.",
    }.items()
}


class JobLogsPublic(BaseModel):
    job_id: int
    lines: list[dict[str, Any]] = Field(description="time, level, logger, message, job_id, pid")
    next_since: int = Field(description="Cursor for the next poll: lines read so far.")


class AliasSet(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    job_id: WholeNumber = Field(ge=1, le=2**31 - 1, description="A succeeded job of this model.")


class AliasPublic(BaseModel):
    model: str
    alias: str
    job_id: int
    updated_at: datetime


class AliasesPublic(BaseModel):
    data: list[AliasPublic]
    count: int


class VersionPublic(BaseModel):
    job_id: int
    params: dict[str, Any]
    finished_at: datetime | None
    epochs: int
    metrics: dict[str, float | None] = Field(description="The last value of each metric.")
    best_epoch: int | None
    best_value: float | None
    init_from: int | None = Field(None, description="The version its weights started from.")
    sweep_id: int | None = Field(None, description="The sweep whose trial it was, if any.")
    aliases: list[str]
    disk_bytes: int


class VersionsPublic(BaseModel):
    model: str
    data: list[VersionPublic]
    count: int
    disk_bytes: int = Field(description="Checkpoint bytes of every job of this model.")


class UsagePublic(BaseModel):
    disk_bytes: int = Field(description="Checkpoint bytes of every job, temp_bytes included.")
    models: dict[str, int] = Field(description="Checkpoint bytes per model, temp_bytes included.")
    temp_bytes: int = Field(
        0, description="Half-written checkpoints a killed write left, until the job resumes."
    )


class ComparedJobPublic(BaseModel):
    job_id: int
    model: str
    status: JobState
    params: dict[str, Any]
    sweep_id: int | None
    series: dict[str, list[tuple[int, float | None]]] = Field(
        description="Per metric, [epoch, value] pairs by epoch; null where NaN or infinite."
    )


class ComparisonPublic(BaseModel):
    names: list[str] = Field(description="The metrics asked for, else every one found.")
    data: list[ComparedJobPublic] = Field(description="One entry per job, in the order asked.")


class PredictionPublic(BaseModel):
    """Which job answered and the alias that picked it; the model's answer follows."""

    job_id: int = Field(description="The job (version) whose checkpoint answered.")
    alias: str | None = Field(
        description="The alias that picked the job: production without job_id or alias; "
        "null for job_id alone."
    )
    model: str


def prediction_schema(path_name: str, specs: Sequence[ModelSpec]) -> Any:
    """What ``POST /predict/{path_name}`` answers: PredictionPublic's fields, then the answer
    of the model that answered (one class per shape the models can give).

    Documentation only: the routes return orjson bytes, never validated against it.
    """
    names = tuple(spec.name for spec in specs)
    shapes = list(dict.fromkeys(shape for spec in specs for shape in spec.answer_models()))
    stem = "".join(part.capitalize() for part in path_name.split("_"))
    classes = [
        create_model(
            f"{stem}{shape.__name__.removesuffix('Answer') if len(shapes) > 1 else ''}Prediction",
            __base__=PredictionPublic,
            __doc__=shape.__doc__,
            model=(Literal[names], Field(description="The model that answered.")),
            **{name: (field.annotation, field) for name, field in shape.model_fields.items()},
        )
        for shape in shapes
    ]
    return functools.reduce(operator.or_, classes)


def prediction_responses(path_name: str, specs: Sequence[ModelSpec]) -> dict[int | str, Any]:
    """The ``responses`` of a prediction route: its answer (``prediction_schema``)."""
    model = prediction_schema(path_name, specs)
    return {200: {"model": model, "description": "The prediction and the job that made it."}}


class DatasetPublic(BaseModel):
    """An uploaded dataset; ``schema`` is its schema.json (columns, or classes and splits)."""

    model_config = ConfigDict(populate_by_name=True)

    id: int
    name: str
    kind: Literal["table", "images"]
    format: Literal["csv", "tsv", "parquet", "zip", "tar"]
    sha256: str
    bytes: int = Field(description="The upload's size as sent.")
    created_at: datetime
    # Aliased: a field named ``schema`` would shadow BaseModel's deprecated method.
    dataset_schema: dict[str, Any] = Field(
        alias="schema",
        description="Tables: rows and columns (name, type, missing, distinct, examples, "
        "categories); distinct is exact up to 1000, past that it is 1001 with "
        "distinct_capped true (at least that many); images: images, classes, splits, sizes, "
        "modes.",
    )


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int


class DatasetDetailPublic(DatasetPublic):
    preview: list[dict[str, Any]] = Field(
        description="Tables: the first 20 rows; images: up to 8 {class, path} samples."
    )
