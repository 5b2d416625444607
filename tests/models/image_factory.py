"""Images made in memory with Pillow, for the upload-decoding tests."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

MNIST_TEST_IMAGES = (
    Path(__file__).resolve().parents[3]
    / "shared/datasets/mnist-sample/MNIST/raw/t10k-images-idx3-ubyte"
)


def encode(image: Image.Image, format: str, **params: Any) -> bytes:
    """The bytes of ``image`` saved in ``format``."""
    buffer = BytesIO()
    image.save(buffer, format, **params)
    return buffer.getvalue()


def seven(size: tuple[int, int] = (200, 300), ink: int = 0, paper: int = 255) -> Image.Image:
    """A thick hand-drawn-looking 7 in mode "L"; its heavy top bar makes it lopsided."""
    width, height = size
    image = Image.new("L", size, paper)
    draw = ImageDraw.Draw(image)
    stroke = max(1, width // 8)
    draw.line([(width * 0.2, height * 0.2), (width * 0.8, height * 0.2)], fill=ink, width=stroke)
    draw.line([(width * 0.8, height * 0.2), (width * 0.4, height * 0.85)], fill=ink, width=stroke)
    return image


def one(size: tuple[int, int] = (200, 300)) -> Image.Image:
    """A tall thin 1, white on black, far narrower than it is high."""
    width, height = size
    image = Image.new("L", size, 0)
    ImageDraw.Draw(image).line(
        [(width * 0.5, height * 0.15), (width * 0.5, height * 0.85)], fill=255, width=width // 20
    )
    return image


def on_transparent(mask: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """RGBA strokes of ``colour`` where ``mask`` is bright, fully transparent elsewhere."""
    image = Image.new("RGBA", mask.size, (*colour, 0))
    image.putalpha(mask)
    return image


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid-looking grey PNG whose header declares ``width`` x ``height`` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )


def many_frame_gif(frames: int, size: tuple[int, int] = (8, 8)) -> bytes:
    """An animated GIF whose first frame is black and every later frame white."""
    first = Image.new("L", size, 0)
    rest = [Image.new("L", size, 255 if i % 2 == 0 else 254) for i in range(frames - 1)]
    return encode(first, "GIF", save_all=True, append_images=rest, duration=10, loop=0)


def mnist_test_digits(count: int) -> np.ndarray:
    """The first ``count`` MNIST test digits as a uint8 (count, 28, 28) array (IDX format)."""
    raw = MNIST_TEST_IMAGES.read_bytes()
    return np.frombuffer(raw, np.uint8, count=count * 28 * 28, offset=16).reshape(count, 28, 28)
