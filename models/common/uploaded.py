"""Options of the models that train on uploaded datasets: the dataset ids and their lineage.

At submit time the service passes ``context={"dataset_lookup": lookup}``; the options then
record each dataset's id, name, sha256, kind and schema as ``lineage``, so a stored job
parses (and serves) without the dataset, even after it is deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationInfo, model_validator

from torchkiln.models.common.datasets import DatasetOptions
from torchkiln.models.common.registry import DataRoot, DataUnavailable

ROLES = (("dataset", "train"), ("test_dataset", "test"))


class UploadedOptions(DatasetOptions):
    """A dataset id (and an optional test dataset id) of ``KIND``, with their lineage."""

    KIND: ClassVar[str] = "table"

    dataset: int = Field(ge=1, le=2**31 - 1, description="The uploaded dataset's id.")
    test_dataset: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Another uploaded dataset to test on each epoch."
    )
    lineage: dict[str, Any] | None = Field(
        None,
        description="Filled at submit time: the datasets' id, name, sha256 and schema.",
        json_schema_extra={"readOnly": True},
    )

    @model_validator(mode="before")
    @classmethod
    def _seed_recipe_first(cls, params: Any) -> Any:
        # Before DatasetOptions fills momentum 0 for a non-SGD default optimizer: the seed
        # recipe's own optimizer and momentum must win over that filler.
        if isinstance(params, dict) and params.get("preset") == "seed":
            return {**cls.SEED_RECIPE, **params}
        return params

    @model_validator(mode="before")
    @classmethod
    def _fill_lineage(cls, params: Any, info: ValidationInfo) -> Any:
        lookup = (info.context or {}).get("dataset_lookup")
        if not isinstance(params, dict):
            return params
        return with_lineage(params, lookup, ROLES, (cls.KIND,))

    def dataset_schema(self, role: str = "train") -> dict[str, Any] | None:
        """The recorded schema of the train or test dataset (None: no such dataset)."""
        return recorded_schema(self.lineage, role)


def recorded_schema(lineage: dict[str, Any] | None, role: str = "train") -> dict[str, Any] | None:
    """The schema ``lineage`` records for the dataset of ``role`` (None: no such dataset)."""
    for entry in (lineage or {}).get("datasets", []):
        if entry.get("role") == role:
            return entry["schema"]
    return None


def with_lineage(
    params: dict[str, Any],
    lookup: Callable[[int], dict[str, Any]] | None,
    roles: tuple[tuple[str, str], ...],
    kinds: tuple[str, ...],
) -> dict[str, Any]:
    """``params`` with ``lineage`` recorded for each dataset id under ``roles``' keys.

    Without a lookup (a stored job) the recorded lineage must already be there.
    """
    if lookup is None:
        if params.get("lineage") is None:
            raise ValueError(
                "dataset lineage missing: submit the job through POST /jobs, which records it"
            )
        return params
    datasets = []
    for key, role in roles:
        dataset_id = params.get(key)
        if dataset_id is None or isinstance(dataset_id, bool) or not isinstance(dataset_id, int):
            continue  # the field's own validation names the mistake
        try:
            found = lookup(dataset_id)
        except LookupError:
            raise ValueError(
                f"{key}: dataset {dataset_id} does not exist; upload one with POST /datasets"
            ) from None
        if found["kind"] not in kinds:
            raise ValueError(
                f"{key}: dataset {dataset_id} is {_a(found['kind'])} dataset; this model "
                f"trains on {' or '.join(map(_a, kinds))} dataset"
            )
        datasets.append(
            {
                **{k: found[k] for k in ("id", "name", "sha256", "kind")},
                "role": role,
                "schema": found["schema"],
            }
        )
    return {**params, "lineage": {"datasets": datasets}}


def _a(kind: str) -> str:
    return {"table": "a table", "images": "an image"}.get(kind, repr(kind))


def dataset_dir(data_root: DataRoot, dataset_id: int) -> Path:
    """``<datasets>/<id>``, or DataUnavailable naming what is missing."""
    if data_root.datasets is None:
        raise DataUnavailable("no datasets directory is configured (TORCHKILN_DATASETS_DIR)")
    directory = data_root.datasets / str(dataset_id)
    if not (directory / "schema.json").is_file():
        raise DataUnavailable(
            f"dataset {dataset_id} not found in {data_root.datasets}: was it deleted? "
            "Upload it again with POST /datasets"
        )
    return directory
