"""Dataset routes: upload (streamed to disk), list, read with a preview, delete."""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from torchkiln.service.api.dataset_form import DatasetForm, form_boundary
from torchkiln.service.api.deps import EngineDep, ReadSessionDep, SettingsDep, StoreDep
from torchkiln.service.api.schemas import (
    DatasetDetailPublic,
    DatasetPublic,
    DatasetsPublic,
    ErrorPublic,
)
from torchkiln.service.store import datasets
from torchkiln.service.store.artifact_store import ArtifactStore
from torchkiln.service.store.dataset_archives import ArchiveLimits, sample_images
from torchkiln.service.store.dataset_objects import (
    fetch_dataset,
    publish_dataset,
    remove_dataset_objects,
)
from torchkiln.service.store.dataset_tables import TABLE_FILE, preview_rows
from torchkiln.service.store.dataset_upload import UploadSink
from torchkiln.service.store.errors import DatasetNotStored
from torchkiln.service.store.settings import Settings
from torchkiln.service.store.tables import MAX_ROW_ID, Dataset

router = APIRouter(prefix="/datasets", tags=["datasets"])

# Body chunks are handed to the parser thread in batches of about this size: one thread
# hop per 64 KiB chunk would cost more than the parsing.
FEED_BYTES = 1 << 20
# An archive bomb's other shape: millions of tiny members.
MAX_ARCHIVE_MEMBERS = 200_000
MAX_NAME = 128

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "CSV or TSV (optionally gzipped), Parquet, or a ZIP or "
                        "tar(.gz) of <class>/<image> folders (optionally under train/val/test).",
                    },
                    "name": {"type": "string", "maxLength": MAX_NAME},
                    "columns": {
                        "type": "string",
                        "description": "For a CSV/TSV without a header row: its column names,"
                        " comma-separated (Glucose,Age,Outcome); the first row is then data.",
                    },
                },
                "required": ["file"],
            }
        }
    },
}


def dataset_public(dataset: Dataset) -> DatasetPublic:
    return DatasetPublic(
        id=dataset.id,  # type: ignore[arg-type]
        name=dataset.name,
        kind=dataset.kind,  # type: ignore[arg-type]
        format=dataset.format,  # type: ignore[arg-type]
        sha256=dataset.sha256,
        bytes=dataset.size_bytes,
        created_at=dataset.created_at,
        dataset_schema=dataset.data_schema,
    )


def archive_limits(settings: Settings) -> ArchiveLimits:
    return ArchiveLimits(
        max_members=MAX_ARCHIVE_MEMBERS,
        max_bytes=settings.max_decoded_bytes,
        max_pixels=settings.max_image_pixels,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetPublic,
    openapi_extra={"requestBody": UPLOAD_BODY},
    responses={
        200: {"model": DatasetPublic, "description": "The same bytes were uploaded before."},
        503: {
            "model": ErrorPublic,
            "description": "The database is busy, or the object store (TORCHKILN_ARTIFACTS_URL)"
            " refused the dataset's copy; nothing was kept.",
        },
    },
)
async def upload_dataset(
    request: Request,
    response: Response,
    engine: EngineDep,
    settings: SettingsDep,
    store: StoreDep,
) -> DatasetPublic:
    """Store a table or an image-folder archive; answers its schema. The same bytes again
    answer 200 with the dataset they made."""
    boundary = form_boundary(request.headers.get("content-type", ""))
    sink = await run_in_threadpool(UploadSink, settings.datasets_dir, settings.max_dataset_bytes)
    try:
        form = DatasetForm(boundary, sink)
        pending: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            pending.append(chunk)
            size += len(chunk)
            if size >= FEED_BYTES:
                await run_in_threadpool(form.write, b"".join(pending))
                pending, size = [], 0
        await run_in_threadpool(form.write, b"".join(pending))
        filename, name = form.finish()
        columns = form.column_names()
        sha256 = await run_in_threadpool(sink.finish)
    except BaseException:
        await run_in_threadpool(sink.discard)
        raise
    label = (name or PurePath(filename or "").name or "dataset")[:MAX_NAME]
    dataset, is_new = await run_in_threadpool(
        datasets.create_dataset,
        engine,
        sink,
        name=label,
        sha256=sha256,
        limits=archive_limits(settings),
        columns=columns,
    )
    if is_new:
        await run_in_threadpool(publish_or_forget, engine, settings, store, dataset.id)
    else:
        response.status_code = status.HTTP_200_OK
    return dataset_public(dataset)


def publish_or_forget(
    engine: Engine, settings: Settings, store: ArtifactStore, dataset_id: int
) -> None:
    """Copy a new dataset to the object store (other hosts' workers read it there), or
    remove it: a dataset only this host could train on would fail its jobs elsewhere."""
    try:
        publish_dataset(
            store, datasets.dataset_folder(settings.datasets_dir, dataset_id), dataset_id
        )
    except Exception as error:  # s3fs's OSError, or botocore's own connection errors
        datasets.delete_dataset(engine, settings.datasets_dir, dataset_id)
        remove_dataset_objects(store, dataset_id)
        raise DatasetNotStored(f"{type(error).__name__}: {error}") from error


@router.get("", response_model=DatasetsPublic)
def list_datasets(
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
) -> DatasetsPublic:
    """Datasets newest first."""
    page, count = datasets.list_datasets(session, limit=limit, offset=offset)
    return DatasetsPublic(data=[dataset_public(d) for d in page], count=count)


@router.get("/{dataset_id}", response_model=DatasetDetailPublic)
def read_dataset(
    dataset_id: int, session: ReadSessionDep, settings: SettingsDep, store: StoreDep
) -> DatasetDetailPublic:
    """The dataset with a preview: a table's first 20 rows, or up to 8 images' paths."""
    dataset = datasets.get_dataset(session, dataset_id)
    fetch_dataset(store, settings.datasets_dir, dataset_id)  # uploaded through another host
    folder = datasets.dataset_folder(settings.datasets_dir, dataset_id)
    preview: list[dict[str, Any]] = (
        preview_rows(folder / TABLE_FILE)  # type: ignore[assignment]
        if dataset.kind == "table"
        else sample_images(folder)
    )
    public = dataset_public(dataset)
    return DatasetDetailPublic(**public.model_dump(by_alias=True), preview=preview)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(
    dataset_id: int, engine: EngineDep, settings: SettingsDep, store: StoreDep
) -> Response:
    """Remove the dataset and its files; 409 while a queued or running job trains on it.
    Jobs keep its id, name and sha256 in their lineage."""
    datasets.delete_dataset(engine, settings.datasets_dir, dataset_id)
    remove_dataset_objects(store, dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
