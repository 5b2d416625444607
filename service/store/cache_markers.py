"""Marker files beside the checkpoints that tell every process's prediction cache to look again.

A ``stat`` per request is far cheaper than a database query, and it works across hosts
wherever the artifacts directory is shared (which serving checkpoints needs anyway).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def succeeded_marker(artifacts_dir: Path, model_name: str) -> Path:
    """A file whose change tells prediction caches that ``model_name`` has a new version."""
    return artifacts_dir / "models" / f"{model_name}.succeeded"


def announce_success(artifacts_dir: Path, model_name: str, job_id: int) -> None:
    """Write the marker (the job id, atomically) just before the job is marked succeeded."""
    marker = succeeded_marker(artifacts_dir, model_name)
    marker.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=marker.parent, prefix=f".{marker.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(str(job_id))
    os.replace(tmp_name, marker)


def aliases_marker(artifacts_dir: Path, model: str) -> Path:
    return artifacts_dir / "models" / f"{model}.aliases"


def touch_aliases(artifacts_dir: Path, model: str) -> None:
    """Replace the marker after an alias commit, so every process's cache looks again.

    A rename makes a new inode, so the stamp changes even where mtimes are coarse.
    """
    marker = aliases_marker(artifacts_dir, model)
    marker.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=marker.parent, prefix=f".{marker.name}.")
    os.close(fd)
    os.replace(tmp_name, marker)


class ModelMarkers:
    """The stamps of one model's two markers, one ``stat`` each, by paths built once (the
    ``Path`` joins cost more than the calls)."""

    def __init__(self, artifacts_dir: Path, model: str) -> None:
        self.succeeded = os.fspath(succeeded_marker(artifacts_dir, model))
        self.aliases = os.fspath(aliases_marker(artifacts_dir, model))

    def succeeded_stamp(self) -> int | None:
        """The success marker's mtime in ns; None if no job of the model succeeded."""
        try:
            return os.stat(self.succeeded).st_mtime_ns
        except FileNotFoundError:
            return None

    def aliases_stamp(self) -> tuple[int, int] | None:
        """(inode, mtime) of the aliases marker; None if no alias was ever set."""
        try:
            stat = os.stat(self.aliases)
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns
