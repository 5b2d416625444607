"""Answering predictions: which checkpoint answers, and a cache of loaded networks."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sqlmodel import Session
from torch import nn

from models import REGISTRY
from models.registry import ModelSpec
from service.artifacts import latest_checkpoint, newest_succeeded_job
from service.errors import InvalidInput, JobNotFound, NoCheckpoint
from service.tables import Checkpoint, Job
from workers.checkpoints import load_checkpoint


@dataclass(frozen=True)
class Source:
    """The job and checkpoint a prediction comes from."""

    job: Job
    checkpoint: Checkpoint


@dataclass(frozen=True)
class LoadedModel:
    job_id: int
    spec: ModelSpec
    module: nn.Module


def find_source(session: Session, model_names: Sequence[str], job_id: int | None) -> Source:
    """The named job's newest checkpoint, or the newest succeeded job of these models."""
    if job_id is None:
        job = newest_succeeded_job(session, model_names)
        if job is None:
            example = model_names[0]
            raise NoCheckpoint(
                f"no trained {' or '.join(model_names)} model yet: run one with "
                f'POST /jobs {{"model": "{example}"}} and predict once it has succeeded'
            )
    else:
        job = session.get(Job, job_id)
        if job is None:
            raise JobNotFound(job_id)
        if job.model not in model_names:
            raise InvalidInput(
                f"job {job_id} trained {job.model!r}, not {' or '.join(model_names)}"
            )
    checkpoint = latest_checkpoint(session, job.id)  # type: ignore[arg-type]
    if checkpoint is None:
        raise NoCheckpoint(
            f"job {job.id} ({job.status}) has no checkpoint yet; wait for it or pick another"
        )
    return Source(job=job, checkpoint=checkpoint)


class ModelCache:
    """Loaded networks keyed by checkpoint id: a newer checkpoint is a new key, so it loads."""

    def __init__(self, artifacts_dir: Path, capacity: int = 8) -> None:
        self.artifacts_dir = artifacts_dir
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[int, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, source: Source) -> LoadedModel:
        key = source.checkpoint.id
        assert key is not None
        with self._lock:
            loaded = self._entries.get(key)
            if loaded is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return loaded
        # Load outside the lock: a slow disk read must not stall cached models' requests.
        loaded = self._load(source)
        with self._lock:
            self.misses += 1
            self._entries[key] = loaded
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return loaded

    def _load(self, source: Source) -> LoadedModel:
        spec = REGISTRY[source.job.model]
        module = spec.build(spec.parse_options(source.job.params))
        payload = load_checkpoint(
            self.artifacts_dir / source.checkpoint.path,
            torch.device("cpu"),
            source.checkpoint.sha256,
        )
        module.load_state_dict(payload["model"])
        module.eval()
        return LoadedModel(job_id=source.job.id, spec=spec, module=module)  # type: ignore[arg-type]


def predict(loaded: LoadedModel, batch: torch.Tensor) -> dict[str, Any]:
    """Run the network on a preprocessed batch; the answer names the job behind it."""
    with torch.inference_mode():
        outputs = loaded.module(batch)
    return {"job_id": loaded.job_id, "model": loaded.spec.name, **loaded.spec.postprocess(outputs)}
