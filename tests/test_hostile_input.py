"""Hostile input from the outside test of issue 16: every one a 4xx with a JSON reason."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from torchkiln.models.common.images import (
    MAX_ASPECT_RATIO,
    DegenerateImage,
    ImageLimits,
    mnist_pixels,
)
from torchkiln.service.api.app import create_app
from torchkiln.service.store.settings import Settings


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def small_budget(settings: Settings) -> Iterator[TestClient]:
    """A client whose requests may declare 2,000 pixels in all."""
    with TestClient(create_app(settings.model_copy(update={"max_request_pixels": 2000}))) as c:
        yield c


def test_a_one_pixel_wide_strip_is_refused_before_decoding(client: TestClient) -> None:
    strip = png(Image.new("L", (1, 20_000_000), 255))
    response = client.post("/predict/mnist", content=strip, headers={"content-type": "image/png"})
    assert response.status_code == 422
    assert "1x20000000" in response.json()["detail"]


def test_shapes_up_to_the_aspect_limit_decode_and_thinner_ones_do_not() -> None:
    bar = Image.new("L", (MAX_ASPECT_RATIO, 1), 255)
    bar.putpixel((MAX_ASPECT_RATIO // 2, 0), 0)
    assert mnist_pixels(png(bar), ImageLimits()).shape == (28, 28)
    with pytest.raises(DegenerateImage, match="over 100 times"):
        mnist_pixels(png(Image.new("L", (MAX_ASPECT_RATIO + 1, 1), 255)), ImageLimits())


def test_a_batch_over_the_request_pixel_budget_is_413(small_budget: TestClient) -> None:
    square = png(Image.new("L", (40, 40), 255))  # 1,600 pixels: one fits, two do not
    files = [("file", (f"{i}.png", square, "image/png")) for i in range(2)]
    response = small_budget.post("/predict/mnist", files=files)
    assert response.status_code == 413
    assert "2,000 pixels" in response.json()["detail"]
