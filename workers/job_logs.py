"""Per-job logs and epoch sinks, hooked into ``workers.job_run`` with a line or two each.

While a job runs, its records carry its id (see ``service.store.log_records``) and a file
handler copies them as JSON lines to ``<artifacts_dir>/jobs/<id>/log.jsonl``, which
``GET /jobs/{id}/logs`` reads. A resumed attempt appends to the same file. With an object
store the file is still written locally (objects cannot be appended to), fetched from the
store before a resumed attempt and copied back at each attempt's end.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from torchkiln.service.store.artifact_store import ArtifactStore
from torchkiln.service.store.checkpoint_files import job_log_key, job_log_path
from torchkiln.service.store.log_records import JobIdFilter, JsonFormatter, current_job_id
from torchkiln.workers.tensorboard import Board, open_board

logger = logging.getLogger(__name__)

# Tiny models finish thousands of epochs a second: one progress line per interval at most.
PROGRESS_INTERVAL_S = 5.0


class _OnlyJob(logging.Filter):
    """Keeps one job's records: the worker's other threads log without a job id."""

    def __init__(self, job_id: int) -> None:
        super().__init__()
        self.job_id = job_id

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "job_id", None) == self.job_id


class JobLog:
    """The job id in the logging context plus the job's own log file, until ``close``."""

    def __init__(self, artifacts_dir: Path, job_id: int, store: ArtifactStore | None) -> None:
        path = job_log_path(artifacts_dir, job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.store, self.key = path, store, job_log_key(job_id)
        if store is not None and not path.exists() and store.exists(self.key):
            path.write_bytes(store.get_bytes(self.key))  # an earlier attempt's, elsewhere
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(JsonFormatter())
        self.handler.addFilter(JobIdFilter())
        self.handler.addFilter(_OnlyJob(job_id))
        self.token = current_job_id.set(job_id)
        logging.getLogger().addHandler(self.handler)

    def close(self) -> None:
        logging.getLogger().removeHandler(self.handler)
        self.handler.close()
        current_job_id.reset(self.token)
        if self.store is not None:
            try:
                self.store.put_file(self.key, self.path)
            except Exception:  # the log is a convenience: the job's outcome stands
                logger.warning("could not copy the log to %s", self.store.describe(self.key))


def attach(artifacts_dir: Path, job_id: int, store: ArtifactStore | None = None) -> JobLog:
    """Start logging for ``job_id``; call ``close()`` when the attempt ends. ``store``: an
    object store that keeps a copy of the log (None where the artifacts are local)."""
    return JobLog(artifacts_dir, job_id, store)


@dataclass
class EpochSinks:
    """Where each finished epoch goes besides the database: a progress line, TensorBoard."""

    board: Board
    logged_at: float = field(default_factory=time.monotonic)
    unlogged: tuple[int, dict[str, float]] | None = None

    def add(self, epoch: int, metrics: dict[str, float]) -> None:
        self.board.add(epoch, metrics)
        self.unlogged = (epoch, metrics)
        if time.monotonic() - self.logged_at >= PROGRESS_INTERVAL_S:
            self.log_progress()

    def log_progress(self) -> None:
        if self.unlogged is not None:
            epoch, metrics = self.unlogged
            logger.info("epoch %s: %s", epoch, _describe(metrics))
            self.unlogged, self.logged_at = None, time.monotonic()

    def close(self) -> None:
        """The last epoch's line (whatever the interval), then the TensorBoard file."""
        self.log_progress()
        self.board.close()


def epoch_sinks(artifacts_dir: Path, job_id: int, done_epochs: int) -> EpochSinks:
    """Sinks for a job that has ``done_epochs`` behind it (0, or its checkpoint's epoch)."""
    return EpochSinks(open_board(artifacts_dir, job_id, done_epochs))


def _describe(metrics: dict[str, float]) -> str:
    return " ".join(f"{name}={value:.4g}" for name, value in metrics.items())
