"""Settings from the environment (prefix ``TORCHKILN_``), built once per entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from torchkiln.service.store.artifact_store import ArtifactStore, open_store

DEFAULT_HOME = Path(".torchkiln")


class Settings(BaseSettings):
    """Everything configurable. Passed down explicitly; never read at import time."""

    model_config = SettingsConfigDict(env_prefix="TORCHKILN_", extra="ignore")

    database_url: str = Field(
        f"sqlite:///{DEFAULT_HOME / 'torchkiln.db'}",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db.",
    )
    artifacts_dir: Path = Field(DEFAULT_HOME / "artifacts", description="Checkpoints live here.")
    artifacts_url: str | None = Field(
        None,
        description="Checkpoints, exports' sources, logs and markers in an object store instead "
        "(s3://bucket/prefix; endpoint and credentials the standard AWS way). Live logs and "
        "TensorBoard files stay in artifacts_dir.",
    )
    data_dir: Path = Field(DEFAULT_HOME / "data", description="Data sets, torchvision layout.")
    allow_download: bool = Field(False, description="Let workers download missing data sets.")
    datasets_dir: Path = Field(DEFAULT_HOME / "datasets", description="Uploaded datasets.")
    max_dataset_bytes: int = Field(
        2 * 2**30, ge=1, description="Largest dataset upload (bytes, as sent)."
    )
    max_decoded_bytes: int = Field(
        4 * 2**30, ge=1, description="Largest decoded image dataset a job may load (bytes)."
    )
    workers: int | None = Field(
        None, ge=0, le=64, description="Worker processes; default one per GPU, else 1."
    )
    lease_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        # TORCHKILN_LEASE_SECONDS is the name before durations all ended in _s; still read.
        validation_alias=AliasChoices("lease_s", "TORCHKILN_LEASE_S", "TORCHKILN_LEASE_SECONDS"),
        description="A running job's lease; renewed by heartbeat.",
    )
    sqlite_busy_timeout_s: float = Field(
        10.0, gt=0, le=300, description="How long a SQLite write waits for the lock, then 503."
    )
    max_attempts: int = Field(3, ge=1, le=100, description="Worker losses before a job fails.")
    poll_interval_s: float = Field(0.5, gt=0, le=60, description="Idle worker's queue poll.")
    wake_workers: bool = Field(
        True,
        description="Wake idle workers as soon as a job is queued (PostgreSQL LISTEN/NOTIFY; "
        "SQLite: a datagram to each worker on this host); off: they only poll.",
    )
    api_key: SecretStr | None = Field(None, description="If set, required as a Bearer token.")
    train_threads: int | None = Field(
        None, ge=1, le=256, description="torch threads per worker; default: free cores shared."
    )
    mkl_amd_avx512: bool = Field(
        True,
        description="On AMD CPUs with AVX-512, let MKL in the workers use its AVX-512 kernels "
        "(workers/mkl_dispatch.py); false keeps MKL's AVX2 choice.",
    )
    fused_mlp_step: bool = Field(
        True,
        description="Train plain Linear/ReLU networks under SGD with one hand-fused step "
        "(workers/mlp_step.py, same update) instead of autograd + optimizer.",
    )
    predict_threads: int = Field(1, ge=1, le=256, description="torch threads per HTTP process.")
    batching: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Coalesce concurrent predictions of one model version into one forward "
        "pass: auto as each model's catalogue entry says, on or off for every model.",
    )
    batch_max_size: int | None = Field(
        None, ge=1, le=4096, description="Most samples per forward pass (default: the model's)."
    )
    batch_max_wait_s: float | None = Field(
        None,
        ge=0,
        le=0.1,
        description="Longest a queued prediction waits for one still decoding (default: the "
        "model's); a lone request never waits.",
    )
    max_upload_bytes: int = Field(5_000_000, ge=1, description="Largest accepted upload.")
    max_batch_upload_bytes: int = Field(
        25_000_000,
        ge=1,
        description="Largest multipart request (a batch of images, each within max_upload_bytes).",
    )
    max_image_pixels: int = Field(20_000_000, ge=1, description="Largest decoded image.")
    max_request_pixels: int = Field(
        60_000_000,
        ge=1,
        description="Most pixels the images of one request may declare together.",
    )
    max_body_bytes: int = Field(
        2_000_000, ge=1024, description="Largest JSON request body (uploads: max_upload_bytes)."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as text or JSON lines; both carry the job id."
    )
    gang_timeout_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="How long a multi-host job's first node waits for the others; then the "
        "job goes back to the queue saying how many came (the attempt counts).",
    )
    node_address: str | None = Field(
        None,
        description="The address other hosts reach this one at, published as a multi-host "
        "job's rendezvous endpoint; default: the host name.",
    )
    cancel_grace_s: float = Field(
        30.0, gt=0, le=3600, description="A cancelled job's worker is killed after this long."
    )

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, url: str) -> str:
        # Hosted Postgres URLs come as postgres:// or postgresql://; we speak psycopg 3.
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url.removeprefix(prefix)
        return url

    @field_validator("artifacts_url")
    @classmethod
    def _known_store(cls, url: str | None) -> str | None:
        if url and "://" not in url:
            raise ValueError(f"{url!r} is not a URL: give s3://bucket/prefix (or file:///path)")
        return url or None

    def artifact_store(self) -> ArtifactStore:
        """Where artifacts go: ``artifacts_url`` if set, else ``artifacts_dir``."""
        return open_store(self.artifacts_dir, self.artifacts_url)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """The database file for a file-backed SQLite URL, else None."""
        prefix = "sqlite:///"
        if not self.database_url.startswith(prefix) or ":memory:" in self.database_url:
            return None
        return Path(self.database_url.removeprefix(prefix))
