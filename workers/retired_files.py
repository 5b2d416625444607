"""Checkpoints dropped by retention, deleted a little later rather than at once.

A reader (a download, a prediction) picks a checkpoint by its row and then opens the file;
a job that checkpoints every few milliseconds would otherwise delete the file between the
two, again and again. Once open, a file stays readable after its unlink (and an object
store's GET, once started, completes), so a short grace is enough: readers that still lose
the race retry on the newer row.
"""

from __future__ import annotations

import time
from collections import deque

from torchkiln.service.store.artifact_store import ArtifactStore

# Far longer than a row lookup plus an open; short enough that disk use stays near keep_last.
GRACE_S = 2.0


class RetiredFiles:
    """Keys (in ``store``) whose rows are gone, each deleted once ``grace_s`` has passed."""

    def __init__(self, store: ArtifactStore, grace_s: float = GRACE_S) -> None:
        self.store, self.grace_s = store, grace_s
        self._due: deque[tuple[float, str]] = deque()

    def retire(self, paths: list[str]) -> None:
        now = time.monotonic()
        self._due.extend((now + self.grace_s, path) for path in paths)
        self.remove_due(now)

    def remove_due(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        while self._due and self._due[0][0] <= now:
            self._remove(self._due.popleft()[1])

    def remove_all(self) -> None:
        """At the job's end: its last readers of dropped rows had their grace while it ran."""
        while self._due:
            self._remove(self._due.popleft()[1])

    def _remove(self, path: str) -> None:
        self.store.delete(path)
