"""Prediction routes, one per catalogue model, each with that model's own input schema.

No ``from __future__ import annotations`` here: FastAPI reads the body type of each
generated endpoint from its live annotation.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from models import REGISTRY
from models.registry import ModelSpec
from service.db import read_session
from service.deps import EngineDep, ModelCacheDep
from service.predictions import find_source, predict

router = APIRouter(prefix="/predict", tags=["predict"])

JobIdQuery = Annotated[
    int | None, Query(ge=1, description="Answer from this job instead of the newest succeeded.")
]


def answer(
    engine: EngineDep, cache: ModelCacheDep, spec: ModelSpec, inputs: BaseModel, job_id: int | None
) -> dict[str, Any]:
    with read_session(engine) as session:
        source = find_source(session, [spec.name], job_id)
    loaded = cache.get(source)
    return predict(loaded, spec.preprocess(inputs))


def add_model_route(spec: ModelSpec) -> None:
    inputs_model = spec.inputs

    def predict_model(
        inputs: inputs_model,  # type: ignore[valid-type]
        engine: EngineDep,
        cache: ModelCacheDep,
        job_id: JobIdQuery = None,
    ) -> dict[str, Any]:
        return answer(engine, cache, spec, inputs, job_id)

    predict_model.__name__ = f"predict_{spec.name}"
    predict_model.__doc__ = f"{spec.summary} Answers from the newest succeeded job, or job_id."
    router.add_api_route(
        f"/{spec.name}", predict_model, methods=["POST"], name=f"predict_{spec.name}"
    )


for _spec in REGISTRY.values():
    add_model_route(_spec)
