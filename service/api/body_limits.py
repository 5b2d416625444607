"""Request-body size limits, as a pure ASGI middleware in front of every route.

A declared Content-Length over the limit is refused before a byte of the body is read; a
chunked body is counted as it streams and cut off once it passes the limit. Only upload
routes take the upload limits; every other route keeps the JSON limit whatever the
content-type says. ``KeyBeforeBody`` refuses a body without the API key before it is read.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection, Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Room for multipart boundaries, part headers and small form fields around the file bytes.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# The same words as require_api_key's 401.
UNAUTHORIZED = "missing or wrong API key: send Authorization: Bearer <key>"


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a streamed body passes the limit."""


class BodyLimit:
    """413 for bodies over ``json_limit`` bytes; a raw image/* body gets ``upload_limit``,
    a multipart batch ``batch_limit`` (never less than one upload), plus its framing.

    Each file in a batch is held to ``upload_limit`` where it is decoded.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        json_limit: int,
        upload_limit: int,
        batch_limit: int | None = None,
        upload_paths: Collection[str] | None = None,
        path_limits: Mapping[str, int] | None = None,
    ) -> None:
        """``upload_paths``: the routes that take uploads (None: every route);
        ``path_limits``: routes with a body limit of their own (dataset uploads)."""
        self.app, self.json_limit, self.upload_limit = app, json_limit, upload_limit
        self.path_limits = dict(path_limits or {})
        self.batch_limit = max(upload_limit, batch_limit or upload_limit)
        self.upload_paths = None if upload_paths is None else frozenset(upload_paths)

    def limit_for(self, content_type: str, path: str | None = None) -> int:
        if path in self.path_limits:
            return self.path_limits[path]
        if self.upload_paths is not None and path not in self.upload_paths:
            return self.json_limit
        if content_type.startswith("multipart/form-data"):
            return self.batch_limit + MULTIPART_OVERHEAD_BYTES
        if content_type.startswith("image/"):
            return self.upload_limit
        return self.json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        limit = self.limit_for(content_type, scope["path"])
        declared = headers.get(b"content-length")
        if declared is not None:
            length = _parse_length(declared)
            if length is None:
                await _reply(send, 400, "Content-Length is not a non-negative integer")
                return
            if length > limit:
                await _reply(send, 413, _too_large(limit))
                return
        await self._call_counting(scope, receive, send, limit)

    async def _call_counting(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        is_over = False
        is_started = False

        async def counted_receive() -> Message:
            nonlocal received, is_over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    is_over = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal is_started
            # Once the body is cut off, whatever the app makes of the broken read (a 400,
            # a 500) is dropped: the client gets the 413 below.
            if is_over:
                return
            is_started = is_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not is_over:
                raise
        if is_over and not is_started:
            await _reply(send, 413, _too_large(limit))


class KeyBeforeBody:
    """401 for a request that carries a body but not the API key, before the body is read.

    Routes check the key too (``require_api_key``), but FastAPI reads a JSON or form body
    before it runs dependencies; requests without a body are left to that check.
    """

    def __init__(self, app: ASGIApp, *, api_key: str) -> None:
        self.app, self.expected = app, api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope) or self._is_authorized(scope):
            await self.app(scope, receive, send)
            return
        await _reply(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])

    def _is_authorized(self, scope: Scope) -> bool:
        value = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = value.partition(b" ")
        is_bearer = scheme.lower() == b"bearer"
        # compare_digest takes the same time wherever the first difference is.
        return secrets.compare_digest(token.strip() if is_bearer else b"", self.expected)


def _has_body(scope: Scope) -> bool:
    headers = dict(scope["headers"])
    length = headers.get(b"content-length", b"").strip()
    return b"transfer-encoding" in headers or length not in (b"", b"0")


def _parse_length(value: bytes) -> int | None:
    text = value.decode("latin-1").strip()
    return int(text) if text.isdigit() and text.isascii() else None


def _too_large(limit: int) -> str:
    return f"request body too large: the limit is {limit} bytes"


async def _reply(
    send: Send, status: int, detail: str, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
