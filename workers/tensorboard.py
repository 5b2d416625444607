"""TensorBoard event files per job, when the optional ``tensorboard`` package is installed.

``tensorboard --logdir <artifacts_dir>/jobs`` then shows every job, one run per job id.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any, Protocol

from torchkiln.service.store.checkpoint_files import job_dir

logger = logging.getLogger(__name__)

# Often enough for a live view; SummaryWriter's default (120 s) looks stuck.
FLUSH_S = 5


class Board(Protocol):
    def add(self, epoch: int, metrics: dict[str, float]) -> None: ...
    def close(self) -> None: ...


class NoBoard:
    """Stands in when tensorboard is not installed."""

    def add(self, epoch: int, metrics: dict[str, float]) -> None:
        return None

    def close(self) -> None:
        return None


class SummaryBoard:
    """One scalar per metric per epoch, the epoch as the step."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def add(self, epoch: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, epoch)

    def close(self) -> None:
        self.writer.close()


def has_tensorboard() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def board_dir(artifacts_dir: Path, job_id: int) -> Path:
    return job_dir(artifacts_dir, job_id) / "tensorboard"


def open_board(artifacts_dir: Path, job_id: int, done_epochs: int) -> Board:
    """A writer for the job's epochs after ``done_epochs``, or a no-op without tensorboard."""
    if not has_tensorboard():
        return NoBoard()
    from torch.utils.tensorboard import SummaryWriter

    # A resumed job retrains the epochs after its checkpoint: purge_step makes TensorBoard
    # drop the earlier attempt's events from that step on, so each epoch shows once.
    purge_step = done_epochs + 1 if done_epochs > 0 else None
    writer = SummaryWriter(
        str(board_dir(artifacts_dir, job_id)), purge_step=purge_step, flush_secs=FLUSH_S
    )
    return SummaryBoard(writer)
