"""Rules the handlers enforce that FastAPI's generated schema does not state, added to it.

FastAPI derives the schema from signatures; some checks live elsewhere (a dependency for
path ids, the model's own options for job params). Stated here, clients and generators see
what the server accepts, and schemathesis's positive and negative checks hold to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic.json_schema import models_json_schema

from torchkiln.models import REGISTRY
from torchkiln.service.api.serving.tensor_codec import InferRequest
from torchkiln.service.store.tables import MAX_ROW_ID

COMPONENTS = "#/components/schemas/"
# /jobs/compare reads at most this many ids (service/api/routes/compare.py).
MAX_COMPARED = 20


def state_the_rules(openapi: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Wrap ``app.openapi``: the first call builds and amends the schema; later calls reuse it."""
    amended: dict[str, Any] = {}

    def amended_openapi() -> dict[str, Any]:
        if not amended:
            schema = openapi()
            bound_path_ids(schema)
            compare_ids_as_a_list(schema)
            name_the_models(schema)
            protocol_versions_and_bodies(schema)
            job_params_per_model(schema)
            design_bodies(schema)
            amended.update(schema)
        return amended

    return amended_openapi


def operations(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path, operation)
        for path, item in schema.get("paths", {}).items()
        for operation in item.values()
        if isinstance(operation, dict)
    ]


def bound_path_ids(schema: dict[str, Any]) -> None:
    """Path ids are plain digits from 1 to the id range (``require_plain_path_ids``)."""
    for _, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"].endswith("_id"):
                parameter["schema"].update(minimum=1, maximum=MAX_ROW_ID)


def compare_ids_as_a_list(schema: dict[str, Any]) -> None:
    """``ids=3,5,8`` is OpenAPI's form style without explode: an array of job ids."""
    for path, operation in operations(schema):
        if path != "/jobs/compare":
            continue
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "ids":
                parameter.update(style="form", explode=False)
                parameter["schema"] = {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID},
                    "minItems": 1,
                    "maxItems": MAX_COMPARED,
                    "description": parameter.get("description", ""),
                }


def name_the_models(schema: dict[str, Any]) -> None:
    """The Open Inference Protocol's model names are the catalogue's."""
    names = sorted(REGISTRY)
    for path, operation in operations(schema):
        if not path.startswith("/v2/models/{name}"):
            continue
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] == "name":
                parameter["schema"]["enum"] = names
    for name in ("SweepCreate",):
        model = schema["components"]["schemas"].get(name)
        if model is not None:
            model["properties"]["model"]["enum"] = names


def protocol_versions_and_bodies(schema: dict[str, Any]) -> None:
    """Open Inference Protocol routes read their body by hand (JSON, or JSON then binary
    tensors): state it, and that a version is a job id."""
    components = schema["components"]["schemas"]
    refs, defs = models_json_schema(
        [(InferRequest, "validation")], ref_template=COMPONENTS + "{model}"
    )
    for name, definition in defs.get("$defs", {}).items():
        components.setdefault(name, definition)
    for path, operation in operations(schema):
        if not path.startswith("/v2/models/"):
            continue
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] == "version":
                parameter["schema"].update(pattern=r"^[1-9][0-9]{0,17}$")
        if path.endswith("/infer"):
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": refs[(InferRequest, "validation")]},
                    # The binary extension: JSON of Inference-Header-Content-Length bytes,
                    # then the raw tensors.
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            }


def job_params_per_model(schema: dict[str, Any]) -> None:
    """POST /jobs: one branch per model, its params that model's own options schema."""
    components = schema["components"]["schemas"]
    job = components.get("JobCreate")
    if job is None:
        return
    specs = sorted(REGISTRY.values(), key=lambda spec: spec.name)
    refs, defs = models_json_schema(
        [(spec.options, "validation") for spec in specs], ref_template=COMPONENTS + "{model}"
    )
    for name, definition in defs.get("$defs", {}).items():
        components.setdefault(name, definition)
    branches = []
    for spec in specs:
        name = f"JobCreate_{spec.name}"
        properties = {
            **job["properties"],
            "model": {"type": "string", "const": spec.name, "title": "Model"},
            "params": {
                **refs[(spec.options, "validation")],
                "description": f"The options of {spec.name}; omitted ones take their defaults.",
            },
        }
        components[name] = {
            **job,
            "title": name,
            "properties": properties,
            "required": sorted({*job.get("required", []), "model"}),
        }
        branches.append({"$ref": COMPONENTS + name})
    components["JobCreate"] = {
        "title": "JobCreate",
        "description": job.get("description", ""),
        "oneOf": branches,
        "discriminator": {
            "propertyName": "model",
            "mapping": {spec.name: COMPONENTS + f"JobCreate_{spec.name}" for spec in specs},
        },
    }


def design_bodies(schema: dict[str, Any]) -> None:
    """/models/{name}/summary and /presets serve the models with those hooks; a summary's
    body is what that model's job params would be."""
    hooked = {
        hook: sorted(name for name, spec in REGISTRY.items() if getattr(spec, hook))
        for hook in ("describe", "presets")
    }
    describing = [REGISTRY[name] for name in hooked["describe"]]
    refs, defs = models_json_schema(
        [(spec.options, "validation") for spec in describing], ref_template=COMPONENTS + "{model}"
    )
    components = schema["components"]["schemas"]
    for name, definition in defs.get("$defs", {}).items():
        components.setdefault(name, definition)
    for path, operation in operations(schema):
        hook = {"/models/{name}/summary": "describe", "/models/{name}/presets": "presets"}.get(path)
        if hook is None:
            continue
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] == "name":
                parameter["schema"]["enum"] = hooked[hook]
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if content is not None and describing:
            branches = [refs[(spec.options, "validation")] for spec in describing]
            content["schema"] = branches[0] if len(branches) == 1 else {"anyOf": branches}
