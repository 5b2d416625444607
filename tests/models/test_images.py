"""Upload decoding and the MNIST / CIFAR preprocessing in models/common/images.py."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from io import BytesIO

import numpy as np
import pytest
import torch
from PIL import EpsImagePlugin, Image, ImageFile, ImageOps

from tests.models.image_factory import (
    MNIST_TEST_IMAGES,
    encode,
    many_frame_gif,
    mnist_test_digits,
    on_transparent,
    one,
    png_claiming,
    seven,
)
from torchkiln.models.common.images import (
    BlankImage,
    CorruptImage,
    EmptyImage,
    ImageLimits,
    ImageRejected,
    ImageTooLarge,
    InvalidPixels,
    UnsupportedImageFormat,
    cifar_pixels,
    decode_image,
    mnist_pixels,
    mnist_pixels_from_array,
)

LIMITS = ImageLimits()
Decoder = Callable[[bytes, ImageLimits], object]
DECODERS: list[Decoder] = [decode_image, mnist_pixels, cifar_pixels]


def centre_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    mass = pixels.sum()
    rows, cols = np.indices(pixels.shape)
    return float((rows * pixels).sum() / mass), float((cols * pixels).sum() / mass)


def ink_box(pixels: np.ndarray) -> tuple[int, int]:
    """Height and width of the bounding box of every non-zero pixel."""
    rows = np.flatnonzero(pixels.any(axis=1))
    cols = np.flatnonzero(pixels.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def as_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


# --- decoding --------------------------------------------------------------------------------


@pytest.mark.parametrize("format", ["PNG", "JPEG", "BMP", "GIF"])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_decode_image_reads_each_allowed_format(format: str, mode: str) -> None:
    source = Image.new(mode, (40, 30), 200 if mode == "L" else (200, 30, 30))
    image = decode_image(encode(source, format), LIMITS)
    assert image.size == (40, 30)
    assert image.mode in ("L", "RGB")
    assert image.getpixel((5, 5)) == source.getpixel((5, 5)) or format in ("JPEG", "GIF")


def test_decode_image_composites_transparency_onto_white() -> None:
    canvas = on_transparent(seven(ink=255, paper=0), colour=(0, 0, 0))
    image = decode_image(encode(canvas, "PNG"), LIMITS)
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255)  # transparent background -> white
    assert image.getpixel((100, 60)) == (0, 0, 0)  # opaque black stroke stays black


@pytest.mark.parametrize(
    "source",
    [
        Image.new("LA", (6, 6), (0, 0)),
        Image.new("RGBA", (6, 6), (0, 0, 0, 0)),
        Image.new("P", (6, 6), 0),
        Image.new("L", (6, 6), 0),
    ],
    ids=["LA", "RGBA", "P+tRNS", "L+tRNS"],
)
def test_every_kind_of_transparency_becomes_white(source: Image.Image) -> None:
    params = {} if "A" in source.mode else {"transparency": 0}
    image = decode_image(encode(source, "PNG", **params), LIMITS)
    assert image.mode in ("L", "RGB")
    assert np.all(np.asarray(image) == 255)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    ramp = (np.arange(16, dtype=np.uint16) * 4096).reshape(4, 4)
    image = decode_image(encode(Image.fromarray(ramp), "PNG"), LIMITS)
    assert image.mode == "L"
    np.testing.assert_array_equal(np.asarray(image), (ramp >> 8).astype(np.uint8))


def test_palette_and_bilevel_and_cmyk_come_out_grey_or_rgb() -> None:
    assert decode_image(encode(Image.new("1", (5, 5), 1), "PNG"), LIMITS).mode == "L"
    assert decode_image(encode(Image.new("P", (5, 5), 3), "GIF"), LIMITS).mode in ("L", "RGB")
    cmyk = decode_image(encode(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "JPEG"), LIMITS)
    assert cmyk.mode == "RGB"
    assert min(cmyk.getpixel((4, 4))) > 240  # no ink -> white


def test_jpeg_exif_orientation_is_applied() -> None:
    source = Image.new("L", (40, 20), 255)
    source.paste(0, (0, 0, 10, 10))  # dark top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate 90 degrees clockwise
    image = decode_image(encode(source, "JPEG", exif=exif, quality=95), LIMITS)
    assert image.size == (20, 40)
    assert image.getpixel((15, 5)) < 40  # the dark corner is now top-right
    assert image.getpixel((5, 5)) > 200


@pytest.mark.serial
def test_gif_gives_its_first_frame_only_and_quickly() -> None:
    data = many_frame_gif(2_000)
    assert Image.open(BytesIO(data)).n_frames > 100
    started = time.perf_counter()
    image = decode_image(data, LIMITS)
    assert time.perf_counter() - started < 0.5  # later frames are never decoded
    assert np.all(np.asarray(image.convert("L")) == 0)


# --- rejections ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ImageTooLarge, 413),
        (UnsupportedImageFormat, 415),
        (EmptyImage, 422),
        (CorruptImage, 422),
        (BlankImage, 422),
        (InvalidPixels, 422),
    ],
)
def test_each_rejection_carries_its_http_status(error: type[ImageRejected], status: int) -> None:
    assert issubclass(error, ImageRejected)
    assert issubclass(error, ValueError)
    assert error.status == status
    assert error("why").status == status


@pytest.mark.parametrize("decode", DECODERS)
def test_empty_upload_is_rejected(decode: Decoder) -> None:
    with pytest.raises(EmptyImage, match="empty"):
        decode(b"", LIMITS)


def test_upload_over_max_bytes_is_rejected_before_decoding() -> None:
    data = encode(seven(), "PNG")
    with pytest.raises(ImageTooLarge, match="bytes") as caught:
        decode_image(data, ImageLimits(max_bytes=len(data) - 1))
    assert caught.value.status == 413


def test_image_over_max_pixels_is_rejected() -> None:
    data = encode(Image.new("L", (100, 100)), "PNG")
    with pytest.raises(ImageTooLarge, match="100x100"):
        decode_image(data, ImageLimits(max_pixels=9_999))
    assert decode_image(data, ImageLimits(max_pixels=10_000)).size == (100, 100)


@pytest.mark.parametrize("decode", DECODERS)
def test_header_claiming_ten_gigapixels_is_refused_from_the_header(decode: Decoder) -> None:
    with pytest.raises(ImageTooLarge):
        decode(png_claiming(100_000, 100_000), LIMITS)


def test_decompression_bomb_warning_is_an_error_even_under_generous_limits() -> None:
    # 10^8 pixels: past Pillow's warning threshold (~8.9e7) but not its error threshold.
    data = png_claiming(10_000, 10_000)
    with pytest.raises(ImageTooLarge, match="bomb"):
        decode_image(data, ImageLimits(max_pixels=10**12))


def test_pillow_accepts_no_truncated_images() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(
    "data",
    [
        encode(Image.new("RGB", (8, 8)), "TIFF"),
        encode(Image.new("RGB", (8, 8)), "WEBP"),
        encode(Image.new("RGB", (8, 8)), "EPS"),
        b"%!PS-Adobe-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n",
        encode(Image.new("RGB", (8, 8)), "PDF"),
        encode(Image.new("RGB", (16, 16)), "ICO"),
        b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>',
        b"hello, this is text",
    ],
    ids=["tiff", "webp", "eps", "ps", "pdf", "ico", "svg", "text"],
)
def test_other_formats_are_unsupported(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_ghostscript(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ghostscript must never see an upload")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", no_ghostscript)
    for decode in DECODERS:
        with pytest.raises(UnsupportedImageFormat, match="not a PNG, JPEG, BMP or GIF") as caught:
            decode(data, LIMITS)
        assert caught.value.status == 415


@pytest.mark.parametrize("format", ["PNG", "JPEG", "GIF", "BMP"])
def test_truncated_image_is_corrupt(format: str) -> None:
    data = encode(Image.effect_noise((64, 64), 60).convert("RGB"), format)
    with pytest.raises(CorruptImage) as caught:
        decode_image(data[: len(data) * 2 // 3], LIMITS)
    assert caught.value.status == 422


def test_damaged_header_of_a_supported_format_is_corrupt_not_unsupported() -> None:
    with pytest.raises(CorruptImage, match="starts like a PNG"):
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, LIMITS)


@pytest.mark.parametrize(
    "image",
    [Image.new("L", (50, 50), 255), Image.new("L", (50, 50), 0), Image.new("RGB", (9, 9), "red")],
    ids=["white", "black", "red"],
)
def test_blank_image_has_no_ink(image: Image.Image) -> None:
    with pytest.raises(BlankImage, match="no ink"):
        mnist_pixels(encode(image, "PNG"), LIMITS)


def test_noisy_blank_photo_has_no_ink() -> None:
    rng = np.random.default_rng(0)
    paper = np.clip(rng.normal(235, 4, (120, 90)), 0, 255).astype(np.uint8)
    with pytest.raises(BlankImage):
        mnist_pixels(encode(Image.fromarray(paper), "JPEG"), LIMITS)


# --- nothing escapes but ImageRejected -------------------------------------------------------


def fuzz_inputs() -> list[bytes]:
    rng = random.Random(1234)
    samples = [rng.randbytes(rng.randrange(1, 300)) for _ in range(300)]
    prefixes = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM"]
    samples += [prefix + rng.randbytes(rng.randrange(0, 200)) for prefix in prefixes * 40]
    noise = Image.effect_noise((24, 24), 80).convert("RGB")
    for format in ["PNG", "JPEG", "GIF", "BMP"]:
        valid = encode(noise, format)
        samples += [valid[:length] for length in range(1, len(valid), max(1, len(valid) // 120))]
        for _ in range(60):  # a few flipped bytes past the signature
            damaged = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                damaged[rng.randrange(4, len(damaged))] = rng.randrange(256)
            samples.append(bytes(damaged))
    return samples


def test_no_byte_string_raises_anything_but_image_rejected() -> None:
    outcomes: dict[str, int] = {}
    for data in fuzz_inputs():
        for decode in DECODERS:
            try:
                decode(data, LIMITS)
            except ImageRejected as error:
                assert error.status in (413, 415, 422)
                assert str(error)
                name = type(error).__name__
            else:
                name = "decoded"
            outcomes[name] = outcomes.get(name, 0) + 1
    # The corpus must exercise both refusals and damaged-but-decodable images.
    assert {"UnsupportedImageFormat", "CorruptImage", "decoded"} <= outcomes.keys()


# --- MNIST -----------------------------------------------------------------------------------


def reference_seven() -> np.ndarray:
    return mnist_pixels(encode(seven(), "PNG"), LIMITS).numpy()


def assert_mnist_layout(pixels: np.ndarray) -> None:
    assert pixels.shape == (28, 28)
    assert pixels.dtype == np.float32
    assert pixels.min() >= 0 and pixels.max() == pytest.approx(1)
    height, width = ink_box(pixels)
    assert max(height, width) <= 20
    row, col = centre_of_mass(pixels)
    assert abs(row - 14) <= 1 and abs(col - 14) <= 1
    # The paper is exactly 0 (a lopsided digit may still touch an edge, as 1.5% of MNIST do).
    assert (pixels == 0).mean() > 0.5
    assert not pixels[:3, :3].any() and not pixels[:3, -3:].any()
    assert not pixels[-3:, :3].any() and not pixels[-3:, -3:].any()


def variants_of_seven() -> dict[str, bytes]:
    black_on_white = seven()
    strokes = ImageOps.invert(black_on_white)
    return {
        "black on white": encode(black_on_white, "PNG"),
        "white on black": encode(strokes, "PNG"),
        "blue on yellow": encode(
            Image.composite(
                Image.new("RGB", strokes.size, (20, 20, 160)),
                Image.new("RGB", strokes.size, (250, 230, 60)),
                strokes,
            ),
            "PNG",
        ),
        "black on transparent": encode(on_transparent(strokes, (0, 0, 0)), "PNG"),
        "white on transparent": encode(on_transparent(strokes, (255, 255, 255)), "PNG"),
        "jpeg": encode(black_on_white, "JPEG", quality=85),
        "gif": encode(strokes, "GIF"),
        "bmp": encode(black_on_white.convert("RGB"), "BMP"),
        "small": encode(seven((20, 30)), "PNG"),
        "large": encode(seven((1200, 1800)), "PNG"),
        "large jpeg": encode(seven((1200, 1800)), "JPEG"),  # decoded at half scale
    }


@pytest.mark.parametrize("variant", list(variants_of_seven()))
def test_any_seven_comes_out_in_mnist_layout(variant: str) -> None:
    pixels = mnist_pixels(variants_of_seven()[variant], LIMITS)
    assert isinstance(pixels, torch.Tensor)
    assert_mnist_layout(pixels.numpy())
    difference = np.abs(pixels.numpy() - reference_seven()).mean()
    if variant != "small":  # a 20x30 drawing is a different drawing after rasterising
        assert difference < 0.02, variant


def test_polarity_does_not_matter() -> None:
    black_on_white = seven()
    inverted = ImageOps.invert(black_on_white)
    np.testing.assert_allclose(
        mnist_pixels(encode(black_on_white, "PNG"), LIMITS),
        mnist_pixels(encode(inverted, "PNG"), LIMITS),
        atol=1e-6,
    )


def test_thin_tall_digit_fits_the_box_and_is_centred() -> None:
    pixels = mnist_pixels(encode(one(), "PNG"), LIMITS).numpy()
    assert_mnist_layout(pixels)
    height, width = ink_box(pixels)
    assert height == 20 and width <= 4


def test_off_centre_digit_is_recentred() -> None:
    page = Image.new("L", (600, 400), 255)
    page.paste(seven((60, 90)), (20, 300))  # a small 7 in the bottom-left corner
    assert_mnist_layout(mnist_pixels(encode(page, "PNG"), LIMITS).numpy())


@pytest.mark.shared_data
@pytest.mark.skipif(not MNIST_TEST_IMAGES.exists(), reason=f"{MNIST_TEST_IMAGES} is absent")
def test_real_mnist_digits_survive_a_png_round_trip() -> None:
    digits = mnist_test_digits(300)
    for digit in digits:
        original = digit.astype(np.float32) / 255
        pixels = mnist_pixels(encode(Image.fromarray(digit), "PNG"), LIMITS).numpy()
        assert np.abs(pixels - original).mean() < 0.01
        assert np.abs(pixels - original).max() < 0.1
        assert np.allclose(centre_of_mass(pixels), centre_of_mass(original), atol=0.6)


@pytest.mark.serial
def test_mnist_28px_png_is_fast() -> None:
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255
    data = encode(Image.fromarray(digit), "PNG")
    timings = []
    for _ in range(50):
        started = time.perf_counter()
        mnist_pixels(data, LIMITS)
        timings.append(time.perf_counter() - started)
    # About 0.15 ms on one core; the bound only catches an accidental slow path.
    assert statistics.median(timings) < 0.002


def test_pixel_array_is_used_as_is() -> None:
    grid = np.zeros((28, 28), np.uint8)
    grid[0:5, 0:5] = 255  # far off centre: MNIST form is the caller's business
    from_list = mnist_pixels_from_array(grid.tolist())
    from_array = mnist_pixels_from_array(grid)
    assert from_list.dtype == torch.float32 and from_list.shape == (28, 28)
    np.testing.assert_array_equal(from_list.numpy(), grid / 255)
    np.testing.assert_array_equal(from_array.numpy(), from_list.numpy())


@pytest.mark.parametrize(
    "pixels",
    [
        [[0] * 28] * 27,
        [[0] * 27] * 28,
        [[0] * 28] * 27 + [[0] * 27],
        [[0] * 28] * 27 + [[256] + [0] * 27],
        [[0] * 28] * 27 + [[-1] + [0] * 27],
        [[0] * 28] * 27 + [[float("nan")] + [0] * 27],
        [["a"] * 28] * 28,
        [[None] * 28] * 28,
    ],
    ids=["27 rows", "27 cols", "ragged", "256", "negative", "nan", "strings", "nulls"],
)
def test_bad_pixel_arrays_are_rejected(pixels: list[list[object]]) -> None:
    with pytest.raises(InvalidPixels) as caught:
        mnist_pixels_from_array(pixels)  # type: ignore[arg-type]
    assert caught.value.status == 422


# --- CIFAR -----------------------------------------------------------------------------------


def test_cifar_32px_png_is_its_own_pixels() -> None:
    source = Image.effect_noise((32, 32), 60).convert("RGB")
    pixels = cifar_pixels(encode(source, "PNG"), LIMITS)
    assert pixels.shape == (3, 32, 32) and pixels.dtype == torch.float32
    assert pixels.is_contiguous()
    expected = torch.from_numpy(np.array(source, dtype=np.float32)).permute(2, 0, 1) / 255
    torch.testing.assert_close(pixels, expected)


def test_cifar_keeps_the_central_square() -> None:
    strip = Image.new("RGB", (96, 32), (255, 0, 0))
    strip.paste((0, 255, 0), (32, 0, 64, 32))
    strip.paste((0, 0, 255), (64, 0, 96, 32))
    pixels = cifar_pixels(encode(strip, "PNG"), LIMITS)
    torch.testing.assert_close(pixels.mean(dim=(1, 2)), torch.tensor([0.0, 1.0, 0.0]))


def test_cifar_grey_and_large_inputs() -> None:
    grey = cifar_pixels(encode(Image.new("L", (640, 480), 128), "JPEG"), LIMITS)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert grey.min() >= 0 and grey.max() <= 1
    photo = cifar_pixels(
        encode(Image.effect_noise((3000, 2000), 50).convert("RGB"), "JPEG"), LIMITS
    )
    assert photo.shape == (3, 32, 32)
