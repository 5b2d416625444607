"""One job on one worker: its lease and heartbeat, the best keeper, the epoch recorder,
checkpoints and their retention, and the job's end state."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from sqlalchemy.engine import Engine

from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import DataRoot, DataUnavailable, ModelSpec
from torchkiln.service.store import progress, sweeps
from torchkiln.service.store.cache_markers import announce_success, touch_aliases
from torchkiln.service.store.checkpoint_files import (
    fetch_checkpoint,
    job_prefix,
    remove_stale_checkpoints,
    store_checkpoint,
)
from torchkiln.service.store.dataset_objects import fetch_datasets, lineage_ids
from torchkiln.service.store.db import read_session
from torchkiln.service.store.jobs import (
    Lease,
    fail_job,
    mark_cancelled,
    mark_started,
    release_job,
)
from torchkiln.service.store.promotion import finish_and_promote
from torchkiln.service.store.settings import Settings
from torchkiln.service.store.tables import CheckpointKind, Job
from torchkiln.workers import job_logs
from torchkiln.workers.best_keeper import BestKeeper
from torchkiln.workers.checkpoint_payload import checkpoint_payload, restore_state
from torchkiln.workers.devices import resolve_device
from torchkiln.workers.early_stopping import MetricMissing, metric_value
from torchkiln.workers.heartbeat import LeaseHeartbeat
from torchkiln.workers.ranks import SOLO, Ranks
from torchkiln.workers.retired_files import RetiredFiles
from torchkiln.workers.training import (
    Diverged,
    FitOutcome,
    FitResult,
    TrainState,
    fit,
    new_state,
    to_device,
)

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.25


def data_root(settings: Settings) -> DataRoot:
    """Where this worker's jobs find their data sets."""
    return DataRoot(
        settings.data_dir,
        settings.allow_download,
        settings.datasets_dir,
        settings.max_decoded_bytes,
    )


class JobFailure(Exception):
    """A job that cannot run; the message is stored on the job for the user."""


@dataclass
class EpochRecorder:
    """Buffers per-epoch metrics and writes them at most every ``FLUSH_INTERVAL_S``.

    Tiny models run thousands of epochs a second: one transaction per epoch would make the
    database, not training, the bottleneck.
    """

    engine: Engine
    lease: Lease
    pending: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    flushed_at: float = field(default_factory=time.monotonic)

    def add(self, epoch: int, metrics: dict[str, float]) -> None:
        self.pending.append((epoch, metrics))
        if time.monotonic() - self.flushed_at >= FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        progress.record_epochs(self.engine, self.lease, self.pending)
        self.pending, self.flushed_at = [], time.monotonic()


class JobRun:
    """A claimed job, from its first heartbeat to finished, failed, cancelled or handed back."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        job: Job,
        *,
        device: str,
        worker_id: int | None,
        beat_interval_s: float,
        should_pause: Callable[[], bool],
        ranks: Ranks = SOLO,
    ) -> None:
        assert job.id is not None
        self.settings, self.engine, self.job, self.device = settings, engine, job, device
        self.lease = Lease(job_id=job.id, attempt=job.attempts)
        self.heart = LeaseHeartbeat(
            engine,
            self.lease,
            lease_s=settings.lease_s,
            interval_s=beat_interval_s,
            worker_id=worker_id,
        )
        # Warm shutdown: the epoch in progress finishes, then the job goes back to the queue.
        self.should_pause = should_pause
        # A distributed job's rank 0 runs this, with the other ranks in step (distributed.py).
        self.ranks = ranks
        self.best = BestKeeper(watch=None)  # replaced once the job's options are parsed
        # Retention's dropped files outlive their rows briefly, for readers that picked them.
        self.store = settings.artifact_store()
        self.retired = RetiredFiles(self.store)

    def perform(self) -> None:
        """Train the job to its end, recording every outcome on the job row."""
        job, lease, heart = self.job, self.lease, self.heart
        heart.start()
        remote = None if self.store.is_local else self.store
        job_log = job_logs.attach(self.settings.artifacts_dir, lease.job_id, remote)
        logger.info("job %s (%s): attempt %s", lease.job_id, job.model, lease.attempt)
        try:
            self.execute()
        except (JobFailure, Diverged, DataUnavailable, MetricMissing) as error:
            logger.warning("job %s failed: %s", job.id, error)
            heart.stop()
            fail_job(self.engine, lease, str(error))
        except torch.OutOfMemoryError as error:
            # Retrying the same spec on the same device would run out of memory again.
            logger.warning("job %s ran out of memory on %s", job.id, self.device)
            heart.stop()
            fail_job(self.engine, lease, f"out of memory on {self.device}: {error}")
        except Exception as error:
            logger.exception("job %s failed", job.id)
            heart.stop()
            fail_job(self.engine, lease, f"{type(error).__name__}: {error}")
        finally:
            heart.stop()
            job_log.close()
            # A write cut short by an exception cleans up after itself; this catches any
            # other way one was left. Not once the lease is lost: the folder is the new
            # owner's, and so are the temp files it may be writing.
            if not heart.is_lost.is_set():
                self.tidy_up()

    def tidy_up(self) -> None:
        """Delete retired checkpoints and half writes; the job's outcome is already recorded,
        so an unreachable object store only leaves garbage (the next attempt, or a bucket
        lifecycle rule, removes it)."""
        try:
            self.retired.remove_all()
            self.store.remove_unfinished(job_prefix(self.lease.job_id))
        except Exception:  # OSError from s3fs, or botocore's own connection errors
            logger.warning("job %s: could not tidy its artifacts", self.lease.job_id, exc_info=True)

    def execute(self) -> None:
        job, lease, heart = self.job, self.lease, self.heart
        spec = REGISTRY.get(job.model)
        if spec is None:
            raise JobFailure(f"model {job.model!r} is not in this worker's catalogue")
        options = spec.parse_options(job.params)
        # A model whose data come from its options (sequential) runs as the spec for them.
        spec = spec.for_options(options)
        device = resolve_device(job.device_requested, self.device)
        mark_started(self.engine, lease, device=str(device), torch_version=torch.__version__)
        fetch_datasets(self.store, self.settings.datasets_dir, lineage_ids(job.params))
        data = to_device(spec.load_data(options, data_root(self.settings)), device)
        self.best = BestKeeper(options.watch, options.keep_last, options.keep_best)
        state = self.initial_state(spec, options, device)
        self.ranks.share(state, spec.name)
        recorder = EpochRecorder(self.engine, lease)
        sinks = job_logs.epoch_sinks(self.settings.artifacts_dir, lease.job_id, state.epoch)
        interval = options.checkpoint_interval()

        def on_epoch(state: TrainState, metrics: dict[str, float]) -> None:
            recorder.add(state.epoch, metrics)
            self.best.observe(state, metrics, spec.name)
            sinks.add(state.epoch, metrics)
            if state.epoch % interval == 0 and state.epoch < options.epochs:
                recorder.flush()
                self.checkpoint(spec, state, is_final=False)

        halving = sweeps.halving_for(self.engine, job)

        def at_rung(state: TrainState, metrics: dict[str, float]) -> str | None:
            """A sweep child with halving goes on past a rung only in the top part there."""
            if halving is None or state.epoch not in halving.rungs:
                return None
            recorder.flush()  # siblings reaching this rung later compare against this value
            value = metric_value(metrics, halving.metric, "sweep")
            return halving.decide(lease.job_id, state.epoch, value)

        try:
            result = fit(
                spec,
                options,
                data,
                state,
                on_epoch=on_epoch,
                should_stop=heart.should_stop,
                should_pause=self.should_pause,
                should_end=at_rung,
                fused_steps=self.settings.fused_mlp_step,
                ranks=self.ranks,
            )
        finally:
            recorder.flush()
            sinks.close()
        self.conclude(spec, state, result)

    def conclude(self, spec: ModelSpec, state: TrainState, result: FitResult) -> None:
        lease, heart = self.lease, self.heart
        job_id = lease.job_id
        if result.outcome in (FitOutcome.COMPLETED, FitOutcome.STOPPED_EARLY):
            self.checkpoint(spec, state, is_final=True)
            # The success marker makes every cache look again; what /predict answers moves
            # only with an alias, whose marker is touched after the commit below.
            announce_success(self.store, spec.name, job_id)
            heart.stop()  # before each final transition, see LeaseHeartbeat.stop
            finished = finish_and_promote(self.engine, lease, stop_reason=result.reason)
            if finished.moved_aliases:
                # After the commit: a cache that sees the new marker sees the moved alias.
                touch_aliases(self.store, spec.name)
                logger.info("job %s is now %s", job_id, ", ".join(finished.moved_aliases))
            logger.info(
                "job %s succeeded after %s epochs%s",
                job_id,
                state.epoch,
                f" ({result.reason})" if result.reason else "",
            )
        elif heart.is_lost.is_set():
            logger.warning("job %s: stopped, another worker owns it now", job_id)
        elif heart.is_cancel_requested.is_set():
            # The partial epoch is dropped: the last checkpoint stays the newest.
            heart.stop()
            mark_cancelled(self.engine, lease)
            logger.info("job %s cancelled at epoch %s", job_id, state.epoch)
        else:
            # Warm shutdown: the epoch finished, so this checkpoint resumes exactly.
            self.checkpoint(spec, state, is_final=False)
            heart.stop()
            release_job(self.engine, lease)
            logger.info("job %s handed back to the queue at epoch %s", job_id, state.epoch)

    def initial_state(self, spec: ModelSpec, options: Any, device: torch.device) -> TrainState:
        """A fresh network, resumed from this job's checkpoint or started from ``init_from``."""
        lease = self.lease
        state = new_state(spec, options, device)
        rewind = progress.rewind_to_checkpoint(self.engine, lease)
        self.unlink(rewind.stale_paths)
        # An earlier attempt killed mid-write (SIGKILL, a lost host) left its temp file, and
        # perhaps files retention had dropped but not yet deleted.
        remove_stale_checkpoints(self.store, job_prefix(lease.job_id), rewind.kept_paths)
        if rewind.best is not None:
            self.best.epoch, self.best.value = rewind.best.epoch, rewind.best.metric_value
        checkpoint = rewind.checkpoint
        if checkpoint is not None:
            payload = fetch_checkpoint(self.store, checkpoint.path, device, checkpoint.sha256)
            restore_state(state, payload)
            logger.info("job %s resumes from epoch %s", lease.job_id, state.epoch)
        elif options.init_from is not None:
            state.module.load_state_dict(self.weights_of(options.init_from, spec, device))
        return state

    def weights_of(self, job_id: int, spec: ModelSpec, device: torch.device) -> dict[str, Any]:
        with read_session(self.engine) as session:
            source = session.get(Job, job_id)
            checkpoint = progress.serving_checkpoint(session, job_id) if source else None
        if source is None or source.model != spec.name or checkpoint is None:
            raise JobFailure(f"init_from={job_id}: no checkpoint of a {spec.name} job with that id")
        return fetch_checkpoint(self.store, checkpoint.path, device, checkpoint.sha256)["model"]

    def checkpoint(self, spec: ModelSpec, state: TrainState, is_final: bool) -> None:
        """Write the pending best (if any), then the last; retention drops the oldest of each."""
        folder = Path(job_prefix(self.lease.job_id))
        best = self.best.take_pending()
        if best is not None:
            self.save(
                best,
                folder / f"epoch-{self.best.epoch:06d}.best.pt",
                CheckpointKind.BEST,
                metric_value=self.best.value,
            )
        self.save(
            checkpoint_payload(state, spec.name),
            folder / f"epoch-{state.epoch:06d}.pt",
            CheckpointKind.LAST,
            is_final=is_final,
        )

    def save(
        self,
        payload: dict[str, Any],
        relative: Path,
        kind: CheckpointKind,
        *,
        is_final: bool = False,
        metric_value: float | None = None,
    ) -> None:
        saved = store_checkpoint(self.store, relative.as_posix(), payload)
        record = progress.CheckpointFile(
            epoch=int(payload["epoch"]),
            path=relative.as_posix(),
            sha256=saved.sha256,
            size_bytes=saved.size_bytes,
            is_final=is_final,
            kind=kind,
            metric_value=metric_value,
        )
        keep = self.best.keep_best if kind == CheckpointKind.BEST else self.best.keep_last
        self.retired.retire(progress.record_checkpoint(self.engine, self.lease, record, keep=keep))

    def unlink(self, paths: list[str]) -> None:
        for path in paths:
            self.store.delete(path)
