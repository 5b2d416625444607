"""A job's files: its folder and log, and checkpoints (whole or nothing, sha256, weights_only).

The format belongs to the store, not to training: the HTTP processes read weights too, and
must not import the training loop to do so.
"""

from __future__ import annotations

import io
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from torchkiln.service.store.artifact_store import (
    ArtifactStore,
    CorruptArtifact,
    LocalStore,
    StoredObject,
)

# save_checkpoint's temporary names: ".epoch-000004.pt.<random>.tmp" beside the final file.
TEMP_GLOB = ".*.pt.*.tmp"


@dataclass(frozen=True)
class SavedCheckpoint:
    path: Path
    sha256: str
    size_bytes: int


class CorruptCheckpoint(CorruptArtifact):
    """The file's bytes are not the ones recorded when it was written."""


def job_dir(artifacts_dir: Path, job_id: int) -> Path:
    """A job's folder: built from our own integer id, never from client input."""
    return artifacts_dir / job_prefix(job_id)


def job_prefix(job_id: int) -> str:
    """A job's folder as a store key (``job_dir`` relative to the artifacts root)."""
    return f"jobs/{int(job_id)}"


def job_log_key(job_id: int) -> str:
    return f"{job_prefix(job_id)}/log.jsonl"


def job_log_path(artifacts_dir: Path, job_id: int) -> Path:
    """The job's log, JSON lines written by its worker, beside its checkpoints."""
    return job_dir(artifacts_dir, job_id) / "log.jsonl"


def save_checkpoint(payload: dict[str, Any], path: Path) -> SavedCheckpoint:
    """Write atomically to a local ``path``: a reader or a crash sees the old file or the
    new one, never half."""
    stored = LocalStore(path.parent).put_file_with(path.name, lambda h: torch.save(payload, h))
    return SavedCheckpoint(path=path, sha256=stored.sha256, size_bytes=stored.size_bytes)


def store_checkpoint(store: ArtifactStore, key: str, payload: dict[str, Any]) -> StoredObject:
    """Write a checkpoint under ``key``, whole or not at all (see ``artifact_store``)."""
    if isinstance(store, LocalStore):  # straight into the temp file, no copy in memory
        return store.put_file_with(key, lambda handle: torch.save(payload, handle))
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return store.put_bytes(key, buffer.getbuffer())


def fetch_checkpoint(
    store: ArtifactStore, key: str, device: torch.device, sha256: str | None
) -> dict[str, Any]:
    """Read a checkpoint onto ``device``; checks its sha256 first when one was recorded."""
    try:
        data = store.get_bytes(key, sha256)
    except CorruptArtifact as error:
        raise CorruptCheckpoint(f"checkpoint {key} does not match its recorded sha256") from error
    return torch.load(io.BytesIO(data), map_location=device, weights_only=True)


def remove_unrecorded_checkpoints(
    folder: Path, artifacts_dir: Path, recorded: Collection[str]
) -> None:
    """``remove_stale_checkpoints`` in a local job folder."""
    prefix = folder.relative_to(artifacts_dir).as_posix()
    remove_stale_checkpoints(LocalStore(artifacts_dir), prefix, recorded)


def remove_stale_checkpoints(store: ArtifactStore, prefix: str, recorded: Collection[str]) -> None:
    """Delete checkpoints in the job folder ``prefix`` that no row records (``recorded``:
    keys), and half-written ones. Only by the job's own worker, as it starts the job."""
    store.remove_unfinished(prefix)
    for key in store.list_prefix(prefix):
        parent, _, name = key.rpartition("/")
        if parent == prefix and name.endswith(".pt") and key not in recorded:
            store.delete(key)


def temp_bytes_by_job(artifacts_dir: Path) -> dict[int, int]:
    """Bytes of half-written checkpoints in each job's folder (none for most jobs)."""
    totals: dict[int, int] = {}
    for path in (artifacts_dir / "jobs").glob(f"*/{TEMP_GLOB}"):
        name = path.parent.name
        if not (name.isascii() and name.isdigit()):
            continue
        try:
            size = path.stat().st_size
        except FileNotFoundError:  # renamed into place or removed since the listing
            continue
        totals[int(name)] = totals.get(int(name), 0) + size
    return totals


def load_checkpoint(path: Path, device: torch.device, sha256: str | None) -> dict[str, Any]:
    """``fetch_checkpoint`` of a local file."""
    return fetch_checkpoint(LocalStore(path.parent), path.name, device, sha256)
