"""Answering predictions: which checkpoint answers, caches of sources and networks, and the
forward pass (shared with concurrent requests where the model batches, ``batching.py``)."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import Batching, ModelSpec
from torchkiln.service.api.serving.batching import Batcher
from torchkiln.service.store.aliases import aliased_job_id
from torchkiln.service.store.artifact_store import ArtifactStore
from torchkiln.service.store.cache_markers import ModelMarkers
from torchkiln.service.store.checkpoint_files import fetch_checkpoint
from torchkiln.service.store.db import read_session
from torchkiln.service.store.errors import (
    JobNotFound,
    NoCheckpoint,
    PickDisagrees,
    VersionNotFound,
)
from torchkiln.service.store.progress import serving_checkpoint
from torchkiln.service.store.promotion import PRODUCTION, production_job_id
from torchkiln.service.store.states import TERMINAL
from torchkiln.service.store.tables import Checkpoint, Job

logger = logging.getLogger(__name__)

# Even with an unchanged marker (say, a host that does not share the artifacts folder),
# the production answer is looked up again this often.
SOURCE_REFRESH_S = 5.0
# Lookups of a source whose checkpoint file retention removed under the reader.
READ_ATTEMPTS = 3


@dataclass(frozen=True)
class Source:
    """The job and checkpoint a prediction comes from, and the alias that named the job."""

    job: Job
    checkpoint: Checkpoint
    alias: str | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A served network, and the batcher its predictions run through."""

    job_id: int
    spec: ModelSpec
    module: torch.nn.Module
    batcher: Batcher


def find_source(
    session: Session, model_names: Sequence[str], job_id: int | None, alias: str | None = None
) -> Source:
    """The serving checkpoint of the named (or aliased) job, else of the production version."""
    if alias is not None:
        aliased = aliased_job_id(session, model_names, alias)
        # Both given: a precondition, like If-Match; the answer is the same job either way.
        if job_id is not None and job_id != aliased:
            raise PickDisagrees(alias, aliased, job_id)
        job_id = aliased
    elif job_id is None:
        job_id = production_job_id(session, model_names)
        alias = PRODUCTION
        if job_id is None:
            raise NoCheckpoint(
                f"no trained {' or '.join(model_names)} model yet: run one with "
                f'POST /jobs {{"model": "{model_names[0]}"}} and predict once it has succeeded'
            )
    job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    if job.model not in model_names:
        raise VersionNotFound(job_id, job.model, list(model_names))
    checkpoint = serving_checkpoint(session, job.id)  # type: ignore[arg-type]
    if checkpoint is None:
        raise NoCheckpoint(
            f"job {job.id} ({job.status}) has no checkpoint yet; wait for it or pick another"
        )
    return Source(job=job, checkpoint=checkpoint, alias=alias)


@dataclass(frozen=True)
class _CachedSource:
    source: Source
    stamps: tuple[object, ...]
    looked_up_at: float


class ModelCache:
    """Which checkpoint answers, and the loaded networks, so a request rarely touches the DB.

    A lookup is reused until a model's success marker or (for the production version and
    ``?alias=``) its aliases marker changes (a stat per request; in an object store a HEAD
    at most once a second, see ``artifact_store``); networks are keyed by checkpoint id and
    digest, so a newer checkpoint is a fresh load.
    """

    def __init__(
        self,
        engine: Engine,
        store: ArtifactStore,
        capacity: int = 8,
        *,
        batching: Callable[[ModelSpec], Batching | None] = lambda spec: None,
        observe_batch: Callable[[str, int], None] | None = None,
    ) -> None:
        """``batching``: each served spec's policy; ``observe_batch(model, samples)`` is told
        the size of every forward pass of a prediction."""
        self.engine = engine
        self.store = store
        self.capacity = capacity
        self.batching, self.observe_batch = batching, observe_batch
        self.hits = 0
        self.misses = 0
        self._sources: dict[tuple[tuple[str, ...], int | None, str | None], _CachedSource] = {}
        self._markers: dict[tuple[str, ...], tuple[ModelMarkers, ...]] = {}
        # Keyed with the digest too: SQLite may hand a deleted row's id to a new checkpoint.
        self._modules: OrderedDict[tuple[int, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(
        self, model_names: Sequence[str], job_id: int | None, alias: str | None = None
    ) -> Source:
        names = tuple(model_names)
        key = (names, job_id, alias)
        markers = self._markers.get(names)
        if markers is None:
            markers = tuple(ModelMarkers(self.store, name) for name in names)
            self._markers[names] = markers
        stamps: tuple[object, ...] = tuple(marker.succeeded_stamp() for marker in markers)
        if job_id is None or alias is not None:
            stamps += tuple(marker.aliases_stamp() for marker in markers)
        cached = self._sources.get(key)
        now = time.monotonic()
        is_pinned = job_id is not None or alias is not None
        if (
            cached is not None
            and cached.stamps == stamps
            and (is_pinned or now - cached.looked_up_at < SOURCE_REFRESH_S)
        ):
            return cached.source
        with read_session(self.engine) as session:
            source = find_source(session, model_names, job_id, alias)
        # Only answers that cannot change under the same markers: an alias names a succeeded
        # job, and is moved in a commit that its marker's touch follows.
        if source.job.status in TERMINAL:
            self._sources[key] = _CachedSource(source, stamps, now)
        return source

    def load(
        self, model_names: Sequence[str], job_id: int | None, alias: str | None = None
    ) -> tuple[Source, LoadedModel]:
        """``resolve`` then ``get``, looked up afresh when the checkpoint file vanished: a
        running job's retention removes it only once the newer row is committed."""
        for _ in range(READ_ATTEMPTS - 1):
            source = self.resolve(model_names, job_id, alias)
            try:
                return source, self.get(source)
            except FileNotFoundError:
                self._sources.pop((tuple(model_names), job_id, alias), None)
        source = self.resolve(model_names, job_id, alias)
        return source, self.get(source)

    def get(self, source: Source, *, count: bool = True) -> LoadedModel:
        """The network for ``source``, loaded on first use; ``count``: a prediction's use,
        added to the hit/miss counts."""
        assert source.checkpoint.id is not None
        key = (source.checkpoint.id, source.checkpoint.sha256)
        with self._lock:
            loaded = self._modules.get(key)
            if loaded is not None:
                self._modules.move_to_end(key)
                self.hits += count
                return loaded
        # Load outside the lock: a slow disk read must not stall cached models' requests.
        loaded = self._load(source)
        with self._lock:
            self.misses += count
            self._modules[key] = loaded
            while len(self._modules) > self.capacity:
                self._modules.popitem(last=False)
        return loaded

    def warm(self, model_names: Sequence[str]) -> list[int]:
        """Load each named model's serving network ahead of its first prediction.

        Up to ``capacity`` networks; the job ids loaded. A model with nothing trained is
        skipped, and so is one whose checkpoint fails to load: start-up goes on, and that
        model's first prediction reports the problem. Not counted as cache hits or misses,
        which count predictions.
        """
        loaded_ids: list[int] = []
        for name in model_names:
            if len(loaded_ids) >= self.capacity:
                break
            try:
                loaded_ids.append(self.get(self.resolve([name], None), count=False).job_id)
            except NoCheckpoint:
                continue
            except Exception:  # one unreadable checkpoint must not stop the server
                logger.warning("could not preload %s", name, exc_info=True)
        return loaded_ids

    def _load(self, source: Source) -> LoadedModel:
        options = REGISTRY[source.job.model].parse_options(source.job.params)
        # The job's own spec: for sequential, its data set's preprocessing and outputs.
        spec = REGISTRY[source.job.model].for_options(options)
        module = spec.build(options)
        payload = fetch_checkpoint(
            self.store, source.checkpoint.path, torch.device("cpu"), source.checkpoint.sha256
        )
        module.load_state_dict(payload["model"])
        module.eval()
        observe = self.observe_batch
        batcher = Batcher(
            module,
            self.batching(spec),
            None if observe is None else lambda samples: observe(spec.name, samples),
        )
        return LoadedModel(source.job.id, spec, module, batcher)  # type: ignore[arg-type]


async def answer(
    cache: ModelCache,
    model_names: Sequence[str],
    pick: tuple[int | None, str | None],
    batch_of: Callable[[ModelSpec], torch.Tensor],
    *,
    is_slow: bool = False,
) -> dict[str, Any]:
    """Resolve the answering checkpoint (``pick``: job id, alias), build the batch with its
    spec and run the network. ``is_slow``: the lookup and the batch are too slow for the
    event loop, and run in worker threads."""
    job_id, alias = pick
    if is_slow:
        source, loaded = await run_in_threadpool(cache.load, model_names, job_id, alias)
        outputs = await loaded.batcher.run_built(lambda: batch_of(loaded.spec))
    else:
        source, loaded = cache.load(model_names, job_id, alias)
        outputs = await loaded.batcher.run(batch_of(loaded.spec))
    return describe(loaded, outputs, alias=source.alias)


def describe(
    loaded: LoadedModel, outputs: torch.Tensor, alias: str | None = None
) -> dict[str, Any]:
    """The answer to the network's ``outputs``; it names the job (and the alias, if one picked
    it) behind them."""
    return {
        "job_id": loaded.job_id,
        "alias": alias,
        "model": loaded.spec.name,
        **loaded.spec.postprocess(outputs),
    }
