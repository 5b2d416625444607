"""Two-signal shutdown, as in rq: the first SIGTERM/SIGINT is warm, the second is cold."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from torchkiln.workers.pool import WorkerPool

logger = logging.getLogger(__name__)


class ShutdownSignals:
    """Turns SIGTERM/SIGINT into ``pool.request_stop`` and then ``pool.request_force_stop``.

    ``requested`` is set on the first signal, for a main thread that waits for it.
    """

    def __init__(self, pool: WorkerPool | None) -> None:
        self.pool = pool
        self.requested = threading.Event()

    def install(self) -> None:
        """(Re)install the handlers; call it again after a library that replaced them."""
        signal.signal(signal.SIGINT, self.handle)
        signal.signal(signal.SIGTERM, self.handle)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        # A pool that is already stopping (say, uvicorn's own handler saw the first signal
        # and the pool's warm stop is under way) makes any further signal the cold one.
        is_cold = self.requested.is_set() or (self.pool is not None and self.pool.is_stopping)
        self.requested.set()
        if self.pool is None:
            return
        if is_cold:
            logger.warning("%s again: cold stop, killing the workers", name)
            self.pool.request_force_stop()
        else:
            logger.info("%s: warm stop; send it again to kill the workers now", name)
            self.pool.request_stop()
