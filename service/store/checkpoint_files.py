"""A job's files: its folder and log, and checkpoints (temp file + rename, sha256, weights_only).

The format belongs to the store, not to training: the HTTP processes read weights too, and
must not import the training loop to do so.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch

# save_checkpoint's temporary names: ".epoch-000004.pt.<random>.tmp" beside the final file.
TEMP_GLOB = ".*.pt.*.tmp"


@dataclass(frozen=True)
class SavedCheckpoint:
    path: Path
    sha256: str
    size_bytes: int


class CorruptCheckpoint(Exception):
    """The file's bytes are not the ones recorded when it was written."""


def job_dir(artifacts_dir: Path, job_id: int) -> Path:
    """A job's folder: built from our own integer id, never from client input."""
    return artifacts_dir / "jobs" / str(int(job_id))


def job_log_path(artifacts_dir: Path, job_id: int) -> Path:
    """The job's log, JSON lines written by its worker, beside its checkpoints."""
    return job_dir(artifacts_dir, job_id) / "log.jsonl"


def save_checkpoint(payload: dict[str, Any], path: Path) -> SavedCheckpoint:
    """Write atomically: a reader or a crash sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        digest = file_sha256(Path(tmp_name))
        size = Path(tmp_name).stat().st_size
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return SavedCheckpoint(path=path, sha256=digest, size_bytes=size)


def remove_temp_files(folder: Path) -> None:
    """Delete the half-written checkpoints a killed writer left in a job's folder.

    Only while no one writes there: the job's own worker, as it starts or ends the job.
    """
    for path in folder.glob(TEMP_GLOB):
        path.unlink(missing_ok=True)


def remove_unrecorded_checkpoints(
    folder: Path, artifacts_dir: Path, recorded: Collection[str]
) -> None:
    """Delete checkpoint files in a job's folder that no row records (``recorded``: paths
    relative to ``artifacts_dir``). Only by the job's own worker, as it starts the job."""
    for path in folder.glob("*.pt"):
        if path.relative_to(artifacts_dir).as_posix() not in recorded:
            path.unlink(missing_ok=True)


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
    """Read a checkpoint onto ``device``; checks its sha256 first when one was recorded."""
    # One open for both: retention may unlink the file at any moment, and an open handle
    # keeps reading it.
    with path.open("rb") as handle:
        if sha256 is not None and _handle_sha256(handle) != sha256:
            raise CorruptCheckpoint(f"checkpoint {path.name} does not match its recorded sha256")
        handle.seek(0)
        return torch.load(handle, map_location=device, weights_only=True)


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    with path.open("rb") as handle:
        return _handle_sha256(handle)


def _handle_sha256(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()
