"""Designing a network before training it: a model's summary for given params, its presets.

``POST /models/{name}/summary`` and ``GET /models/{name}/presets`` answer for models whose
spec has the ``describe`` / ``presets`` hooks (``sequential``); others get a 404. Included
before the models router: the paths are deeper than ``/models/{name}``, but the order keeps
that true whatever routes are added there later. ``GET /jobs/{job_id}/summary`` is the same
summary for a submitted job's stored params (``JobPublic.links.summary`` points at it).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import ModelSpec
from torchkiln.models.common.summary import NetworkSummary
from torchkiln.service.api.deps import ReadSessionDep
from torchkiln.service.store import datasets, jobs
from torchkiln.service.store.errors import NoSummary, UnknownModel

router = APIRouter(prefix="/models", tags=["models"])
jobs_router = APIRouter(prefix="/jobs", tags=["jobs"])
ParamsBody = Annotated[dict[str, Any], Body(description="What a job's params would be.")]


class PresetPublic(BaseModel):
    name: str
    mirrors: str
    summary: str
    params: dict[str, Any]


class PresetsPublic(BaseModel):
    data: list[PresetPublic]
    count: int


def spec_with(name: str, hook: str) -> ModelSpec:
    """The named spec if it has ``hook``; UnknownModel (404) otherwise."""
    spec = REGISTRY.get(name)
    if spec is None:
        raise UnknownModel(name, list(REGISTRY))
    if not getattr(spec, hook):
        with_hook = [n for n, s in sorted(REGISTRY.items()) if getattr(s, hook)]
        raise UnknownModel(name, with_hook)
    return spec


@router.post("/{name}/summary", response_model=NetworkSummary)
def summarise_params(name: str, params: ParamsBody, session: ReadSessionDep) -> NetworkSummary:
    """Per layer its type, output shape, parameters and FLOPs, and totals, for a job's params.

    Nothing trains: the body is what a job's ``params`` would be, checked the same way
    (a 422 names the layer that cannot work).
    """
    context = {"dataset_lookup": datasets.lookup_in(session)}
    return describe(spec_with(name, "describe"), params, strict=True, context=context)


def describe(
    spec: ModelSpec,
    params: dict[str, Any],
    *,
    strict: bool,
    context: dict[str, Any] | None = None,
) -> NetworkSummary:
    """The spec's summary of ``params``; a 422 naming each bad field (as ``body.<field>``)."""
    try:
        options = spec.parse_options(params, strict=strict, context=context)
    except ValidationError as error:
        raise RequestValidationError(
            [
                {**e, "loc": ("body", *e["loc"])}
                for e in error.errors(include_url=False, include_context=False)
            ]
        ) from None
    assert spec.describe is not None
    return spec.describe(options)  # type: ignore[return-value]


def has_summary(model: str) -> bool:
    spec = REGISTRY.get(model)
    return spec is not None and spec.describe is not None


@jobs_router.get("/{job_id}/summary", response_model=NetworkSummary)
def summarise_job(job_id: int, session: ReadSessionDep) -> NetworkSummary:
    """The summary ``POST /models/{model}/summary`` gives for this job's stored params."""
    job = jobs.get_job(session, job_id)
    if not has_summary(job.model):
        raise NoSummary(job_id, job.model, [n for n in REGISTRY if has_summary(n)])
    # Stored params were checked strictly at submit and hold every default since.
    return describe(REGISTRY[job.model], job.params, strict=False)


@router.get("/{name}/presets", response_model=PresetsPublic)
def list_presets(name: str) -> PresetsPublic:
    """Ready-made params (the built-in networks as layer lists) to start a job from."""
    spec = spec_with(name, "presets")
    presets = [PresetPublic.model_validate(p) for p in spec.presets]
    return PresetsPublic(data=presets, count=len(presets))
