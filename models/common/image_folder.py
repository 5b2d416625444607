"""Uploaded ImageFolder datasets as tensors: ``images/<class>/*`` or ``images/<split>/<class>/*``.

Every image is decoded once, to grey or RGB, resized to a square side, as float32 in [0, 1]
(N, C, side, side); the tensors are cached per dataset folder, its schema's stamp, the side
and the channels, so a second job in the same worker reuses them.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from torchkiln.models.common.images import ALLOWED_FORMATS
from torchkiln.models.common.registry import DataRoot, DataUnavailable, Split

logger = logging.getLogger(__name__)

GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "P;L"})
SPLITS = ("train", "val", "test")
RESAMPLE = Image.Resampling.BILINEAR


def channels_of(schema: dict[str, Any]) -> int:
    """1 when every image seen is grey, else 3 (RGB)."""
    modes = schema.get("modes") or ["RGB"]
    return 1 if all(mode in GREY_MODES for mode in modes) else 3


def class_names(schema: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(entry["name"] for entry in schema.get("classes", [])))


def split_names(schema: dict[str, Any]) -> tuple[str, ...]:
    return tuple(name for name in SPLITS if name in (schema.get("splits") or {}))


def check_decoded_size(count: int, channels: int, side: int, data_root: DataRoot) -> None:
    """Refuse at once a dataset whose float32 tensors would exceed the configured cap."""
    size = count * channels * side * side * 4
    if size > data_root.max_decoded_bytes:
        raise DataUnavailable(
            f"{count:,} images at {channels}x{side}x{side} decode to {size / 2**30:.2f} GiB of "
            f"float32, over the MAX_DECODED_BYTES limit of "
            f"{data_root.max_decoded_bytes / 2**30:.2f} GiB; lower image_size or use fewer images"
        )


def to_pixels(image: Image.Image, channels: int, side: int) -> np.ndarray:
    """One image as (C, side, side) uint8: grey or RGB, resized."""
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (side, side):
        image = image.resize((side, side), RESAMPLE)
    pixels = np.array(image, dtype=np.uint8)  # a writable copy, for torch.from_numpy
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def _read_image(path: Path, channels: int, side: int) -> np.ndarray:
    try:
        with Image.open(path, formats=ALLOWED_FORMATS) as image:
            image.draft("L" if channels == 1 else "RGB", (side, side))  # JPEG: decode small
            return to_pixels(image, channels, side)
    except (OSError, ValueError) as error:
        raise DataUnavailable(f"{path}: does not decode as an image ({error})") from error


def _folder_images(root: Path, classes: tuple[str, ...]) -> tuple[list[Path], list[int]]:
    paths, labels = [], []
    for index, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue  # a split may lack a class
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                paths.append(path)
                labels.append(index)
    return paths, labels


def read_images(
    directory: Path, schema: dict[str, Any], side: int, data_root: DataRoot
) -> dict[str, Split]:
    """Each split of the dataset (``all`` when it has no split folders) as a Split."""
    stamp = (directory / "schema.json").stat()
    channels = channels_of(schema)
    check_decoded_size(int(schema.get("images", 0)), channels, side, data_root)
    return _decode(
        str(directory.resolve()),
        (stamp.st_mtime_ns, stamp.st_size),
        class_names(schema),
        split_names(schema),
        channels,
        side,
    )


@lru_cache(maxsize=2)
def _decode(
    directory: str,
    stamp: tuple[int, int],
    classes: tuple[str, ...],
    splits: tuple[str, ...],
    channels: int,
    side: int,
) -> dict[str, Split]:
    images = Path(directory) / "images"
    found: dict[str, Split] = {}
    for split in splits or ("all",):
        paths, labels = _folder_images(images / split if splits else images, classes)
        if not paths:
            continue
        pixels = np.stack([_read_image(path, channels, side) for path in paths])
        x = torch.from_numpy(pixels).float().div_(255.0)
        found[split] = Split(x, torch.tensor(labels, dtype=torch.long))
    logger.info("decoded %s: %s", directory, {k: len(v) for k, v in found.items()})
    if not found:
        raise DataUnavailable(f"no images found under {images}")
    return found


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of (N, C, H, W) images."""
    std = x.std(dim=(0, 2, 3))
    return x.mean(dim=(0, 2, 3)), torch.where(std > 1e-6, std, torch.ones_like(std))
