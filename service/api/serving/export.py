"""A job's serving weights as safetensors bytes, with what it takes to rebuild the network."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save
from sqlmodel import Session

from torchkiln.service.api.serving.model_card import model_card
from torchkiln.service.store.artifact_store import ArtifactStore
from torchkiln.service.store.checkpoint_files import fetch_checkpoint
from torchkiln.service.store.errors import NoCheckpoint
from torchkiln.service.store.jobs import get_job
from torchkiln.service.store.progress import serving_checkpoint

# A running job's retention may remove the file between its row and the read: look again.
READ_ATTEMPTS = 3


def export_weights(session: Session, store: ArtifactStore, job_id: int) -> tuple[str, bytes]:
    """``(file name, safetensors bytes)`` of the job's serving checkpoint (best, else last).

    Metadata (strings only, as the format asks): model, job_id, epoch, kind and options, the
    JSON a user passes to ``spec.parse_options`` to build the matching network, and the
    model card (JSON).
    """
    job = get_job(session, job_id)
    for attempt in range(1, READ_ATTEMPTS + 1):
        checkpoint = serving_checkpoint(session, job_id)
        if checkpoint is None:
            raise NoCheckpoint(f"job {job_id} ({job.status}) has no checkpoint to export")
        try:
            payload = fetch_checkpoint(
                store, checkpoint.path, torch.device("cpu"), checkpoint.sha256
            )
            break
        except FileNotFoundError:
            # Retention removed the file after its row was read; the row that replaced it is
            # committed first, and a fresh transaction sees it.
            if attempt == READ_ATTEMPTS:
                raise
            session.rollback()
    # safetensors refuses views and shared storage: give it contiguous copies.
    tensors = {name: t.detach().clone().contiguous() for name, t in payload["model"].items()}
    metadata = {
        "model": job.model,
        "job_id": str(job_id),
        "epoch": str(checkpoint.epoch),
        "kind": str(checkpoint.kind),
        "options": json.dumps(job.params, sort_keys=True),
        "model_card": json.dumps(model_card(session, job, checkpoint, "safetensors"), default=str),
    }
    return f"{job.model}-job{job_id}.safetensors", save(tensors, metadata=metadata)
