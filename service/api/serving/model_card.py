"""A model card for an exported version: its interface, preprocessing, metrics and lineage."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from torchkiln.models import REGISTRY
from torchkiln.service.store.aliases import aliases_of
from torchkiln.service.store.tables import Checkpoint, Job
from torchkiln.service.store.versions import final_metrics


def model_card(session: Session, job: Job, checkpoint: Checkpoint, export_format: str) -> dict:
    """What a user of the exported file needs to know, as JSON-able data."""
    assert job.id is not None
    spec = REGISTRY[job.model]
    signature = spec.tensors
    tensors: dict[str, Any] | None = None
    if signature is not None:
        tensors = {
            "inputs": [_tensor(t) for t in signature.inputs],
            "outputs": [_tensor(t) for t in signature.outputs],
        }
    return {
        "model": job.model,
        "summary": spec.summary,
        "task": spec.task,
        "format": export_format,
        "job_id": job.id,
        "aliases": aliases_of(session, [job.id]).get(job.id, []),
        # The graph formats take and give these tensors (BYTES outputs are left out of
        # graphs); preprocessing is inside the graph, from these raw values.
        "tensors": tensors,
        "preprocessing": _preprocessing(spec.name),
        "predict_body_schema": spec.inputs.model_json_schema(),
        "classes": list(signature.classes or ()) if signature is not None else None,
        "metrics": final_metrics(session, [job.id]).get(job.id, {}),
        "best_epoch": job.best_epoch,
        "best_value": job.best_value,
        "checkpoint": {
            "epoch": checkpoint.epoch,
            "kind": str(checkpoint.kind),
            "sha256": checkpoint.sha256,
        },
        "lineage": {
            "params": job.params,
            "seed": job.seed,
            "init_from": job.params.get("init_from"),
            "sweep_id": job.sweep_id,
            "dataset": _dataset(job),
            "datasets": uploaded_datasets(job),
            "device": job.device,
            "torch_version": job.torch_version,
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        },
    }


def _tensor(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def _preprocessing(name: str) -> str:
    spec = REGISTRY[name]
    if spec.tensors is not None and spec.tensors.inputs[0].datatype == "UINT8":
        return (
            "Pixel levels 0-255 (digits white on black for MNIST) are scaled to [0, 1] and "
            "normalised with the training set's mean and standard deviation inside the graph. "
            "Uploads to /predict are first decoded, centred and resized as the README describes."
        )
    return "None: feature values go in as they are, as in the /predict body."


def uploaded_datasets(job: Job) -> list[dict[str, Any]]:
    """The uploaded datasets the job trained (and tested) on, as recorded at submit."""
    lineage = job.params.get("lineage") or {}
    keep = ("id", "name", "sha256", "kind", "role")
    return [{k: d.get(k) for k in keep} for d in lineage.get("datasets", [])]


def _dataset(job: Job) -> str:
    if uploaded_datasets(job):
        return "uploaded datasets (see datasets)"
    data = job.params.get("data")
    if isinstance(data, dict):
        sizes = {key: len(value) for key, value in data.items() if isinstance(value, list)}
        return f"inline points in params.data ({sizes})"
    return f"{job.model}'s own data set (see its module in torchkiln.models)"
