"""Uploaded datasets: rows in ``dataset``, files in ``<datasets_dir>/<id>/``."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from torchkiln.service.store.dataset_archives import ArchiveLimits
from torchkiln.service.store.dataset_ingest import ingest
from torchkiln.service.store.dataset_upload import UploadSink
from torchkiln.service.store.db import read_session, write_session
from torchkiln.service.store.errors import DatasetInUse, DatasetNotFound
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import Dataset, Job

ACTIVE = (JobState.QUEUED, JobState.RUNNING)

Lookup = Callable[[int], dict[str, Any]]


def dataset_folder(datasets_dir: Path, dataset_id: int) -> Path:
    return datasets_dir / str(dataset_id)


def by_sha256(session: Session, sha256: str) -> Dataset | None:
    return session.exec(select(Dataset).where(Dataset.sha256 == sha256)).first()


def get_dataset(session: Session, dataset_id: int) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise DatasetNotFound(dataset_id)
    return dataset


def list_datasets(session: Session, *, limit: int, offset: int) -> tuple[list[Dataset], int]:
    """A page of datasets, newest first, and how many there are."""
    count = session.exec(select(func.count()).select_from(Dataset)).one()
    page = session.exec(
        select(Dataset).order_by(col(Dataset.id).desc()).limit(limit).offset(offset)
    ).all()
    return list(page), count


def lookup(session: Session, dataset_id: int) -> dict[str, Any]:
    """What a job's lineage records of a dataset; LookupError for an unknown id."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise LookupError(str(DatasetNotFound(dataset_id)))
    return {
        "id": dataset.id,
        "name": dataset.name,
        "sha256": dataset.sha256,
        "kind": dataset.kind,
        "schema": dataset.data_schema,
    }


def lookup_in(session: Session) -> Lookup:
    """``lookup`` bound to a session: the ``dataset_lookup`` that option models call."""
    return lambda dataset_id: lookup(session, dataset_id)


def in_use(session: Session, dataset_id: int) -> list[int]:
    """The ids of queued or running jobs whose ``params.lineage.datasets`` name the dataset."""
    rows = session.exec(select(Job.id, Job.params).where(col(Job.status).in_(ACTIVE))).all()
    return [
        job_id
        for job_id, params in rows
        if any(
            isinstance(d, dict) and d.get("id") == dataset_id
            for d in ((params or {}).get("lineage") or {}).get("datasets") or []
        )
    ]


def create_dataset(
    engine: Engine,
    sink: UploadSink,
    *,
    name: str,
    sha256: str,
    limits: ArchiveLimits,
    columns: list[str] | None = None,
) -> tuple[Dataset, bool]:
    """The dataset for a finished upload, and whether it is new: the same bytes again give
    the existing one (``columns``, a header-less table's names, count the first time only).
    The sink's folder is gone afterwards, whatever happens."""
    datasets_dir = sink.folder.parent
    try:
        with read_session(engine) as session:
            existing = by_sha256(session, sha256)
        if existing is not None:
            return existing, False
        staging = sink.folder / "dataset"
        ingested = ingest(sink.path, staging, limits, columns=columns)
        final: Path | None = None
        try:
            with write_session(engine) as session:
                dataset = Dataset(
                    name=name,
                    kind=ingested.kind,
                    format=ingested.format,
                    sha256=sha256,
                    size_bytes=sink.size,
                    data_schema=ingested.schema,
                )
                session.add(dataset)
                session.flush()
                final = dataset_folder(datasets_dir, dataset.id)  # type: ignore[arg-type]
                shutil.rmtree(final, ignore_errors=True)  # left by a crash mid-delete
                staging.rename(final)
        except BaseException as error:
            if final is not None:
                shutil.rmtree(final, ignore_errors=True)
            if isinstance(error, sa.exc.IntegrityError):
                # The same bytes finished uploading in another request meanwhile.
                with read_session(engine) as session:
                    existing = by_sha256(session, sha256)
                if existing is not None:
                    return existing, False
            raise
        return dataset, True
    finally:
        sink.discard()


def delete_dataset(engine: Engine, datasets_dir: Path, dataset_id: int) -> None:
    """Remove the row, then its files; 409 while a queued or running job trains on it."""
    with write_session(engine) as session:
        dataset = get_dataset(session, dataset_id)
        users = in_use(session, dataset_id)
        if users:
            raise DatasetInUse(
                f"dataset {dataset_id} is in use by job(s) {', '.join(map(str, users))}: "
                "cancel them or wait until they finish"
            )
        session.delete(dataset)
    shutil.rmtree(dataset_folder(datasets_dir, dataset_id), ignore_errors=True)
