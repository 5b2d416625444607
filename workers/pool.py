"""A pool of worker processes: spawn, reap, respawn, and warm or cold shutdown."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from dataclasses import dataclass

from service.settings import Settings
from workers.devices import worker_devices
from workers.worker import run_worker

logger = logging.getLogger(__name__)

# "spawn", not fork: a forked child would share the parent's SQLAlchemy pool, its sockets
# and locks, and any CUDA context; a spawned one starts clean on every platform.
_CONTEXT = multiprocessing.get_context("spawn")
CHECK_INTERVAL_S = 1.0


@dataclass
class _Slot:
    device: str
    process: multiprocessing.process.BaseProcess | None = None


class WorkerPool:
    """N training processes against one database; a GPU host gets one per GPU."""

    def __init__(self, settings: Settings, size: int | None = None) -> None:
        self.settings = settings
        devices = worker_devices(size if size is not None else settings.workers)
        self.slots = [_Slot(device) for device in devices]
        self.threads = max(1, (os.cpu_count() or 1) // max(1, len(self.slots)))
        self.stop_event = _CONTEXT.Event()
        self._monitor_stop = threading.Event()
        self._monitor: threading.Thread | None = None

    @property
    def pids(self) -> list[int]:
        return [s.process.pid for s in self.slots if s.process is not None and s.process.pid]

    def start(self) -> None:
        for index, slot in enumerate(self.slots):
            self._spawn(index, slot)
        self._monitor = threading.Thread(target=self._watch, name="worker-pool", daemon=True)
        self._monitor.start()

    def _spawn(self, index: int, slot: _Slot) -> None:
        slot.process = _CONTEXT.Process(
            target=run_worker,
            args=(self.settings, slot.device, self.threads, self.stop_event),
            name=f"torchkiln-worker-{index}",
            daemon=False,
        )
        slot.process.start()
        logger.info("started worker %s (pid %s) on %s", index, slot.process.pid, slot.device)

    def _watch(self) -> None:
        while not self._monitor_stop.wait(CHECK_INTERVAL_S):
            self.check_workers()

    def check_workers(self) -> None:
        """Reap workers that died and start replacements (their jobs come back by lease)."""
        if self.stop_event.is_set():
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
                process.close()
                self._spawn(index, slot)

    def stop(self, grace_s: float = 30.0) -> None:
        """Warm stop: workers finish the epoch, checkpoint and requeue; then cold: kill."""
        self.stop_event.set()
        self._monitor_stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join(timeout=grace_s)
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive():
                logger.warning("worker pid %s ignored the warm stop; killing", slot.process.pid)
                slot.process.kill()
                slot.process.join(timeout=5)


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {-code}"
    return f"code {code}"
