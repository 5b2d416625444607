"""Every state enum: jobs, sweeps, trials and worker processes. Stored as text, compared as
enum members."""

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def is_finalized(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class WorkerState(StrEnum):
    """What a worker process said it was doing at its last heartbeat."""

    IDLE = "idle"
    BUSY = "busy"
    STOPPED = "stopped"
    LOST = "lost"


class SweepState(StrEnum):
    """A sweep runs from creation; cancelling lasts until its running trials have stopped."""

    RUNNING = "running"
    CANCELLING = "cancelling"
    FINISHED = "finished"
    CANCELLED = "cancelled"

    def is_settled(self) -> bool:
        return self in SWEEP_SETTLED


SWEEP_SETTLED = frozenset({SweepState.FINISHED, SweepState.CANCELLED})

# A trial stopped by successive halving: a succeeded job whose stop reason starts with this.
TRIAL_PRUNED = "pruned"
