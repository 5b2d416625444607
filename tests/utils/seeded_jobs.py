"""A served mnist_mlp without training: its checkpoint holds the seed MLP's initial weights."""

from __future__ import annotations

from pathlib import Path

import torch

from torchkiln.models import REGISTRY
from torchkiln.service.store import jobs, progress
from torchkiln.service.store.artifact_store import LocalStore
from torchkiln.service.store.cache_markers import announce_success, touch_aliases
from torchkiln.service.store.checkpoint_files import save_checkpoint
from torchkiln.service.store.db import make_engine, upgrade_database, write_session
from torchkiln.service.store.promotion import finish_and_promote
from torchkiln.service.store.settings import Settings
from torchkiln.workers.checkpoint_payload import checkpoint_payload
from torchkiln.workers.training import new_state


def seed_mlp_job(settings: Settings) -> int:
    """A succeeded, production mnist_mlp job whose checkpoint is the seed MLP's initial weights."""
    engine = make_engine(settings)
    upgrade_database(engine)
    spec = REGISTRY["mnist_mlp"]
    params = spec.options(epochs=1).model_dump(mode="json")
    with write_session(engine) as session:
        jobs.enqueue_job(
            session=session,
            model="mnist_mlp",
            params=params,
            device="cpu",
            priority=0,
            max_attempts=1,
        )
    worker = jobs.WorkerIdentity("seed", 0)
    claimed = jobs.claim_next_job(engine, worker=worker, devices=["cpu"], lease_s=3600)
    assert claimed is not None and claimed.id is not None
    lease = jobs.Lease(claimed.id, claimed.attempts)
    state = new_state(spec, spec.parse_options(params), torch.device("cpu"))
    relative = Path("jobs") / str(claimed.id) / "epoch-000001.pt"
    saved = save_checkpoint(
        checkpoint_payload(state, "mnist_mlp"), settings.artifacts_dir / relative
    )
    record = progress.CheckpointFile(
        epoch=1,
        path=relative.as_posix(),
        sha256=saved.sha256,
        size_bytes=saved.size_bytes,
        is_final=True,
    )
    progress.record_checkpoint(engine, lease, record, keep=1)
    announce_success(LocalStore(settings.artifacts_dir), "mnist_mlp", claimed.id)
    # The model's first version: it becomes production, which /predict/mnist answers from.
    assert finish_and_promote(engine, lease, stop_reason=None).moved_aliases == ("production",)
    touch_aliases(LocalStore(settings.artifacts_dir), "mnist_mlp")
    engine.dispose()
    return claimed.id
