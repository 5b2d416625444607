"""Every state enum: jobs, sweeps, trials, worker processes and early stops. Stored as text,
compared as enum members."""

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


class TrialState(StrEnum):
    """A sweep trial's state: its job's, or pruned (stopped by successive halving)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PRUNED = "pruned"


class StopKind(StrEnum):
    """Why a succeeded job ended before its last epoch; its ``stop_reason`` says it in words."""

    EARLY_STOPPING = "early_stopping"
    PRUNED = "pruned"


# The words each kind's stop reason begins with.
EARLY_STOPPED = "early stopping"
# A trial stopped by successive halving: a succeeded job whose stop reason starts with this.
TRIAL_PRUNED = "pruned"
_STOP_WORDS = {StopKind.EARLY_STOPPING: EARLY_STOPPED, StopKind.PRUNED: TRIAL_PRUNED}


def stop_kind(stop_reason: str | None) -> StopKind | None:
    """The kind of a stop reason, read from its first words; None for no (or another) one."""
    return next(
        (kind for kind, words in _STOP_WORDS.items() if (stop_reason or "").startswith(words)),
        None,
    )
