"""The model catalogue: names, option and input schemas, defaults."""

from __future__ import annotations

from fastapi import APIRouter

from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import ModelSpec
from torchkiln.service.api.schemas import ModelPublic, ModelsPublic
from torchkiln.service.store.errors import UnknownModel

router = APIRouter(prefix="/models", tags=["models"])


def model_public(spec: ModelSpec) -> ModelPublic:
    return ModelPublic(
        name=spec.name,
        summary=spec.summary,
        task=spec.task,
        tags=list(spec.tags),
        defaults=spec.example_options().model_dump(mode="json"),
        options_schema=spec.options.model_json_schema(),
        inputs_schema=spec.inputs.model_json_schema(),
        accepts_upload=spec.decode_upload is not None,
    )


@router.get("", response_model=ModelsPublic)
def list_models() -> ModelsPublic:
    specs = [REGISTRY[name] for name in sorted(REGISTRY)]
    return ModelsPublic(data=[model_public(s) for s in specs], count=len(specs))


@router.get("/{name}", response_model=ModelPublic)
def read_model(name: str) -> ModelPublic:
    spec = REGISTRY.get(name)
    if spec is None:
        raise UnknownModel(name, list(REGISTRY))
    return model_public(spec)
