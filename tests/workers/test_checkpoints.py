"""Checkpoint files: atomic replace, sha256 check, weights-only loading."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from torchkiln.models import REGISTRY
from torchkiln.service.store.checkpoint_files import (
    CorruptCheckpoint,
    job_dir,
    load_checkpoint,
    save_checkpoint,
)
from torchkiln.workers.checkpoint_payload import checkpoint_payload, restore_state
from torchkiln.workers.training import new_state


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


def test_resumed_optimizers_keep_this_processes_fused_choice() -> None:
    """A state saved without fused kernels (an older checkpoint, or another device type)
    resumes with the kernels this process chose, and with the saved momentum."""
    spec = REGISTRY["linear"]
    options = spec.parse_options({"optimizer": "sgd", "momentum": 0.9})
    saved = new_state(spec, options, torch.device("cpu"))
    saved.optimizer = torch.optim.SGD(saved.module.parameters(), lr=0.1, momentum=0.9)
    saved.module(torch.ones(4, 1)).sum().backward()
    saved.optimizer.step()
    payload = checkpoint_payload(saved, "linear")
    assert payload["optimizer"]["param_groups"][0]["fused"] is None

    resumed = new_state(spec, options, torch.device("cpu"))
    assert resumed.optimizer.param_groups[0]["fused"] is True
    restore_state(resumed, payload)
    assert resumed.optimizer.param_groups[0]["fused"] is True
    buffers = [resumed.optimizer.state[p]["momentum_buffer"] for p in resumed.module.parameters()]
    expected = [saved.optimizer.state[p]["momentum_buffer"] for p in saved.module.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(buffers, expected, strict=True))
