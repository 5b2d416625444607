"""The JSON body shared by the image models' prediction routes: one image or a batch."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator


def _stated_rules(schema: dict[str, Any], cls: Any) -> None:
    """The exactly-one rule, so clients and fuzzers see what is checked, and an example."""
    schema["oneOf"] = [
        {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
        for name in ("image", "images")
    ]
    if cls.EXAMPLE is not None:
        schema["examples"] = [{"image": cls.EXAMPLE}]


class ImageBatch(BaseModel):
    """{"image": ...} or {"images": [...]}, exactly one.

    Subclasses narrow ``image`` and ``images`` to their pixel arrays and name the shape.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra=_stated_rules)
    SHAPE: ClassVar[str] = "image"
    # One image of the subclass's shape, the schema's example body.
    EXAMPLE: ClassVar[list[Any] | None] = None

    image: Any = None
    images: list[Any] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageBatch:
        if (self.image is None) == (self.images is None):
            raise ValueError(
                f'send exactly one of "image" (one {self.SHAPE} array) or "images" (a list)'
            )
        return self

    def pixels(self) -> list[Any]:
        """The images as a list, however they were sent."""
        return [self.image] if self.image is not None else list(self.images or [])
