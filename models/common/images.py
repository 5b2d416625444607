"""Uploaded images: safe decoding, and the MNIST and CIFAR preprocessing of one upload.

Every failure on untrusted bytes is an ``ImageRejected`` subclass whose ``status`` is the HTTP
status the service answers with; no other exception type escapes ``decode_image``,
``mnist_pixels`` or ``cifar_pixels``, whatever the bytes.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import ClassVar

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

# Only these decoders ever see upload bytes: Pillow would otherwise hand EPS/PS to Ghostscript
# and try dozens of rarely exercised parsers on hostile input.
ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF")
_SIGNATURES = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"BM": "BMP"}
_GREY_MODES = frozenset({"1", "L", "LA", "La"})
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_RESAMPLE = Image.Resampling.LANCZOS
_REDUCING_GAP = 3.0  # shrink big images by whole factors first; keeps large uploads cheap
WHITE = 255
BLACK = 0

MNIST_SIDE = 28
MNIST_DIGIT_BOX = 20  # MNIST digits were scaled to fit 20x20, then centred in 28x28
MNIST_CENTRE = 14.0  # where MNIST's centres of mass sit (the test set averages 14.01, 14.01)
MIN_INK_CONTRAST = 40  # grey levels between background and darkest ink; less is noise
INK_THRESHOLD = 25  # of 255 after contrast stretching: about a tenth of full ink
CIFAR_SIDE = 32
# JPEGs can decode at 1/2, 1/4 or 1/8 scale for a fraction of the work; these are the smallest
# sizes worth decoding: a digit may fill only part of a photo, a CIFAR square is shrunk to 32.
MNIST_DRAFT_SIZE = (512, 512)
CIFAR_DRAFT_SIZE = (4 * CIFAR_SIDE, 4 * CIFAR_SIDE)
# Longer side over shorter: a 1 x 20,000,000 strip is within any pixel limit yet costs seconds
# of decoding and a 40-million-pixel border; no photo or drawing is this thin.
MAX_ASPECT_RATIO = 100
# The border median reads at most this many border pixels, evenly spaced.
MAX_BORDER_SAMPLES = 65_536


@dataclass(frozen=True)
class ImageLimits:
    """Upload limits; the service builds this from its settings."""

    max_bytes: int = 5_000_000
    max_pixels: int = 20_000_000
    max_request_pixels: int = 60_000_000  # all the images of one request together


class ImageRejected(ValueError):
    """An upload that cannot become model input; ``status`` is the HTTP status to answer."""

    status: ClassVar[int] = 422


class ImageTooLarge(ImageRejected):
    status: ClassVar[int] = 413


class UnsupportedImageFormat(ImageRejected):
    status: ClassVar[int] = 415


class EmptyImage(ImageRejected):
    # 422 like FastAPI's own answer to a missing field: the request parsed, the input is unusable.
    status: ClassVar[int] = 422


class CorruptImage(ImageRejected):
    status: ClassVar[int] = 422


class BlankImage(ImageRejected):
    status: ClassVar[int] = 422


class InvalidPixels(ImageRejected):
    status: ClassVar[int] = 422


class DegenerateImage(ImageRejected):
    status: ClassVar[int] = 422


def decode_image(data: bytes, limits: ImageLimits) -> Image.Image:
    """Decode one PNG/JPEG/BMP/GIF upload to "L" (grey sources) or "RGB".

    GIFs give their first frame, JPEGs are turned upright by their EXIF orientation, and
    transparency is composited onto white.
    """
    return _flatten(_open(data, limits), matte=WHITE)


def declared_pixels(data: bytes, limits: ImageLimits) -> int:
    """Width x height read from the header alone, after the checks every decode makes."""
    _check_bytes(data, limits)
    width, height = _open_header(data, limits).size
    return width * height


def request_pixels(images: Sequence[bytes], limits: ImageLimits) -> int:
    """The declared pixels of one request's images, refused once past the request budget."""
    total = 0
    for data in images:
        total += declared_pixels(data, limits)
        if total > limits.max_request_pixels:
            raise ImageTooLarge(
                f"the images of this request declare over {limits.max_request_pixels:,} pixels "
                "in all, the per-request limit; send fewer or smaller images per request"
            )
    return total


def mnist_pixels(data: bytes, limits: ImageLimits) -> torch.Tensor:
    """A 28x28 float32 tensor in [0, 1], white digit on black, prepared the way MNIST was.

    Any size, colour or grey, dark-on-light or light-on-dark: the ink is found, cropped,
    scaled to fit 20x20 and placed so its centre of mass is at (14, 14).
    """
    grey = _flatten(_open(data, limits, draft_size=MNIST_DRAFT_SIZE), matte=None)
    if grey.mode != "L":
        grey = grey.convert("L")
    return torch.from_numpy(_mnist_layout(np.asarray(grey)))


def mnist_pixels_from_array(pixels: Sequence[Sequence[float]] | np.ndarray) -> torch.Tensor:
    """A 28x28 grid of 0-255 values, divided by 255 and otherwise used as is.

    JSON callers send pixels already in MNIST form (white on black, 20x20 box, centred), often
    straight from the data set; re-centring them would change what they asked the model about.
    """
    try:
        grid = np.asarray(pixels, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidPixels(
            "pixels must be 28 rows of 28 numbers from 0 to 255; some rows are ragged or "
            "hold non-numbers"
        ) from exc
    if grid.shape != (MNIST_SIDE, MNIST_SIDE):
        raise InvalidPixels(
            f"pixels must be 28 rows of 28 numbers; got shape {tuple(grid.shape)}. "
            "Resize the digit to 28x28 or upload it as an image instead"
        )
    if not np.isfinite(grid).all() or grid.min() < 0 or grid.max() > 255:
        raise InvalidPixels("pixel values must lie between 0 and 255 (0 is background)")
    return torch.from_numpy(grid / 255)


def cifar_pixels(data: bytes, limits: ImageLimits) -> torch.Tensor:
    """A 3x32x32 float32 RGB tensor in [0, 1]: the central square, resized to 32x32.

    Cropping to the centre, as torchvision's Resize+CenterCrop inference does, keeps objects
    in proportion; squashing a 16:9 photo to a square would distort them far more than CIFAR's
    own framing, where the object fills the middle of the picture.
    """
    image = _flatten(_open(data, limits, draft_size=CIFAR_DRAFT_SIZE), matte=WHITE)
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    square = (left, top, left + side, top + side)
    small = image.resize(
        (CIFAR_SIDE, CIFAR_SIDE), _RESAMPLE, box=square, reducing_gap=_REDUCING_GAP
    )
    pixels = torch.from_numpy(np.array(small, dtype=np.float32))
    return (pixels.permute(2, 0, 1) / 255).contiguous()


def _open(
    data: bytes, limits: ImageLimits, *, draft_size: tuple[int, int] | None = None
) -> Image.Image:
    """Decode the first frame in its own mode, refusing anything large, foreign or damaged.

    ``draft_size`` lets a JPEG decode at a reduced scale that still covers that size.
    """
    _check_bytes(data, limits)
    image = _open_header(data, limits)
    try:
        is_jpeg = image.format in ("JPEG", "MPO")
        if is_jpeg and draft_size is not None:
            image.draft(None, draft_size)
        image.load()  # with ImageFile.LOAD_TRUNCATED_IMAGES off, truncation raises here
        if is_jpeg:
            ImageOps.exif_transpose(image, in_place=True)
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, struct.error...
        raise CorruptImage(
            f"the {image.format} data is truncated or damaged; re-export the image and upload "
            "it again"
        ) from exc
    return image


def _check_bytes(data: bytes, limits: ImageLimits) -> None:
    if not data:
        raise EmptyImage("the upload is empty (0 bytes); attach a PNG, JPEG, BMP or GIF file")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(
            f"the upload is {len(data):,} bytes, over the {limits.max_bytes:,}-byte limit; "
            "send a smaller or more compressed image"
        )


def _open_header(data: bytes, limits: ImageLimits) -> Image.Image:
    """Parse the header only, and check the declared size before any pixel is decoded."""
    # catch_warnings swaps process-wide filters and is not thread-safe before Python 3.14, so
    # a concurrent decode may miss this filter; the explicit pixel check below is the guard.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(BytesIO(data), formats=ALLOWED_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLarge(
                f"the image declares more than {limits.max_pixels:,} pixels (a decompression "
                "bomb?); downscale it before uploading"
            ) from exc
        except UnidentifiedImageError as exc:
            raise _unidentified(data) from exc
        except Exception as exc:  # header parsers raise many types on hostile input
            raise CorruptImage(
                "the image header is damaged; re-export the image and upload it again"
            ) from exc
    width, height = image.size
    if width == 0 or height == 0:
        raise EmptyImage(f"the image is {width}x{height} pixels; it has nothing to look at")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise DegenerateImage(
            f"the image is {width}x{height} pixels: one side is over {MAX_ASPECT_RATIO} times "
            "the other; crop or pad it to a less extreme shape"
        )
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height:,} pixels, over the "
            f"{limits.max_pixels:,}-pixel limit; downscale it before uploading"
        )
    return image


def _unidentified(data: bytes) -> ImageRejected:
    """Tell a damaged PNG/JPEG/BMP/GIF (422) from a file of another kind (415)."""
    for signature, name in _SIGNATURES.items():
        if data.startswith(signature):
            return CorruptImage(
                f"the upload starts like a {name} file but its header is damaged or incomplete; "
                "re-export the image and upload it again"
            )
    return UnsupportedImageFormat(
        "the upload is not a PNG, JPEG, BMP or GIF image; convert it to PNG and try again"
    )


def _flatten(image: Image.Image, matte: int | None) -> Image.Image:
    """Return "L" for grey sources, else "RGB", compositing transparency onto ``matte``.

    ``matte=None`` picks black or white, whichever contrasts with the visible pixels.
    """
    if image.mode in _SIXTEEN_BIT_MODES:
        # convert("L") clips 16-bit samples at 255 instead of scaling them down.
        high_bytes = np.clip(np.asarray(image) >> 8, 0, 255).astype(np.uint8)
        return Image.fromarray(high_bytes)
    target = "L" if image.mode in _GREY_MODES else "RGB"
    if not image.has_transparency_data:
        return image if image.mode == target else image.convert(target)
    with_alpha = image.convert("LA" if target == "L" else "RGBA")
    if matte is None:
        matte = _contrasting_matte(with_alpha)
    flat = Image.new(target, image.size, matte if target == "L" else (matte, matte, matte))
    flat.paste(with_alpha, mask=with_alpha.getchannel("A"))
    return flat


def _contrasting_matte(with_alpha: Image.Image) -> int:
    """White behind dark strokes (the usual canvas), black behind a white pen."""
    # convert("L") drops alpha and is several times cheaper than convert("LA").
    grey = with_alpha.getchannel("L") if with_alpha.mode == "LA" else with_alpha.convert("L")
    grey_levels = np.asarray(grey, dtype=np.float32).ravel()
    alpha = np.asarray(with_alpha.getchannel("A"), dtype=np.float32).ravel()
    opacity = float(alpha.sum())
    if opacity == 0:
        return WHITE
    mean_grey = float(grey_levels @ alpha) / opacity  # alpha-weighted: what a viewer sees
    return BLACK if mean_grey >= 128 else WHITE


def _mnist_layout(grey: np.ndarray) -> np.ndarray:
    """Grey uint8 image of any size -> 28x28 float32 digit laid out as in MNIST."""
    ink = _ink_levels(grey)
    is_ink = ink > INK_THRESHOLD
    rows = np.flatnonzero(is_ink.any(axis=1))
    cols = np.flatnonzero(is_ink.any(axis=0))
    digit = _fit_box(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], MNIST_DIGIT_BOX)
    return _centre_by_mass(digit, MNIST_SIDE, MNIST_CENTRE)


def _ink_levels(grey: np.ndarray) -> np.ndarray:
    """Map grey levels so the background is 0 and the strongest ink 255, whatever the polarity."""
    background = _border_median(grey)
    # Digits are drawn on paper or canvas, so the border shows the background.
    is_light = background >= 128
    if is_light:
        background, strongest = 255 - background, 255 - int(grey.min())
    else:
        strongest = int(grey.max())
    contrast = strongest - background
    if contrast < MIN_INK_CONTRAST:
        raise BlankImage(
            "no ink found: the image is one flat shade; draw the digit in a colour that stands "
            "out from the background"
        )
    return _level_table(is_light, background, contrast)[grey]


@functools.lru_cache(maxsize=1024)
def _level_table(is_light: bool, background: int, contrast: int) -> np.ndarray:
    """A 256-entry table: one indexing pass does inversion and contrast stretching together.

    Kept per (polarity, background, contrast): building it is most of ``_ink_levels``'s
    cost for a small image, and few combinations occur.
    """
    levels = np.arange(256, dtype=np.float32)
    if is_light:
        levels = 255 - levels
    table = np.clip((levels - background) * (255 / contrast), 0, 255).round().astype(np.uint8)
    table.flags.writeable = False
    return table


def _border_median(grey: np.ndarray) -> int:
    """The median grey level of the border: a histogram of evenly spaced samples, no sort."""
    border = np.concatenate((grey[0], grey[-1], grey[:, 0], grey[:, -1]))
    border = border[:: max(1, border.size // MAX_BORDER_SAMPLES)]
    below_or_at = np.cumsum(np.bincount(border, minlength=256))
    return int(np.searchsorted(below_or_at, border.size // 2, side="right"))


def _fit_box(ink: np.ndarray, box: int) -> np.ndarray:
    """Scale the cropped ink to fit ``box`` x ``box`` keeping its aspect; peak ink becomes 1."""
    height, width = ink.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = ink.astype(np.float32)
    if (width, height) != size:
        # Float ("F") resampling keeps faint thin strokes from rounding away when shrunk a lot.
        image = Image.fromarray(digit).resize(size, _RESAMPLE, reducing_gap=_REDUCING_GAP)
        digit = np.maximum(np.asarray(image), 0)  # np.clip(.., 0, None), without its wrapper
    peak = float(digit.max())
    if peak <= 0:
        raise BlankImage("no ink left at 20x20: the strokes are too thin; draw them bolder")
    # MNIST digits all reach full intensity, so thin strokes thinned further by shrinking are
    # brought back up.
    return digit / peak


def _centre_by_mass(digit: np.ndarray, side: int, centre: float) -> np.ndarray:
    """Paste ``digit`` into a ``side`` square with its centre of mass at (centre, centre)."""
    height, width = digit.shape
    mass = float(digit.sum())
    mass_y = float(digit.sum(axis=1) @ np.arange(height)) / mass
    mass_x = float(digit.sum(axis=0) @ np.arange(width)) / mass
    # Whole-pixel shifts keep strokes sharp; clamping keeps lopsided digits (a 7's heavy bar)
    # entirely inside the frame at the cost of being a pixel or two off centre.
    top = min(max(round(centre - mass_y), 0), side - height)
    left = min(max(round(centre - mass_x), 0), side - width)
    canvas = np.zeros((side, side), dtype=np.float32)
    canvas[top : top + height, left : left + width] = digit
    return canvas
