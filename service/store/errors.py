"""Domain errors. No FastAPI here: ``service.api.errors`` maps each to an HTTP status once."""

from __future__ import annotations


class TorchkilnError(Exception):
    """Base for errors a client can cause; the message is shown to the client."""


class JobNotFound(TorchkilnError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job with id {job_id}")


class UnknownModel(TorchkilnError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown model {name!r}; choose one of: {', '.join(sorted(known))}")


class JobNotCancellable(TorchkilnError):
    def __init__(self, job_id: int, status: str) -> None:
        super().__init__(f"job {job_id} is already {status} and cannot be cancelled")


class NoCheckpoint(TorchkilnError):
    """No trained model to answer from; the message says which job to run."""


class VersionNotFound(TorchkilnError):
    """The job exists but trained another model: no version of this one by that id."""

    def __init__(self, job_id: int, trained: str, models: list[str]) -> None:
        super().__init__(
            f"no {' or '.join(models)} version {job_id}: job {job_id} trained {trained!r}"
        )


class PickDisagrees(TorchkilnError):
    """``job_id`` and ``alias`` both given, naming different jobs."""

    def __init__(self, alias: str, aliased: int, job_id: int) -> None:
        super().__init__(f"alias {alias!r} names job {aliased}, not job {job_id}")


class InvalidInput(TorchkilnError):
    """Input that passed schema validation but is still unusable."""


class UnsupportedBody(TorchkilnError):
    """A request body in a format the endpoint does not read."""


class DatabaseBusy(TorchkilnError):
    """The database stayed locked past the busy timeout: retry shortly."""

    def __init__(self) -> None:
        super().__init__("the database is busy; retry in a moment")


class AliasNotFound(TorchkilnError):
    def __init__(self, models: list[str], alias: str) -> None:
        super().__init__(f"no alias {alias!r} for {' or '.join(models)}")


class JobInUse(TorchkilnError):
    """A job that cannot be deleted: it is still running, or something points at it."""


class SweepNotFound(TorchkilnError):
    def __init__(self, sweep_id: int) -> None:
        super().__init__(f"no sweep with id {sweep_id}")


class SweepNotCancellable(TorchkilnError):
    def __init__(self, sweep_id: int, status: str) -> None:
        super().__init__(f"sweep {sweep_id} is already {status} and cannot be cancelled")


class NoSweepWinner(TorchkilnError):
    """A sweep has no succeeded, unpruned trial with a metric value to promote yet."""


class ExportUnavailable(TorchkilnError):
    """An export format whose optional packages are not installed (the message names them)."""


class NoSummary(TorchkilnError):
    """A job of a model without a layer-list summary (the message names those that have one)."""

    def __init__(self, job_id: int, model: str, known: list[str]) -> None:
        super().__init__(
            f"job {job_id} is a {model} job; summaries are for models described as a layer "
            f"list: {', '.join(sorted(known))}"
        )


class DatasetNotFound(TorchkilnError):
    def __init__(self, dataset_id: int) -> None:
        super().__init__(f"dataset {dataset_id} does not exist; upload one with POST /datasets")


class DatasetInUse(TorchkilnError):
    """A dataset that a queued or running job trains on."""


class DatasetNotStored(TorchkilnError):
    """The object store refused a new dataset's copy; the upload kept nothing."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the dataset could not be copied to the object store ({reason}); nothing was kept:"
            " retry the upload"
        )


class DatasetTooLarge(TorchkilnError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the dataset is larger than the limit of {limit} bytes (TORCHKILN_MAX_DATASET_BYTES):"
            " upload a smaller file, or raise the limit"
        )


class DatasetRejected(InvalidInput):
    """An upload that is not a dataset we can store; the message says what to fix."""


class NotATable(UnsupportedBody):
    """An upload that is neither text (CSV/TSV) nor a format we read (gzip, Parquet, ZIP, tar)."""
