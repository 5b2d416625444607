"""Checkpoint files: atomic replace, sha256 check, weights-only loading."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from models import REGISTRY
from workers.checkpoints import (
    CorruptCheckpoint,
    checkpoint_payload,
    job_dir,
    load_checkpoint,
    save_checkpoint,
)
from workers.training import new_state


def payload() -> dict:
    spec = REGISTRY["linear"]
    return checkpoint_payload(new_state(spec, spec.options(), torch.device("cpu")), "linear")


def test_save_replaces_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "jobs" / "1" / "epoch-000001.pt"
    first = save_checkpoint(payload(), target)
    second = save_checkpoint({**payload(), "epoch": 2}, target)
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    assert first.sha256 != second.sha256
    assert load_checkpoint(target, torch.device("cpu"), second.sha256)["epoch"] == 2


def test_a_changed_file_is_refused(tmp_path: Path) -> None:
    saved = save_checkpoint(payload(), tmp_path / "c.pt")
    with saved.path.open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(CorruptCheckpoint):
        load_checkpoint(saved.path, torch.device("cpu"), saved.sha256)


def test_pickled_code_is_not_executed(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self):  # noqa: ANN204
            return (exec, ("raise SystemExit('pwned')",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"model": Boom()}))
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path, torch.device("cpu"), None)


def test_job_dir_is_built_from_the_integer_id_only(tmp_path: Path) -> None:
    assert job_dir(tmp_path, 12) == tmp_path / "jobs" / "12"
    with pytest.raises(ValueError):
        job_dir(tmp_path, "../../etc")  # type: ignore[arg-type]
