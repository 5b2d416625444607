"""Body size limits: a declared oversize body is refused unread; a streamed one is cut off."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.testclient import TestClient

from torchkiln.service.api.body_limits import MULTIPART_OVERHEAD_BYTES, BodyLimit
from torchkiln.service.store.settings import Settings

LIMIT = 1000


async def echo_length(scope: Any, receive: Any, send: Any) -> None:
    """An app that reads the whole body and answers with its length."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def call(headers: dict[str, str], chunks: list[bytes]) -> tuple[int, bytes, int]:
    """Run one request through the middleware; returns status, body and chunks read."""
    app = BodyLimit(echo_length, json_limit=LIMIT, upload_limit=10 * LIMIT, batch_limit=30 * LIMIT)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    pending = list(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body, len(chunks) - len(pending)


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    status, body, read = call({"content-length": str(LIMIT + 1)}, [b"x" * (LIMIT + 1)])
    assert status == 413 and read == 0
    assert b"the limit is 1000 bytes" in body


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit() -> None:
    chunks = [b"x" * 400] * 10  # no Content-Length: only counting can catch it
    status, body, read = call({"content-type": "application/json"}, chunks)
    assert status == 413 and read == 3 and b"too large" in body


def test_bodies_within_the_limit_pass_through() -> None:
    assert call({}, [b"x" * 400, b"x" * 600])[:2] == (200, b"1000")
    assert call({"content-length": str(LIMIT)}, [b"x" * LIMIT])[:2] == (200, b"1000")


def test_one_image_gets_the_upload_limit_and_a_batch_the_batch_limit() -> None:
    multipart = {"content-type": "multipart/form-data; boundary=x"}
    assert call(multipart, [b"x" * 25 * LIMIT])[0] == 200
    over = 30 * LIMIT + MULTIPART_OVERHEAD_BYTES + 1
    assert call({**multipart, "content-length": str(over)}, [b""])[0] == 413
    assert call({"content-type": "image/png"}, [b"x" * 5 * LIMIT])[0] == 200
    image_over = {"content-type": "image/png", "content-length": str(10 * LIMIT + 1)}
    assert call(image_over, [b""])[0] == 413


def test_a_batch_limit_below_one_upload_still_admits_one_upload() -> None:
    app = BodyLimit(echo_length, json_limit=LIMIT, upload_limit=10 * LIMIT, batch_limit=LIMIT)
    assert app.limit_for("multipart/form-data; boundary=x") == 10 * LIMIT + MULTIPART_OVERHEAD_BYTES


def test_a_malformed_content_length_is_a_400() -> None:
    assert call({"content-length": "12abc"}, [b""])[0] == 400


def test_the_app_refuses_an_oversized_job_spec(settings: Settings) -> None:
    from torchkiln.service.api.app import create_app

    small = settings.model_copy(update={"max_body_bytes": 4096})
    with TestClient(create_app(small)) as client:
        padding = "x" * 5000
        response = client.post("/jobs", json={"model": "linear", "params": {"pad": padding}})
        assert response.status_code == 413
        assert response.json() == {"detail": "request body too large: the limit is 4096 bytes"}

        def stream() -> Any:
            for _ in range(10):
                yield b" " * 1000

        chunked = client.post(
            "/jobs", content=stream(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        assert client.post("/jobs", json={"model": "linear"}).status_code == 201
