"""One worker process: claim a job → run it (``JobRun``) → claim the next, until told to stop."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from sqlalchemy.engine import Engine

from torchkiln.service.store import worker_processes
from torchkiln.service.store.db import make_engine
from torchkiln.service.store.devices import claimable_requests
from torchkiln.service.store.gangs import join_gang
from torchkiln.service.store.jobs import WorkerIdentity, claim_next_job, requeue_stale_jobs
from torchkiln.service.store.log_records import configure_logging
from torchkiln.service.store.settings import Settings
from torchkiln.workers.distributed import DistributedRun, is_distributed
from torchkiln.workers.job_run import JobRun
from torchkiln.workers.wake_listener import (
    PollOnly,
    WakeListener,
    open_listener,
    wait_for_work,
)

logger = logging.getLogger(__name__)


class StopSignal(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class Worker:
    """Claims jobs this worker's device can run and trains them one at a time."""

    def __init__(
        self, settings: Settings, engine: Engine, *, device: str, stop: StopSignal
    ) -> None:
        self.settings, self.engine, self.device, self.stop = settings, engine, device, stop
        self.identity = WorkerIdentity.current(os.getpid())
        self.maintained_at = 0.0
        self.beaten_at = 0.0
        self.beat_interval_s = min(settings.lease_s / 3, 1.0)
        self.worker_id: int | None = None
        self.wakeups: WakeListener = PollOnly()

    def work(self) -> None:
        # Listening before the first claim: a job queued after that claim wakes this worker.
        self.wakeups = open_listener(self.settings)
        self.worker_id = worker_processes.register_worker(self.engine, self.identity, self.device)
        logger.info("worker %s:%s on %s ready", self.identity.host, self.identity.pid, self.device)
        try:
            self.work_loop()
        finally:
            worker_processes.sign_off_worker(self.engine, self.worker_id)
            self.wakeups.close()

    def work_loop(self) -> None:
        while not self.stop.is_set():
            self.maintain()
            self.beat_idle()
            devices = claimable_requests(self.device)
            # A gang short of nodes comes first: its other nodes are waiting for one.
            job = join_gang(self.engine, devices=devices) or claim_next_job(
                self.engine, worker=self.identity, devices=devices, lease_s=self.settings.lease_s
            )
            if job is None:
                wait_for_work(self.wakeups, self.stop, self.settings.poll_interval_s)
                continue
            # A distributed job's ranks are processes of their own; this one launches them.
            run = DistributedRun if is_distributed(job) else JobRun
            run(
                self.settings,
                self.engine,
                job,
                device=self.device,
                worker_id=self.worker_id,
                beat_interval_s=self.beat_interval_s,
                should_pause=self.stop.is_set,
            ).perform()

    def maintain(self) -> None:
        """Requeue jobs whose workers died; every worker does it, at most twice a lease."""
        now = time.monotonic()
        if now - self.maintained_at >= self.settings.lease_s / 2:
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
