"""Uploaded datasets in the object store, for hosts that do not share the datasets folder.

With ``TORCHKILN_ARTIFACTS_URL`` set, the API host copies a new dataset's files to
``datasets/<id>/<file>`` in the store and then writes ``datasets/<id>/manifest.json`` (every
file's sha256 and size): the manifest's presence means the copy is whole. A worker (or another
API host) that lacks ``<datasets_dir>/<id>/`` fetches it before use, checking each file's
sha256, into a temporary folder beside it that is renamed into place. With local artifacts
every call here does nothing: the datasets folder is the one copy.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from torchkiln.service.store.artifact_store import ArtifactStore, CorruptArtifact
from torchkiln.service.store.dataset_ingest import SCHEMA_FILE

PREFIX = "datasets"
MANIFEST = "manifest.json"
# Marks a dataset folder complete; ingest writes it with the data.
COMPLETE_FILE = SCHEMA_FILE
FETCH_PREFIX = ".fetch-"


def object_key(dataset_id: int, relative: str) -> str:
    return f"{PREFIX}/{dataset_id}/{relative}"


def publish_dataset(store: ArtifactStore, folder: Path, dataset_id: int) -> None:
    """Copy ``folder``'s files to the store, the manifest last."""
    if store.is_local:
        return
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        stored = store.put_file(object_key(dataset_id, relative), path)
        files[relative] = {"sha256": stored.sha256, "bytes": stored.size_bytes}
    manifest = json.dumps({"dataset": dataset_id, "files": files}, sort_keys=True)
    store.put_bytes(object_key(dataset_id, MANIFEST), manifest.encode())


def remove_dataset_objects(store: ArtifactStore, dataset_id: int) -> None:
    if not store.is_local:
        store.delete_prefix(f"{PREFIX}/{dataset_id}")


def lineage_ids(params: Mapping[str, Any]) -> list[int]:
    """The uploaded datasets a job's params name (their recorded lineage)."""
    lineage = params.get("lineage") or {}
    return [int(entry["id"]) for entry in lineage.get("datasets", []) if "id" in entry]


def fetch_datasets(store: ArtifactStore, datasets_dir: Path, dataset_ids: Iterable[int]) -> None:
    for dataset_id in dataset_ids:
        fetch_dataset(store, datasets_dir, dataset_id)


def fetch_dataset(store: ArtifactStore, datasets_dir: Path, dataset_id: int) -> bool:
    """Make ``<datasets_dir>/<id>/`` from the store unless it is here; whether it is here
    afterwards. A dataset the store lacks is left to the model to report by name.
    CorruptArtifact if a file's bytes differ from the manifest's sha256."""
    final = datasets_dir / str(dataset_id)
    if (final / COMPLETE_FILE).is_file():
        return True
    if store.is_local:
        return False
    try:
        manifest = json.loads(store.read_bytes(object_key(dataset_id, MANIFEST)))
    except FileNotFoundError:
        return False
    datasets_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=FETCH_PREFIX, dir=datasets_dir))
    try:
        for relative, entry in manifest["files"].items():
            target = staging / safe_relative(relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(store.get_bytes(object_key(dataset_id, relative), entry["sha256"]))
        if final.exists() and not (final / COMPLETE_FILE).is_file():
            shutil.rmtree(final, ignore_errors=True)  # a crash's half-removed folder
        try:
            staging.rename(final)
        except OSError:
            # Another process on this host (a sibling rank) fetched it first.
            if not (final / COMPLETE_FILE).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def safe_relative(relative: str) -> PurePosixPath:
    """A manifest's file name, refused if it would land outside the dataset's folder."""
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise CorruptArtifact(f"dataset manifest names a file outside its folder: {relative!r}")
    return path
