"""Versions and aliases of a model, disk usage, deleting a job and exporting its weights."""

from __future__ import annotations

import shutil
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status
from sqlalchemy.engine import Engine

from torchkiln.models import REGISTRY
from torchkiln.service.api.deps import EngineDep, ReadSessionDep, SettingsDep, StoreDep
from torchkiln.service.api.schemas import (
    AliasesPublic,
    AliasPublic,
    AliasSet,
    ErrorPublic,
    UsagePublic,
    VersionPublic,
    VersionsPublic,
)
from torchkiln.service.api.serving.export import export_weights
from torchkiln.service.api.serving.graph_export import export_graph
from torchkiln.service.store import aliases, versions
from torchkiln.service.store.artifact_store import ArtifactStore
from torchkiln.service.store.cache_markers import announce_success, touch_aliases, withdraw_success
from torchkiln.service.store.checkpoint_files import job_dir, job_prefix
from torchkiln.service.store.db import read_session, write_session
from torchkiln.service.store.errors import UnknownModel
from torchkiln.service.store.patterns import ALIAS_PATTERN
from torchkiln.service.store.tables import ModelAlias

router = APIRouter(tags=["versions"])

BINARY = {"type": "string", "format": "binary"}
AliasPath = Annotated[str, Path(pattern=ALIAS_PATTERN, description="e.g. champion")]


def known_model(model: str) -> str:
    if model not in REGISTRY:
        raise UnknownModel(model, list(REGISTRY))
    return model


def alias_public(row: ModelAlias) -> AliasPublic:
    return AliasPublic(
        model=row.model, alias=row.alias, job_id=row.job_id, updated_at=row.updated_at
    )


@router.get("/models/{model}/versions", response_model=VersionsPublic)
def list_versions(model: str, session: ReadSessionDep) -> VersionsPublic:
    """Succeeded jobs of the model, newest first, with final metrics, best epoch, aliases."""
    rows = versions.version_rows(session, known_model(model))
    total = versions.usage_by_model(session).get(model, 0)
    data = [VersionPublic(**row) for row in rows]
    return VersionsPublic(model=model, data=data, count=len(data), disk_bytes=total)


@router.get("/models/{model}/aliases", response_model=AliasesPublic)
def list_aliases(model: str, session: ReadSessionDep) -> AliasesPublic:
    rows = aliases.list_aliases(session, known_model(model))
    return AliasesPublic(data=[alias_public(r) for r in rows], count=len(rows))


@router.put("/models/{model}/aliases/{alias}", response_model=AliasPublic)
def set_alias(
    model: str, alias: AliasPath, body: AliasSet, engine: EngineDep, store: StoreDep
) -> AliasPublic:
    """Point the alias at a succeeded job; the next prediction with ?alias= uses it."""
    with write_session(engine) as session:
        row = aliases.set_alias(session, model=known_model(model), alias=alias, job_id=body.job_id)
        public = alias_public(row)
    # After the commit, so a cache that sees the new marker also sees the new row.
    touch_aliases(store, model)
    return public


@router.delete("/models/{model}/aliases/{alias}", status_code=status.HTTP_204_NO_CONTENT)
def delete_alias(model: str, alias: AliasPath, engine: EngineDep, store: StoreDep) -> Response:
    with write_session(engine) as session:
        aliases.delete_alias(session, model=known_model(model), alias=alias)
    touch_aliases(store, model)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/usage", response_model=UsagePublic)
def read_usage(session: ReadSessionDep, settings: SettingsDep) -> UsagePublic:
    """Bytes of checkpoints kept on disk, in total and per model."""
    by_model = versions.usage_by_model(session)
    temp = versions.temp_usage_by_model(session, settings.artifacts_dir)
    for model, size in temp.items():
        by_model[model] = by_model.get(model, 0) + size
    return UsagePublic(
        disk_bytes=sum(by_model.values()), models=by_model, temp_bytes=sum(temp.values())
    )


@router.delete("/jobs/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_job(job_id: int, engine: EngineDep, settings: SettingsDep, store: StoreDep) -> Response:
    """Delete a finished job: its checkpoints folder, metric history and record.

    409 while it is queued or running (cancel it first) or while an alias names it.
    """
    with write_session(engine) as session:
        model = versions.delete_job(session, job_id).model
    store.delete_prefix(job_prefix(job_id))
    # This host's own copy (TensorBoard files, and the log where artifacts are remote).
    shutil.rmtree(job_dir(settings.artifacts_dir, job_id), ignore_errors=True)
    reannounce(engine, store, model)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def reannounce(engine: Engine, store: ArtifactStore, model: str) -> None:
    """Rewrite the model's success marker, so caches holding the deleted job look again."""
    with read_session(engine) as session:
        newest = versions.succeeded_jobs(session, model)
    if newest and newest[0].id is not None:
        announce_success(store, model, newest[0].id)
    else:
        withdraw_success(store, model)


@router.get(
    "/jobs/{job_id}/checkpoint",
    response_class=Response,
    responses={
        200: {
            "content": {"application/octet-stream": {"schema": BINARY}},
            "description": "A safetensors file (Content-Disposition names it).",
        }
    },
)
def download_checkpoint(job_id: int, session: ReadSessionDep, store: StoreDep) -> Response:
    """The serving weights (best, else last) as safetensors; metadata has model and options."""
    filename, data = export_weights(session, store, job_id)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


ExportFormat = Literal["onnx", "torch_export", "safetensors"]


@router.get(
    "/jobs/{job_id}/export",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/onnx": {"schema": BINARY},
                "application/octet-stream": {"schema": BINARY},
            },
            "description": "The file (Content-Disposition names it): ONNX, .pt2 or safetensors.",
        },
        501: {
            "model": ErrorPublic,
            "description": "The format's optional packages are not installed.",
        },
    },
)
def export_job(
    job_id: int,
    session: ReadSessionDep,
    store: StoreDep,
    export_format: Annotated[ExportFormat, Query(alias="format")] = "onnx",
) -> Response:
    """The serving weights as an ONNX graph, a torch.export archive (.pt2) or safetensors.

    The graphs take the model's tensor inputs (GET /v2/models/{name}) with preprocessing
    inside; every format carries a model card (inputs, classes, metrics, lineage). A sync
    route: FastAPI runs it in a worker thread, since an export takes seconds.
    """
    if export_format == "safetensors":
        filename, data = export_weights(session, store, job_id)
        media_type = "application/octet-stream"
    else:
        exported = export_graph(session, store, job_id, export_format)
        filename, data, media_type = exported.filename, exported.data, exported.media_type
    return Response(
        data,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
