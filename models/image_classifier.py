"""A small CNN on an uploaded ImageFolder dataset: its classes, grey or RGB, any image size.

``{"dataset": 4, "image_size": 32, "channels": [32, 64], "augment": ["flip", "crop"]}``.
Images are resized to ``image_size`` squares and standardised per channel with the training
split's mean and std, held in the network's buffers; the class names come from the schema.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import nn

from torchkiln.models.common.augment import random_crop_reflect, random_hflip
from torchkiln.models.common.datasets import split_stratified
from torchkiln.models.common.image_folder import (
    channel_stats,
    channels_of,
    class_names,
    read_images,
    to_pixels,
)
from torchkiln.models.common.image_inputs import ImageBatch
from torchkiln.models.common.images import ImageLimits, ImageRejected, decode_image
from torchkiln.models.common.options import ClassificationLoss, OptimizerName
from torchkiln.models.common.registry import (
    BatchAugment,
    Batching,
    DataRoot,
    DataUnavailable,
    ModelSpec,
    TrainingData,
    register,
)
from torchkiln.models.common.tensors import image_tensors
from torchkiln.models.common.top_k import top_k_predictions
from torchkiln.models.common.uploaded import UploadedOptions, dataset_dir

MAX_IMAGES = 256
HIDDEN = 128
Augmentation = Literal["flip", "crop"]

EXAMPLE_SCHEMA: dict[str, Any] = {
    "kind": "images",
    "images": 200,
    "classes": [{"name": "cat", "count": 100}, {"name": "dog", "count": 100}],
    "splits": {},
    "sizes": [[64, 64]],
    "modes": ["RGB"],
}
EXAMPLE_PARAMS: dict[str, Any] = {
    "dataset": 2,
    "lineage": {
        "datasets": [
            {
                "id": 2,
                "name": "pets.zip",
                "sha256": "0" * 64,
                "kind": "images",
                "role": "train",
                "schema": EXAMPLE_SCHEMA,
            }
        ]
    },
}


class ImageClassifierOptions(UploadedOptions):
    """A small CNN on an uploaded image dataset's classes."""

    KIND: ClassVar[str] = "images"
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_PARAMS]})

    image_size: int = Field(32, ge=8, le=512, description="Images are resized to this square.")
    channels: list[Annotated[int, Field(ge=1, le=512)]] = Field(
        [32, 64],
        min_length=1,
        max_length=6,
        description="Output channels of each conv/pool block.",
    )
    augment: list[Augmentation] = Field(
        [],
        description='Random "flip" (left-right) and/or "crop" (shifts); true: both.',
    )
    batch_norm: bool = Field(False, description="Batch normalisation after each convolution.")
    loss: ClassificationLoss = "cross_entropy"
    epochs: int = Field(10, ge=1, le=100_000)
    optimizer: OptimizerName = "adam"
    lr: float = Field(0.001, gt=0, le=10)

    @field_validator("augment", mode="before")
    @classmethod
    def _augment_flag(cls, value: Any) -> Any:
        # true/false as the built-in image models take it: both augmentations, or none.
        if isinstance(value, bool):
            return ["flip", "crop"] if value else []
        return value

    @model_validator(mode="after")
    def _check_shape(self) -> ImageClassifierOptions:
        blocks = len(self.channels)
        if self.image_size // 2**blocks < 1:
            raise ValueError(
                f"image_size {self.image_size} is too small for {blocks} pooling blocks: use at "
                f"least {2**blocks} or fewer channels entries"
            )
        schema = self.schema()
        if len(class_names(schema)) < 2:
            raise ValueError("dataset: an image classifier needs at least two classes")
        test = self.dataset_schema("test")
        if test is not None and class_names(test) != class_names(schema):
            raise ValueError(
                f"test_dataset: its classes {list(class_names(test))} differ from the "
                f"dataset's {list(class_names(schema))}"
            )
        return self

    def schema(self) -> dict[str, Any]:
        schema = self.dataset_schema("train")
        if schema is None:
            raise ValueError("dataset lineage missing: submit the job through POST /jobs")
        return schema


class PixelInputs(ImageBatch):
    """Prediction body: {"image": rows of grey levels or of [r, g, b]} or {"images": [...]};
    any size, resized as the training images were."""

    SHAPE: ClassVar[str] = "H x W (grey) or H x W x 3 (RGB)"
    EXAMPLE: ClassVar[list[Any]] = [[[255, 128, 0]] * 4] * 4

    image: list[Any] | None = None
    images: list[list[Any]] | None = Field(None, min_length=1, max_length=MAX_IMAGES)


class LabelGuess(BaseModel):
    label: str
    probability: float


class ImagePrediction(LabelGuess):
    """The likeliest class of one image, and the likeliest few, best first."""

    top_k: list[LabelGuess]


class ImageClassAnswer(BaseModel):
    predictions: list[ImagePrediction]


class Standardise(nn.Module):
    """Per-channel (x - mean) / std with the training split's figures as buffers."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels, 1, 1))
        self.register_buffer("std", torch.ones(channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@dataclass
class Fitted:
    """The training split's channel statistics, from ``load_data`` to ``build`` of a job."""

    stats: tuple[torch.Tensor, torch.Tensor] | None = None


def standardiser(channels: int, fitted: Fitted | None) -> Standardise:
    """A Standardise holding the fitted channel statistics (zeros and ones before a fit)."""
    standardise = Standardise(channels)
    if fitted is not None and fitted.stats is not None:
        standardise.mean.copy_(fitted.stats[0].view(-1, 1, 1))
        standardise.std.copy_(fitted.stats[1].view(-1, 1, 1))
    return standardise


def build_network(options: ImageClassifierOptions, fitted: Fitted | None = None) -> nn.Module:
    schema = options.schema()
    channels_in = channels_of(schema)
    layers: list[nn.Module] = [standardiser(channels_in, fitted)]
    for width_in, width_out in zip(
        [channels_in, *options.channels], options.channels, strict=False
    ):
        layers.append(nn.Conv2d(width_in, width_out, 3, padding=1, bias=not options.batch_norm))
        if options.batch_norm:
            layers.append(nn.BatchNorm2d(width_out))
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
    side = options.image_size // 2 ** len(options.channels)
    layers += [nn.Flatten(), nn.Dropout(options.dropout)]
    layers += [nn.Linear(options.channels[-1] * side * side, HIDDEN), nn.ReLU()]
    layers += [nn.Dropout(options.dropout), nn.Linear(HIDDEN, len(class_names(schema)))]
    return nn.Sequential(*layers)


def load_images(
    options: ImageClassifierOptions, data_root: DataRoot, fitted: Fitted
) -> TrainingData:
    schema = options.schema()
    directory = dataset_dir(data_root, options.dataset)
    splits = read_images(directory, schema, options.image_size, data_root)
    if "all" in splits or "train" in splits:
        source = splits.get("train") or splits["all"]
    else:
        raise DataUnavailable(f"dataset {options.dataset} has no train/ split folder")
    if "val" in splits:
        train, val = source, splits["val"]
    else:
        train, val = split_stratified(source.x, source.y, options.val_fraction)
    test = splits.get("test")
    if options.test_dataset is not None:
        test_schema = options.dataset_schema("test") or {}
        test_splits = read_images(
            dataset_dir(data_root, options.test_dataset), test_schema, options.image_size, data_root
        )
        test = test_splits.get("test") or test_splits.get("all") or next(iter(test_splits.values()))
        if test.x.shape[1] != train.x.shape[1]:
            raise DataUnavailable(
                "test_dataset: its images are grey and the dataset's RGB, or the reverse"
            )
    fitted.stats = channel_stats(train.x)
    return TrainingData(train=train, val=val, test=test)


def augmenter(options: ImageClassifierOptions) -> BatchAugment | None:
    if not options.augment:
        return None
    padding = max(1, options.image_size // 8)
    flip, crop = "flip" in options.augment, "crop" in options.augment

    def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if crop:
            batch = random_crop_reflect(batch, generator, padding)
        return random_hflip(batch, generator) if flip else batch

    return augment


def pixels_batch(channels: int, side: int) -> Any:
    def preprocess(inputs: PixelInputs) -> torch.Tensor:
        batch = []
        for pixels in inputs.pixels():
            try:
                array = np.asarray(pixels, dtype=np.float64)
            except ValueError:
                raise ImageRejected("image: rows must all have the same length") from None
            if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
                raise ImageRejected("image: send rows of grey levels or rows of [r, g, b]")
            if (
                array.size == 0
                or not np.isfinite(array).all()
                or array.min() < 0
                or array.max() > 255
            ):
                raise ImageRejected("image: levels must be numbers from 0 to 255")
            image = Image.fromarray(array.round().astype(np.uint8))
            batch.append(to_pixels(image, channels, side))
        return torch.from_numpy(np.stack(batch)).float() / 255.0

    return preprocess


def upload_decoder(channels: int, side: int) -> Any:
    def decode_upload(data: bytes, limits: ImageLimits | None = None) -> torch.Tensor:
        image = decode_image(data, limits or ImageLimits())
        return torch.from_numpy(to_pixels(image, channels, side)[None]).float() / 255.0

    return decode_upload


def class_postprocess(classes: tuple[str, ...]) -> Any:
    k = min(3, len(classes))

    def postprocess(outputs: torch.Tensor) -> dict[str, Any]:
        found = top_k_predictions(outputs, lambda i: {"label": classes[i]}, k=k)
        return {
            "predictions": [
                {"label": p["label"], "probability": p["probability"], "top_k": p[f"top{k}"]}
                for p in found
            ]
        }

    return postprocess


def specialise(options: ImageClassifierOptions) -> ModelSpec:
    """The spec of one job: its classes, channels, image size and fitted statistics."""
    schema = options.schema()
    channels, side, classes = channels_of(schema), options.image_size, class_names(schema)
    fitted = Fitted()
    return dataclasses.replace(
        SPEC,
        build=lambda opts: build_network(opts, fitted),
        load_data=lambda opts, root: load_images(opts, root, fitted),
        preprocess=pixels_batch(channels, side),
        postprocess=class_postprocess(classes),
        decode_upload=upload_decoder(channels, side),
        tensors=image_tensors((channels, side, side), lambda pixels: pixels, classes),
        specialise=None,
    )


EXAMPLE = ImageClassifierOptions.model_validate(EXAMPLE_PARAMS)
EXAMPLE_CLASSES = class_names(EXAMPLE_SCHEMA)

# Convolutions: a shared forward pass is worth a few samples, as for mnist_cnn.
SPEC = register(
    ModelSpec(
        name="image_classifier",
        summary="A small CNN on an uploaded image-folder dataset: its classes, grey or RGB.",
        task="multiclass",
        options=ImageClassifierOptions,
        inputs=PixelInputs,
        build=build_network,
        load_data=lambda options, root: load_images(options, root, Fitted()),
        # Each job reads its own classes and sizes (specialise); these serve the example's.
        preprocess=pixels_batch(3, EXAMPLE.image_size),
        postprocess=class_postprocess(EXAMPLE_CLASSES),
        answer=ImageClassAnswer,
        decode_upload=upload_decoder(3, EXAMPLE.image_size),
        augment=augmenter,
        tensors=image_tensors(
            (3, EXAMPLE.image_size, EXAMPLE.image_size), lambda p: p, EXAMPLE_CLASSES
        ),
        specialise=specialise,
        batching=Batching(max_size=8),
    )
)
