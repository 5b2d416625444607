"""A thread that renews a running job's lease and brings back its cancel flag."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import Engine

from torchkiln.service.store.jobs import Lease, heartbeat
from torchkiln.service.store.worker_processes import beat_worker

logger = logging.getLogger(__name__)


class LeaseHeartbeat(threading.Thread):
    """Beats every ``interval_s`` while training runs; the training loop only reads flags."""

    def __init__(
        self,
        engine: Engine,
        lease: Lease,
        *,
        lease_s: float,
        interval_s: float,
        worker_id: int | None = None,
    ) -> None:
        super().__init__(name=f"heartbeat-job-{lease.job_id}", daemon=True)
        self.engine, self.lease, self.lease_s, self.interval_s = engine, lease, lease_s, interval_s
        self.worker_id = worker_id
        self.is_cancel_requested = threading.Event()
        self.is_lost = threading.Event()
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                reply = heartbeat(self.engine, self.lease, lease_s=self.lease_s)
                if self.worker_id is not None:
                    beat_worker(self.engine, self.worker_id, job_id=self.lease.job_id)
            except Exception:
                # A busy database must not kill the job; the next beat tries again.
                logger.warning("heartbeat failed for job %s", self.lease.job_id, exc_info=True)
                continue
            if not reply.is_owner:
                logger.warning("job %s: lease lost to another worker", self.lease.job_id)
                self.is_lost.set()
                return
            if reply.is_cancel_requested:
                self.is_cancel_requested.set()

    def should_stop(self) -> bool:
        return self.is_cancel_requested.is_set() or self.is_lost.is_set()

    def stop(self) -> None:
        """No beat after this returns. Called before the job's final transition: a beat
        after it would find the lease gone and report it lost to another worker."""
        self._stopped.set()
        if self.is_alive():
            self.join(timeout=5)
