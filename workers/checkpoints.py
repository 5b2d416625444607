"""Checkpoint files: written to a temp file and renamed, read back with weights_only=True."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workers.training import TrainState


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


def checkpoint_payload(state: TrainState, model_name: str) -> dict[str, Any]:
    """Everything needed to resume bit for bit: weights, optimizer, epoch and RNG states."""
    rng: dict[str, torch.Tensor] = {
        "torch": torch.get_rng_state(),
        "generator": state.generator.get_state(),
    }
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    payload = {
        "model_name": model_name,
        "epoch": state.epoch,
        "model": state.module.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "rng": rng,
    }
    if state.scheduler is not None:
        payload["scheduler"] = state.scheduler.state_dict()
    if state.stopper is not None:
        payload["early_stopping"] = state.stopper.state_dict()
    return payload


def save_checkpoint(payload: dict[str, Any], path: Path) -> SavedCheckpoint:
    """Write atomically: a reader or a crash sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        digest = _sha256(Path(tmp_name))
        size = Path(tmp_name).stat().st_size
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return SavedCheckpoint(path=path, sha256=digest, size_bytes=size)


def load_checkpoint(path: Path, device: torch.device, sha256: str | None) -> dict[str, Any]:
    """Read a checkpoint onto ``device``; checks its sha256 first when one was recorded."""
    if sha256 is not None and _sha256(path) != sha256:
        raise CorruptCheckpoint(f"checkpoint {path.name} does not match its recorded sha256")
    return torch.load(path, map_location=device, weights_only=True)


def restore_state(state: TrainState, payload: dict[str, Any]) -> None:
    """Put a checkpoint's weights, optimizer, epoch and RNGs back into ``state``."""
    state.module.load_state_dict(payload["model"])
    # load_state_dict copies every group setting, "fused" included; keep this process's
    # choice so a job resumed on another device type never asks for a kernel it lacks.
    fused = [group.get("fused") for group in state.optimizer.param_groups]
    state.optimizer.load_state_dict(payload["optimizer"])
    for group, choice in zip(state.optimizer.param_groups, fused, strict=True):
        if "fused" in group:
            group["fused"] = choice
    state.epoch = int(payload["epoch"])
    if state.scheduler is not None and "scheduler" in payload:
        state.scheduler.load_state_dict(payload["scheduler"])
    if state.stopper is not None and "early_stopping" in payload:
        state.stopper.load_state_dict(payload["early_stopping"])
    rng = payload["rng"]
    torch.set_rng_state(rng["torch"].cpu())
    state.generator.set_state(rng["generator"].cpu())
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"].cpu())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def succeeded_marker(artifacts_dir: Path, model_name: str) -> Path:
    """A file whose change tells prediction caches that ``model_name`` has a new version.

    A ``stat`` per request is far cheaper than a database query, and it works across hosts
    wherever the artifacts directory is shared (which serving checkpoints needs anyway).
    """
    return artifacts_dir / "models" / f"{model_name}.succeeded"


def announce_success(artifacts_dir: Path, model_name: str, job_id: int) -> None:
    """Write the marker (the job id, atomically) just before the job is marked succeeded."""
    marker = succeeded_marker(artifacts_dir, model_name)
    marker.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=marker.parent, prefix=f".{marker.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(str(job_id))
    os.replace(tmp_name, marker)


def marker_stamp(artifacts_dir: Path, model_name: str) -> int | None:
    """The marker's mtime in ns (None if no job of the model succeeded): one stat call."""
    try:
        return succeeded_marker(artifacts_dir, model_name).stat().st_mtime_ns
    except FileNotFoundError:
        return None


def marker_job_id(artifacts_dir: Path, model_name: str) -> int | None:
    try:
        return int(succeeded_marker(artifacts_dir, model_name).read_text())
    except (FileNotFoundError, ValueError):
        return None
