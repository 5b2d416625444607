"""The one-pass multipart split: the files Starlette's parser finds, or None to let it parse."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.datastructures import UploadFile
from starlette.requests import Request

from tests.models.image_factory import encode, seven
from tests.utils.seeded_jobs import seed_mlp_job
from torchkiln.service.api.multipart import split_files
from torchkiln.service.store.settings import Settings

BOUNDARY = "b0und4ry"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"\r\n\r\n--not-the-boundary"


def part(data: bytes, disposition: str = 'form-data; name="file"; filename="d.png"') -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\nContent-Type: image/png"
    return head.encode() + b"\r\n\r\n" + data + b"\r\n"


def body(*parts: bytes, close: bytes = b"--\r\n") -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}".encode() + close


def starlette_files(content: bytes, content_type: str) -> list[bytes]:
    """What the route reads through Starlette's own parser: the ``file`` uploads' bytes."""

    async def parse() -> list[bytes]:
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": content, "more_body": False}

        headers = [(b"content-type", content_type.encode())]
        request = Request({"type": "http", "method": "POST", "headers": headers}, receive)
        async with request.form() as form:
            files = [item for item in form.getlist("file") if isinstance(item, UploadFile)]
            return [await item.read() for item in files]

    return asyncio.run(parse())


def httpx_upload(*files: bytes) -> tuple[bytes, str]:
    """The body and content type httpx sends for these files (its own boundary)."""
    fields = [("file", (f"{index}.png", data, "image/png")) for index, data in enumerate(files)]
    request = httpx.Request("POST", "http://kiln", files=fields)
    return request.read(), request.headers["content-type"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (body(part(PNG)), CONTENT_TYPE),
        (body(part(PNG), close=b"--"), CONTENT_TYPE),
        (body(part(PNG), part(b"second file"), part(b"")), CONTENT_TYPE),
        (body(part(PNG)).replace(b"\r\nContent-Type: image/png", b""), CONTENT_TYPE),
        (body(part(PNG)), f'multipart/form-data; boundary="{BOUNDARY}"'),
        httpx_upload(PNG, b"B"),
    ],
    # Fixed ids: httpx's boundary is random, and pytest-xdist's workers must collect alike.
    ids=["one", "closed", "three", "no-type", "quoted-boundary", "httpx"],
)
def test_bodies_of_file_parts_split_as_starlette_parses_them(
    content: bytes, content_type: str
) -> None:
    files = split_files(content, content_type, max_files=256)
    assert files is not None
    assert files == starlette_files(content, content_type)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (body(part(PNG), part(b"a note", 'form-data; name="note"')), CONTENT_TYPE),
        (body(part(PNG, 'form-data; name="image"; filename="d.png"')), CONTENT_TYPE),
        (body(part(PNG, "form-data; name=\"file\"; filename*=utf-8''d.png")), CONTENT_TYPE),
        (body(part(PNG, 'attachment; name="file"; filename="d.png"')), CONTENT_TYPE),
        (b"preamble\r\n" + body(part(PNG)), CONTENT_TYPE),
        (body(part(PNG), close=b"--\r\nepilogue"), CONTENT_TYPE),
        (body(part(PNG))[:-8], CONTENT_TYPE),
        (body(part(PNG)), CONTENT_TYPE + "; charset=utf-16"),
        (body(part(PNG)), "multipart/mixed; boundary=" + BOUNDARY),
        (body(part(PNG)), "multipart/form-data"),
        (body(part(PNG).replace(b"Content-Type", b"Content-Transfer-Encoding")), CONTENT_TYPE),
        (body(part(PNG).replace(b"Content-Disposition", b"X-Disposition")), CONTENT_TYPE),
        (body(), CONTENT_TYPE),
    ],
)
def test_any_other_shape_is_left_to_starlette(content: bytes, content_type: str) -> None:
    assert split_files(content, content_type, max_files=256) is None


def test_more_files_than_allowed_are_left_to_starlettes_limit() -> None:
    content = body(*(part(PNG) for _ in range(3)))
    assert split_files(content, CONTENT_TYPE, max_files=2) is None
    assert split_files(content, CONTENT_TYPE, max_files=3) is not None


def test_uploads_answer_alike_by_either_parser(client: TestClient, settings: Settings) -> None:
    seed_mlp_job(settings)
    digit = encode(seven(), "PNG")
    content, content_type = httpx_upload(digit)
    quick = client.post("/predict/mnist", content=content, headers={"content-type": content_type})
    with_note = body(part(digit), part(b"hello", 'form-data; name="note"'))
    parsed = client.post("/predict/mnist", content=with_note, headers=headers())
    assert quick.status_code == parsed.status_code == 200
    assert quick.json() == parsed.json()
    no_file = body(part(b"hello", 'form-data; name="file"'))
    refused = client.post("/predict/mnist", content=no_file, headers=headers())
    assert refused.status_code == 422 and "'file'" in refused.json()["detail"]
    too_many = body(*(part(b"x") for _ in range(257)))
    assert client.post("/predict/mnist", content=too_many, headers=headers()).status_code == 400


def headers() -> dict[str, str]:
    return {"content-type": CONTENT_TYPE}
