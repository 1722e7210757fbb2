"""ASGI middleware in front of the service: what BentoML does not do for the contract (:mod:`.contract`).

- **Body size limit.** BentoML reads whole bodies into memory and has no limit: a declared
  ``Content-Length`` over the limit is answered 413 before the body is read, and a chunked body fails with
  413 as soon as it passes the limit.
- **Media types.** BentoML parses any body it does not recognise as JSON; a request to an API route with
  another ``Content-Type`` than the route's is answered 415 (a request without one is taken as the route's).
- **Multipart bodies are parsed first.** BentoML answers a malformed ``multipart/form-data`` request (no
  boundary, broken part headers, an oversized field) with a 500, because Starlette's parser raises an HTTP
  400 exception that BentoML catches as an unexpected error; such a body is refused here with a 400 that
  says why, and a good one is replayed to the service.
- **One error body.** BentoML's ``[{"error": ...}]`` bodies are sent as ``{"error": ...}``.
- **``/docs.json``** is the contract's document, built once from BentoML's.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from astrospect.serving.contract import MULTIPART, PayloadTooLarge, error_body, unwrap_error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
DOCUMENT_PATH = "/docs.json"


class RequestGuard:
    """At most ``max_bytes`` of request body, each route's media type, multipart bodies that parse, one
    error body; ``media_types`` maps an API route to the media type it takes, ``document`` builds /docs.json."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        media_types: Mapping[str, str] | None = None,
        document: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.media_types = dict(media_types or {})
        self._document = document
        self._document_body: bytes | None = None

    def _too_large(self, size: str) -> str:
        return f"request body too large: expected at most {self.max_bytes} bytes, got {size}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._document is not None and scope["path"] == DOCUMENT_PATH and scope["method"] == "GET":
            await self._send_document(send)
            return
        send = _unwrapping_errors(send)
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
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower().decode("latin-1")
        expected = self.media_types.get(scope["path"])
        if expected is not None and media_type and media_type != expected:
            reason = f"{scope['path']} takes Content-Type {expected}, got {media_type[:64]!r}"
            await _reply(send, HTTPStatus.UNSUPPORTED_MEDIA_TYPE, reason)
            return
        if media_type == MULTIPART:
            await self._multipart(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(self._too_large(f"more than {self.max_bytes} bytes (chunked)"))
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

    async def _send_document(self, send: Send) -> None:
        if self._document_body is None:
            assert self._document is not None
            self._document_body = json.dumps(self._document()).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._document_body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self._document_body})


def _unwrapping_errors(send: Send) -> Send:
    """A send callable that holds an error response's body and sends BentoML's list form as one object."""
    held: Message | None = None
    chunks: list[bytes] = []

    async def unwrapping(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start" and message["status"] >= 400:
            held = message
            return
        if held is None or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        start, body = held, b"".join(chunks)
        held = None
        unwrapped = unwrap_error_body(body)
        if unwrapped is not None:
            body = unwrapped
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            start = {**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return unwrapping


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
    body = error_body(message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": int(status), "headers": headers})
    await send({"type": "http.response.body", "body": body})
