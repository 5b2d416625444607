"""One worker process: claim → train → heartbeat → finish / fail / release, until told to stop."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from sqlalchemy.engine import Engine
from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import DataRoot, DataUnavailable, ModelSpec
from torchkiln.service.store import progress, sweeps, worker_processes
from torchkiln.service.store.cache_markers import announce_success
from torchkiln.service.store.checkpoint_files import job_dir, load_checkpoint, save_checkpoint
from torchkiln.service.store.db import make_engine, read_session
from torchkiln.service.store.jobs import (
    Lease,
    WorkerIdentity,
    claim_next_job,
    fail_job,
    finish_job,
    mark_cancelled,
    mark_started,
    release_job,
    requeue_stale_jobs,
)
from torchkiln.service.store.log_records import configure_logging
from torchkiln.service.store.settings import Settings
from torchkiln.service.store.tables import CheckpointKind, Job
from torchkiln.workers import job_logs
from torchkiln.workers.best_keeper import BestKeeper
from torchkiln.workers.checkpoint_payload import checkpoint_payload, restore_state
from torchkiln.workers.devices import claimable_requests, resolve_device
from torchkiln.workers.early_stopping import MetricMissing, metric_value
from torchkiln.workers.heartbeat import Heart
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


class StopSignal(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


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


class Worker:
    """Claims jobs this worker's device can run and trains them one at a time."""

    def __init__(
        self, settings: Settings, engine: Engine, *, device: str, stop: StopSignal
    ) -> None:
        self.settings, self.engine, self.device, self.stop = settings, engine, device, stop
        self.identity = WorkerIdentity.current(os.getpid())
        self.maintained_at = 0.0
        self.beaten_at = 0.0
        self.beat_interval_s = min(settings.lease_seconds / 3, 1.0)
        self.worker_id: int | None = None
        self.best = BestKeeper(watch=None)  # replaced per job in execute_job

    def work(self) -> None:
        self.worker_id = worker_processes.register_worker(self.engine, self.identity, self.device)
        logger.info("worker %s:%s on %s ready", self.identity.host, self.identity.pid, self.device)
        try:
            self.work_loop()
        finally:
            worker_processes.sign_off_worker(self.engine, self.worker_id)

    def work_loop(self) -> None:
        while not self.stop.is_set():
            self.maintain()
            self.beat_idle()
            job = claim_next_job(
                self.engine,
                worker=self.identity,
                devices=claimable_requests(self.device),
                lease_s=self.settings.lease_seconds,
            )
            if job is None:
                self.stop.wait(self.settings.poll_interval_s)
                continue
            self.perform_job(job)

    def maintain(self) -> None:
        """Requeue jobs whose workers died; every worker does it, at most twice a lease."""
        now = time.monotonic()
        if now - self.maintained_at >= self.settings.lease_seconds / 2:
            self.maintained_at = now
            for job_id in requeue_stale_jobs(self.engine):
                logger.warning("job %s: lease expired, requeued or failed", job_id)
            worker_processes.prune_workers(self.engine)

    def beat_idle(self) -> None:
        """Tell the worker table this process is alive while it waits for work."""
        now = time.monotonic()
        if self.worker_id is not None and now - self.beaten_at >= self.beat_interval_s:
            self.beaten_at = now
            worker_processes.beat_worker(self.engine, self.worker_id, job_id=None)

    def perform_job(self, job: Job) -> None:
        assert job.id is not None
        lease = Lease(job_id=job.id, attempt=job.attempts)
        heart = Heart(
            self.engine,
            lease,
            lease_s=self.settings.lease_seconds,
            interval_s=self.beat_interval_s,
            worker_id=self.worker_id,
        )
        heart.start()
        job_log = job_logs.attach(self.settings.artifacts_dir, job.id)
        logger.info("job %s (%s): attempt %s", job.id, job.model, job.attempts)
        try:
            self.execute_job(job, lease, heart)
        except (JobFailure, Diverged, DataUnavailable, MetricMissing) as error:
            logger.warning("job %s failed: %s", job.id, error)
            fail_job(self.engine, lease, str(error))
        except torch.OutOfMemoryError as error:
            # Retrying the same spec on the same device would run out of memory again.
            logger.warning("job %s ran out of memory on %s", job.id, self.device)
            fail_job(self.engine, lease, f"out of memory on {self.device}: {error}")
        except Exception as error:
            logger.exception("job %s failed", job.id)
            fail_job(self.engine, lease, f"{type(error).__name__}: {error}")
        finally:
            heart.stop()
            job_log.close()

    def execute_job(self, job: Job, lease: Lease, heart: Heart) -> None:
        spec = REGISTRY.get(job.model)
        if spec is None:
            raise JobFailure(f"model {job.model!r} is not in this worker's catalogue")
        options = spec.parse_options(job.params)
        device = resolve_device(job.device_requested, self.device)
        mark_started(self.engine, lease, device=str(device), torch_version=torch.__version__)
        data_root = DataRoot(self.settings.data_dir, self.settings.allow_download)
        data = to_device(spec.load_data(options, data_root), device)
        self.best = BestKeeper(options.watch, options.keep_last, options.keep_best)
        state = self.initial_state(spec, options, device, lease)
        recorder = EpochRecorder(self.engine, lease)
        sinks = job_logs.epoch_sinks(self.settings.artifacts_dir, lease.job_id, state.epoch)
        interval = options.checkpoint_interval()

        def on_epoch(state: TrainState, metrics: dict[str, float]) -> None:
            recorder.add(state.epoch, metrics)
            self.best.observe(state, metrics, spec.name)
            sinks.add(state.epoch, metrics)
            if state.epoch % interval == 0 and state.epoch < options.epochs:
                recorder.flush()
                self.checkpoint(spec, state, lease, is_final=False)

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
                should_pause=self.stop.is_set,
                should_end=at_rung,
                fused_steps=self.settings.fused_mlp_step,
            )
        finally:
            recorder.flush()
            sinks.close()
        self.conclude(spec, state, lease, heart, result)

    def conclude(
        self, spec: ModelSpec, state: TrainState, lease: Lease, heart: Heart, result: FitResult
    ) -> None:
        job_id = lease.job_id
        if result.outcome in (FitOutcome.COMPLETED, FitOutcome.STOPPED_EARLY):
            self.checkpoint(spec, state, lease, is_final=True)
            # Announce first: a cache that sees the marker before the commit just doesn't
            # cache (see service.predictions), while the reverse order could serve stale.
            announce_success(self.settings.artifacts_dir, spec.name, job_id)
            finish_job(self.engine, lease, stop_reason=result.reason)
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
            mark_cancelled(self.engine, lease)
            logger.info("job %s cancelled at epoch %s", job_id, state.epoch)
        else:
            # Warm shutdown: the epoch finished, so this checkpoint resumes exactly.
            self.checkpoint(spec, state, lease, is_final=False)
            release_job(self.engine, lease)
            logger.info("job %s handed back to the queue at epoch %s", job_id, state.epoch)

    def initial_state(
        self, spec: ModelSpec, options: Any, device: torch.device, lease: Lease
    ) -> TrainState:
        """A fresh network, resumed from this job's checkpoint or started from ``init_from``."""
        state = new_state(spec, options, device)
        rewind = progress.rewind_to_checkpoint(self.engine, lease)
        self.unlink(rewind.stale_paths)
        if rewind.best is not None:
            self.best.epoch, self.best.value = rewind.best.epoch, rewind.best.metric_value
        checkpoint = rewind.checkpoint
        if checkpoint is not None:
            path = self.settings.artifacts_dir / checkpoint.path
            restore_state(state, load_checkpoint(path, device, checkpoint.sha256))
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
        path = self.settings.artifacts_dir / checkpoint.path
        return load_checkpoint(path, device, checkpoint.sha256)["model"]

    def checkpoint(self, spec: ModelSpec, state: TrainState, lease: Lease, is_final: bool) -> None:
        """Write the pending best (if any), then the last; retention drops the oldest of each."""
        folder = Path(job_dir(Path("."), lease.job_id))
        best = self.best.take_pending()
        if best is not None:
            self.save(
                best,
                folder / f"epoch-{self.best.epoch:06d}.best.pt",
                lease,
                CheckpointKind.BEST,
                metric_value=self.best.value,
            )
        self.save(
            checkpoint_payload(state, spec.name),
            folder / f"epoch-{state.epoch:06d}.pt",
            lease,
            CheckpointKind.LAST,
            is_final=is_final,
        )

    def save(
        self,
        payload: dict[str, Any],
        relative: Path,
        lease: Lease,
        kind: CheckpointKind,
        *,
        is_final: bool = False,
        metric_value: float | None = None,
    ) -> None:
        saved = save_checkpoint(payload, self.settings.artifacts_dir / relative)
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
        self.unlink(progress.record_checkpoint(self.engine, lease, record, keep=keep))

    def unlink(self, paths: list[str]) -> None:
        for path in paths:
            (self.settings.artifacts_dir / path).unlink(missing_ok=True)


def run_worker(settings: Settings, device: str, threads: int, stop: Any) -> None:
    """Entry point of a worker process (spawned by ``workers.pool``)."""
    configure_logging(settings.log_format)
    # Ctrl-C reaches the whole process group; the pool decides how this worker stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    local_stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        local_stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    torch.set_num_threads(threads)
    engine = make_engine(settings)
    try:
        Worker(settings, engine, device=device, stop=_EitherStop(stop, local_stop)).work()
    finally:
        engine.dispose()


@dataclass(frozen=True)
class _EitherStop:
    """Stop when the pool says so, when this process got SIGTERM, or when the pool's process
    is gone (SIGKILLed alone): an orphan would otherwise train on with nobody to stop it."""

    pool: Any
    local: threading.Event
    parent_pid: int = field(default_factory=os.getppid)

    def is_set(self) -> bool:
        return self.pool.is_set() or self.local.is_set() or os.getppid() != self.parent_pid

    def wait(self, timeout: float | None = None) -> bool:
        deadline = time.monotonic() + (timeout or 0)
        while not self.is_set() and time.monotonic() < deadline:
            self.local.wait(0.1)
        return self.is_set()
