"""A pool of worker processes: spawn, reap, respawn, and warm or cold shutdown.

The pool is the one place that sees its workers die, so it also hands their jobs back at
once and kills a worker whose cancelled job outlives the grace period.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from torchkiln.service.store import worker_processes
from torchkiln.service.store.db import make_engine
from torchkiln.service.store.jobs import (
    WorkerIdentity,
    expire_leases_of,
    overdue_cancellations,
    requeue_stale_jobs,
)
from torchkiln.service.store.settings import Settings
from torchkiln.workers.devices import worker_devices
from torchkiln.workers.mkl_dispatch import preloaded, shim_for_this_host
from torchkiln.workers.worker import run_worker

logger = logging.getLogger(__name__)

# "spawn", not fork: a forked child would share the parent's SQLAlchemy pool, its sockets
# and locks, and any CUDA context; a spawned one starts clean on every platform.
_CONTEXT = multiprocessing.get_context("spawn")
CHECK_INTERVAL_S = 1.0
# run_worker's signature: (settings, device, torch threads, the pool's stop event).
WorkerTarget = Callable[[Settings, str, int, Any], None]


@dataclass
class _Slot:
    device: str
    process: multiprocessing.process.BaseProcess | None = None


class WorkerPool:
    """N training processes against one database; a GPU host gets one per GPU."""

    def __init__(
        self, settings: Settings, size: int | None = None, *, target: WorkerTarget = run_worker
    ) -> None:
        self.settings, self.target = settings, target
        devices = worker_devices(size if size is not None else settings.workers)
        self.slots = [_Slot(device) for device in devices]
        self.threads = settings.train_threads or default_threads(len(self.slots))
        self.mkl_shim = shim_for_this_host(settings.mkl_amd_avx512)
        if self.mkl_shim is not None:
            logger.info("workers get MKL's AVX-512 kernels on this AMD CPU (%s)", self.mkl_shim)
        self.host = socket.gethostname()
        self.stop_event = _CONTEXT.Event()
        self._monitor_stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self._engine: Engine | None = None

    @property
    def pids(self) -> list[int]:
        return [s.process.pid for s in self.slots if s.process is not None and s.process.pid]

    @property
    def is_stopping(self) -> bool:
        return self.stop_event.is_set()

    def start(self) -> None:
        self._engine = make_engine(self.settings)
        for index, slot in enumerate(self.slots):
            self._spawn(index, slot)
        self._monitor = threading.Thread(target=self._watch, name="worker-pool", daemon=True)
        self._monitor.start()

    def _spawn(self, index: int, slot: _Slot) -> None:
        slot.process = _CONTEXT.Process(
            target=self.target,
            args=(self.settings, slot.device, self.threads, self.stop_event),
            name=f"torchkiln-worker-{index}",
            daemon=False,
        )
        with preloaded(self.mkl_shim):
            slot.process.start()
        logger.info("started worker %s (pid %s) on %s", index, slot.process.pid, slot.device)

    def _watch(self) -> None:
        while not self._monitor_stop.wait(CHECK_INTERVAL_S):
            try:
                self.check_workers()
                self.enforce_cancel_grace()
            except Exception:
                # A database hiccup must not end the monitor: the next round tries again.
                logger.exception("worker pool check failed")

    def check_workers(self) -> None:
        """Reap workers that died, hand their jobs back now, and start replacements."""
        if self.is_stopping:
            return
        for index, slot in enumerate(self.slots):
            process = slot.process
            if process is not None and not process.is_alive():
                logger.warning(
                    "worker %s (pid %s) exited with %s; respawning",
                    index,
                    process.pid,
                    _describe_exit(process.exitcode),
                )
                self.recover(process)
                process.close()
                self._spawn(index, slot)

    def recover(self, process: multiprocessing.process.BaseProcess) -> None:
        """A dead child's jobs go back to the queue (or fail, or end cancelled) at once."""
        if self._engine is None or process.pid is None or process.exitcode == 0:
            return
        identity = WorkerIdentity(host=self.host, pid=process.pid)
        expired = expire_leases_of(self._engine, identity)
        if expired:
            requeue_stale_jobs(self._engine)
            logger.warning("jobs %s of dead worker pid %s reclaimed", expired, process.pid)
        worker_processes.mark_worker_lost(self._engine, identity)

    def enforce_cancel_grace(self) -> None:
        """Kill a worker whose job was cancelled ``cancel_grace_s`` ago and still runs."""
        if self._engine is None or self.is_stopping:
            return
        overdue = overdue_cancellations(
            self._engine, host=self.host, pids=self.pids, grace_s=self.settings.cancel_grace_s
        )
        by_pid = {s.process.pid: s.process for s in self.slots if s.process is not None}
        for job in overdue:
            process = by_pid[job.worker_pid]
            logger.warning(
                "job %s: worker pid %s ignored the cancel for %ss; killing it",
                job.id,
                job.worker_pid,
                self.settings.cancel_grace_s,
            )
            process.kill()
            process.join(timeout=10)
        # The kill is an abnormal exit: the reaping path ends those jobs cancelled.
        if overdue:
            self.check_workers()

    def request_stop(self) -> None:
        """Warm: each worker finishes its epoch, checkpoints and hands its job back."""
        self.stop_event.set()

    def request_force_stop(self) -> None:
        """Cold: kill the workers now; ``stop`` hands their jobs back."""
        self.stop_event.set()
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive():
                logger.warning("killing worker pid %s (cold stop)", slot.process.pid)
                slot.process.kill()

    def stop(self, grace_s: float = 30.0) -> None:
        """Warm stop, then cold for workers still running after ``grace_s``."""
        self.request_stop()
        self._monitor_stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        deadline = time.monotonic() + grace_s
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive():
                logger.warning("worker pid %s ignored the warm stop; killing", slot.process.pid)
                slot.process.kill()
                slot.process.join(timeout=5)
        for slot in self.slots:
            if slot.process is not None:
                self.recover(slot.process)
        if self._engine is not None:
            self._engine.dispose()


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {-code}"
    return f"code {code}"


def default_threads(pool_size: int) -> int:
    """torch threads per worker: the cores left after one for the HTTP side, shared out.

    Oversubscribed intra-op threads do not just slow down, they thrash: on a busy 2-core
    host one mnist_mlp epoch went from 0.4 s on one thread to 5-36 s on two.
    """
    return max(1, ((os.cpu_count() or 1) - 1) // max(1, pool_size))
