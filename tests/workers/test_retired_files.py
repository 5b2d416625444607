"""Retention's dropped checkpoints outlive their rows by a grace period, then go."""

from __future__ import annotations

from pathlib import Path

from torchkiln.service.store.artifact_store import LocalStore
from torchkiln.service.store.checkpoint_files import remove_unrecorded_checkpoints
from torchkiln.workers.retired_files import RetiredFiles


def touch(root: Path, relative: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_a_retired_file_stays_for_its_grace_then_goes(tmp_path: Path) -> None:
    old = touch(tmp_path, "jobs/1/epoch-000001.pt")
    retired = RetiredFiles(LocalStore(tmp_path), grace_s=10.0)
    retired.retire(["jobs/1/epoch-000001.pt"])
    assert old.exists()
    retired.remove_due(now=float("inf"))
    assert not old.exists()


def test_the_job_end_removes_every_retired_file(tmp_path: Path) -> None:
    paths = [touch(tmp_path, f"jobs/1/epoch-00000{n}.pt") for n in (1, 2)]
    retired = RetiredFiles(LocalStore(tmp_path), grace_s=60.0)
    retired.retire(["jobs/1/epoch-000001.pt", "jobs/1/epoch-000002.pt"])
    retired.remove_all()
    assert not any(path.exists() for path in paths)


def test_a_restart_removes_checkpoints_no_row_records(tmp_path: Path) -> None:
    kept = touch(tmp_path, "jobs/1/epoch-000002.pt")
    orphan = touch(tmp_path, "jobs/1/epoch-000001.pt")
    log = touch(tmp_path, "jobs/1/log.jsonl")
    remove_unrecorded_checkpoints(tmp_path / "jobs" / "1", tmp_path, {"jobs/1/epoch-000002.pt"})
    assert kept.exists() and log.exists() and not orphan.exists()
