"""Rules the handlers enforce that FastAPI's generated schema does not state, added to it.

FastAPI derives the schema from signatures; some checks live elsewhere (a dependency for
path ids, the model's own options for job params). Stated here, clients and generators see
what the server accepts, and schemathesis's positive and negative checks hold to it. So do
each model's example bodies, the event stream's events, and whether a key is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import ModelSpec
from torchkiln.service.api.routes.events import EpochEventData, StateEventData
from torchkiln.service.api.serving.tensor_codec import HEADER_LENGTH, InferRequest
from torchkiln.service.store.tables import MAX_ROW_ID

COMPONENTS = "#/components/schemas/"
# /jobs/compare reads at most this many ids (service/api/routes/compare.py).
MAX_COMPARED = 20


def state_the_rules(
    openapi: Callable[[], dict[str, Any]], *, is_key_required: bool
) -> Callable[[], dict[str, Any]]:
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
            no_object_defaults(schema)
            design_bodies(schema)
            prediction_bodies(schema)
            event_stream_items(schema)
            if not is_key_required:
                no_key_needed(schema)
            amended.update(schema)
        return amended

    return amended_openapi


def add_components(schema: dict[str, Any], models: list[type[BaseModel]]) -> dict[type, Any]:
    """Each model's (validation) schema among the components; the ``$ref`` of each."""
    refs, defs = models_json_schema(
        [(model, "validation") for model in models], ref_template=COMPONENTS + "{model}"
    )
    for name, definition in defs.get("$defs", {}).items():
        schema["components"]["schemas"].setdefault(name, definition)
    return {model: refs[(model, "validation")] for model in models}


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
    infer_request = add_components(schema, [InferRequest])[InferRequest]
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
                    "application/json": {"schema": infer_request},
                    # The binary extension: JSON of Inference-Header-Content-Length bytes,
                    # then the raw tensors.
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            }
            # Stated because the handler reads it. (It also keeps openapi-python-client 0.29's
            # code for a two-content-type body importable: its ``Unset`` import comes with an
            # optional parameter.)
            operation.setdefault("parameters", []).append(
                {
                    "name": HEADER_LENGTH,
                    "in": "header",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 0},
                    "description": "Binary extension: the JSON part's bytes; the tensors follow.",
                }
            )


def no_object_defaults(schema: dict[str, Any]) -> None:
    """Options whose default is an object (tabular's early stopping) state it in words only.

    openapi-python-client refuses an object default on a nullable model field and drops the
    whole options class; the server fills the default as before, GET /models still shows it.
    """
    for component in schema["components"]["schemas"].values():
        for field in component.get("properties", {}).values():
            if isinstance(field.get("default"), dict) and "anyOf" in field:
                del field["default"]


def job_params_per_model(schema: dict[str, Any]) -> None:
    """POST /jobs: one branch per model, its params that model's own options schema."""
    components = schema["components"]["schemas"]
    job = components.get("JobCreate")
    if job is None:
        return
    specs = sorted(REGISTRY.values(), key=lambda spec: spec.name)
    refs = add_components(schema, [spec.options for spec in specs])
    branches = []
    for spec in specs:
        name = f"JobCreate_{spec.name}"
        properties = {
            **job["properties"],
            "model": {"type": "string", "const": spec.name, "title": "Model"},
            "params": {
                **refs[spec.options],
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
    # One example a model: its every option at its default, to edit in /docs.
    submit = schema["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
    submit["examples"] = {
        spec.name: {
            "summary": spec.summary,
            "value": {"model": spec.name, "params": spec.example_options().model_dump(mode="json")},
        }
        for spec in specs
    }


def predicting_specs(path: str) -> list[ModelSpec]:
    """The models ``POST /predict/{name}`` answers from: one, or those of a shared tag."""
    name = path.removeprefix("/predict/")
    return (
        [REGISTRY[name]] if name in REGISTRY else [s for s in REGISTRY.values() if name in s.tags]
    )


def prediction_bodies(schema: dict[str, Any]) -> None:
    """Upload routes' JSON bodies as components (the models' own schemas, whose ``$defs`` mean
    nothing inline), and each route's example bodies, from its models' inputs."""
    paths = [path for path in schema["paths"] if path.startswith("/predict/")]
    inputs = list(dict.fromkeys(predicting_specs(path)[0].inputs for path in paths))
    refs = add_components(schema, inputs)
    examples = schema["components"].setdefault("examples", {})
    names: dict[str, str] = {}  # an example's JSON -> its component's name
    for model in inputs:
        for index, value in enumerate(model.model_json_schema().get("examples", [])):
            key = orjson.dumps(value).decode()
            if key not in names:
                names[key] = model.__name__ + (f"_{index}" if index else "")
                summary = (model.__doc__ or model.__name__).splitlines()[0]
                examples[names[key]] = {"summary": summary, "value": value}
    for path in paths:
        model = predicting_specs(path)[0].inputs
        body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        body["schema"] = refs[model]
        body["examples"] = {
            names[key]: {"$ref": "#/components/examples/" + names[key]}
            for key in (orjson.dumps(v).decode() for v in model.model_json_schema()["examples"])
        }


def event_stream_items(schema: dict[str, Any]) -> None:
    """The job event stream's events, as OpenAPI 3.2's ``itemSchema`` (FastAPI's own streams
    say theirs so), each event's data a component."""
    refs = add_components(schema, [EpochEventData, StateEventData])

    def event(names: list[str], data: type[BaseModel], has_id: bool = False) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "event": {"type": "string", "enum": names},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": refs[data],
            },
        }
        if has_id:
            properties["id"] = {"type": "string", "description": "Resume after it: Last-Event-ID."}
        required = ["event", "data", *(["id"] if has_id else [])]
        return {"type": "object", "properties": properties, "required": required}

    content = schema["paths"]["/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
    content["text/event-stream"]["itemSchema"] = {
        "oneOf": [
            event(["epoch"], EpochEventData, has_id=True),
            event(["status", "end"], StateEventData),
        ]
    }


def no_key_needed(schema: dict[str, Any]) -> None:
    """Without TORCHKILN_API_KEY nothing asks for one: no Bearer requirement, and no 401.

    FastAPI declares the (optional) bearer dependency as required on every protected route.
    """
    for _, operation in operations(schema):
        operation.pop("security", None)
        operation.get("responses", {}).pop("401", None)
    schema["components"].pop("securitySchemes", None)


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
