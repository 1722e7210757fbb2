"""ASGI middleware in front of the service: a request body size limit, and multipart bodies checked first.

BentoML reads whole bodies into memory and has no size limit: a declared ``Content-Length`` over the
limit is answered 413 before the body is read, and a chunked body fails with 413 as soon as it passes the
limit. BentoML also answers a malformed ``multipart/form-data`` request (no boundary, broken part
headers, an oversized field) with a 500, because Starlette's parser raises an HTTP 400 exception that
BentoML catches as an unexpected error; so multipart bodies are parsed here first and refused with a
400 that says why, then replayed to the service.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any

from bentoml.exceptions import BentoMLException
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(BentoMLException):
    """Raised while a chunked body is read by the service; BentoML answers it with its status code."""

    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class RequestGuard:
    """At most ``max_bytes`` of request body; multipart bodies must parse."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: str) -> str:
        return f"request body too large: expected at most {self.max_bytes} bytes, got {size}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                reason = f"expected a decimal Content-Length header, got {declared[:32]!r}"
                await _reply(send, HTTPStatus.BAD_REQUEST, reason)
                return
            if int(declared) > self.max_bytes:
                await _reply(
                    send, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self._too_large(f"{int(declared)} bytes")
                )
                return
        if headers.get(b"content-type", b"").split(b";")[0].strip().lower() == b"multipart/form-data":
            await self._multipart(scope, receive, send)
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

    async def _multipart(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = bool(message.get("more_body", False))
            if size > self.max_bytes:
                await _reply(
                    send,
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    self._too_large(f"more than {self.max_bytes} bytes"),
                )
                return
        body = b"".join(chunks)
        problem = await _multipart_problem({k: v for k, v in scope.items() if k != "app"}, body)
        if problem is not None:
            await _reply(send, HTTPStatus.BAD_REQUEST, f"expected a multipart/form-data upload: {problem}")
            return
        await self.app(scope, _replay(body, receive), send)


async def _multipart_problem(scope: Scope, body: bytes) -> str | None:
    """Parse the body as Starlette will; return why it fails, or None."""
    request = Request(scope, _replay(body, None))
    try:
        form = await request.form()
    except (MultiPartException, HTTPException) as error:
        return str(getattr(error, "message", None) or getattr(error, "detail", error))
    await form.close()
    return None


def _replay(body: bytes, receive: Receive | None) -> Receive:
    """A receive callable that hands the buffered body over once, then defers to the server's."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if receive is None:
            return {"type": "http.disconnect"}
        return await receive()

    return replay


async def _reply(send: Send, status: HTTPStatus, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": int(status), "headers": headers})
    await send({"type": "http.response.body", "body": body})
