"""A request body size limit for the public API (BentoML reads whole bodies into memory and has none).

A declared ``Content-Length`` over the limit is answered 413 before the body is read; a chunked body is
counted as it arrives and the request fails with 413 as soon as it passes the limit.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any

from bentoml.exceptions import BentoMLException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(BentoMLException):
    """Raised while a chunked body is read; BentoML answers it with its status code."""

    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class BodySizeLimit:
    """ASGI middleware: at most ``max_bytes`` of request body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: str) -> str:
        return f"request body too large: expected at most {self.max_bytes} bytes, got {size}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _reply(
                    send,
                    HTTPStatus.BAD_REQUEST,
                    f"expected a decimal Content-Length header, got {declared[:32]!r}",
                )
                return
            if int(declared) > self.max_bytes:
                await _reply(
                    send, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self._too_large(f"{int(declared)} bytes")
                )
                return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self._too_large(f"more than {self.max_bytes} bytes (chunked)"))
            return message

        await self.app(scope, counted_receive, send)


async def _reply(send: Send, status: HTTPStatus, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": int(status), "headers": headers})
    await send({"type": "http.response.body", "body": body})
