"""The Open Inference Protocol's answers, as the schema states them.

Documentation only: its routes send orjson bytes, never validated against these.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ServerMetadataPublic(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ServerLivePublic(BaseModel):
    live: bool


class ServerReadyPublic(BaseModel):
    ready: bool


class TensorMetadataPublic(BaseModel):
    name: str
    datatype: str = Field(description="FP32, INT64, BYTES, ...")
    shape: list[int] = Field(description="-1: any size (the batch).")


class ModelMetadataPublic(BaseModel):
    name: str
    versions: list[str] = Field(description="Its succeeded jobs' ids.")
    platform: str
    inputs: list[TensorMetadataPublic]
    outputs: list[TensorMetadataPublic]


class ModelReadyPublic(BaseModel):
    name: str
    ready: bool


class InferParametersPublic(BaseModel):
    job_id: int
    alias: str | None = Field(description="The alias that picked the version, if one did.")


class BinaryDataPublic(BaseModel):
    binary_data_size: int = Field(description="Its bytes, after the JSON, in output order.")


class ResponseOutputPublic(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list[float | bool | str | None] | None = Field(
        None, description="Row-major values (null where not finite); absent if sent as binary."
    )
    parameters: BinaryDataPublic | None = None


class InferResponsePublic(BaseModel):
    """The JSON part: the whole body, or (with binary outputs) its first
    Inference-Header-Content-Length bytes."""

    model_name: str
    model_version: str = Field(description="The job that answered.")
    id: str | None = Field(None, description="The request's id, if it had one.")
    parameters: InferParametersPublic
    outputs: list[ResponseOutputPublic]


def answers(model: type[BaseModel], content: dict[str, Any] | None = None) -> dict[int | str, Any]:
    """A route's ``responses``: ``model`` as its JSON (documented only: routes send orjson
    bytes), and any other ``content``."""
    response: dict[str, Any] = {"model": model, "description": "Successful Response"}
    if content is not None:
        response["content"] = content
    return {200: response}
