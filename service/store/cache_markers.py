"""Marker objects beside the checkpoints that tell every process's prediction cache to look again.

A stat per request (locally; a throttled HEAD in an object store) is far cheaper than a
database query, and it works across hosts wherever the artifacts are shared (which serving
checkpoints needs anyway).
"""

from __future__ import annotations

import uuid

from torchkiln.service.store.artifact_store import ArtifactStore


def succeeded_key(model_name: str) -> str:
    """A marker whose change tells prediction caches that ``model_name`` has a new version."""
    return f"models/{model_name}.succeeded"


def aliases_key(model: str) -> str:
    return f"models/{model}.aliases"


def _stamp(job_id: int | None = None) -> bytes:
    # Fresh bytes each time: an object store's stamp (ETag, second-grained mtime) would not
    # change for the same content rewritten within a second.
    return f"{'' if job_id is None else job_id}\n{uuid.uuid4().hex}\n".encode()


def announce_success(store: ArtifactStore, model_name: str, job_id: int) -> None:
    """Write the marker (the job id, atomically) just before the job is marked succeeded."""
    store.put_bytes(succeeded_key(model_name), _stamp(job_id))


def withdraw_success(store: ArtifactStore, model_name: str) -> None:
    """No job of the model is left succeeded."""
    store.delete(succeeded_key(model_name))


def touch_aliases(store: ArtifactStore, model: str) -> None:
    """Replace the marker after an alias commit, so every process's cache looks again.

    A rename makes a new inode, so the stamp changes even where mtimes are coarse.
    """
    store.put_bytes(aliases_key(model), _stamp())


class ModelMarkers:
    """The stamps of one model's two markers, by probes built once."""

    def __init__(self, store: ArtifactStore, model: str) -> None:
        self.succeeded_stamp = store.version_probe(succeeded_key(model))
        self.aliases_stamp = store.version_probe(aliases_key(model))
