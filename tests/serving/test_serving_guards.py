"""The request guard in front of the service, as ASGI: body size limit, media types, well-formed multipart,
one error body, the contract's /docs.json."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.requests import Request

from astrospect.serving.contract import PayloadTooLarge
from astrospect.serving.guards import RequestGuard

pytestmark = pytest.mark.unit

LIMIT = 1000


class RecordingApp:
    """The service stand-in: reads the body (as a form for multipart) and answers 200 with what it got."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form()
            upload = form["file"]
            self.seen.append(await upload.read())  # type: ignore[union-attr]
            await form.close()
        else:
            self.seen.append(await request.body())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


MEDIA_TYPES = {"/predict": "application/json", "/predict_file": "multipart/form-data"}


def call(
    body_chunks: list[bytes],
    headers: dict[str, str],
    path: str = "/predict_file",
    app: Any = None,
    method: str = "POST",
) -> tuple[int, Any, RecordingApp]:
    app = app or RecordingApp()
    guard = RequestGuard(
        app, max_bytes=LIMIT, media_types=MEDIA_TYPES, document=lambda: {"openapi": "3.0.2", "paths": {}}
    )
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "query_string": b"",
    }
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(body_chunks) - 1}
        for i, chunk in enumerate(body_chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    declared = dict(sent[0]["headers"]).get(b"content-length")
    assert declared is None or int(declared) == len(body)
    return status, (json.loads(body) if status != 200 or path == "/docs.json" else None), app


def multipart(content: bytes, boundary: str = "XyZ") -> tuple[bytes, dict[str, str]]:
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.npy"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {
        "content-type": f"multipart/form-data; boundary={boundary}",
        "content-length": str(len(body)),
    }


def test_bodies_within_the_limit_reach_the_service_unchanged() -> None:
    status, _, app = call([b"x" * 600, b"y" * 400], {"content-type": "application/json"}, path="/predict")
    assert status == 200
    assert app.seen == [b"x" * 600 + b"y" * 400]


def test_a_declared_body_over_the_limit_is_refused_unread() -> None:
    status, error, app = call([b"x" * 10], {"content-length": str(LIMIT + 1)})
    assert status == 413
    assert error == {
        "error": f"request body too large: expected at most {LIMIT} bytes, got {LIMIT + 1} bytes"
    }
    assert app.seen == []


def test_a_chunked_body_over_the_limit_fails_while_read() -> None:
    with pytest.raises(PayloadTooLarge, match="more than 1000 bytes"):  # BentoML turns it into a 413
        call([b"x" * 600, b"y" * 600], {"content-type": "application/json"}, path="/predict")


def test_a_malformed_content_length_is_a_400() -> None:
    status, error, _ = call([b"{}"], {"content-length": "12abc"})
    assert status == 400
    assert error is not None and "expected a decimal Content-Length header" in error["error"]


def test_a_good_upload_is_replayed_to_the_service() -> None:
    body, headers = multipart(b"\x93NUMPY payload")
    status, _, app = call([body[:50], body[50:]], headers)
    assert status == 200
    assert app.seen == [b"\x93NUMPY payload"]


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{}", "multipart/form-data", "Missing boundary in multipart"),
        (
            b"--XyZ\r\nbroken header line\r\n\r\n--XyZ--\r\n",
            "multipart/form-data; boundary=XyZ",
            "Invalid multipart",
        ),
    ],
)
def test_a_malformed_upload_is_a_400_that_says_why(body: bytes, content_type: str, reason: str) -> None:
    status, error, app = call([body], {"content-type": content_type, "content-length": str(len(body))})
    assert status == 400
    assert error is not None and error["error"].startswith("expected a multipart/form-data upload: ")
    assert reason in error["error"]
    assert app.seen == []


def test_an_upload_over_the_limit_without_length_is_a_413() -> None:
    body, headers = multipart(b"z" * (LIMIT + 10))
    del headers["content-length"]
    status, error, app = call([body[:500], body[500:]], headers)
    assert status == 413
    assert error is not None and "request body too large" in error["error"]
    assert app.seen == []


@pytest.mark.parametrize(
    ("path", "content_type", "status"),
    [
        ("/predict", "application/json", 200),
        ("/predict", "application/json; charset=utf-8", 200),
        ("/predict", "APPLICATION/JSON", 200),
        ("/predict", "text/plain", 415),
        ("/predict", "application/x-www-form-urlencoded", 415),  # curl -d without -H
        ("/predict", "multipart/form-data; boundary=XyZ", 415),
        ("/livez", "text/plain", 200),  # not an API route: BentoML's own
    ],
)
def test_each_api_route_takes_its_own_media_type(path: str, content_type: str, status: int) -> None:
    got, error, _ = call([b"{}"], {"content-type": content_type, "content-length": "2"}, path=path)
    assert got == status
    if status == 415:
        assert error == {
            "error": f"{path} takes Content-Type application/json, got {content_type.split(';')[0]!r}"
        }


def test_a_request_without_content_type_is_taken_as_the_routes() -> None:
    status, _, app = call([b"{}"], {"content-length": "2"}, path="/predict")
    assert status == 200
    assert app.seen == [b"{}"]


class ErrorApp:
    """Answers like BentoML 1.4.40 does for a BentoMLException: its message in a one-element list."""

    def __init__(self, body: bytes, status: int = 400, chunks: int = 1) -> None:
        self.body, self.status, self.chunks = body, status, chunks

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        size = len(self.body) // self.chunks + 1
        parts = [self.body[i : i + size] for i in range(0, len(self.body), size)]
        for i, part in enumerate(parts):
            await send({"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1})


@pytest.mark.parametrize("chunks", [1, 3])
def test_bentoml_list_error_bodies_become_one_object(chunks: int) -> None:
    app = ErrorApp(b'[{"error": "expected 5 bands"}]', status=415, chunks=chunks)
    status, error, _ = call([b"{}"], {"content-type": "application/json"}, path="/predict", app=app)
    assert (status, error) == (415, {"error": "expected 5 bands"})


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": "1 validation error for Input", "detail": [{"loc": ["images"], "msg": "x", "type": "y"}]}',
        b'[{"error": "a"}, {"error": "b"}]',  # not BentoML's one-element form: left as it is
    ],
)
def test_other_error_bodies_pass_unchanged(body: bytes) -> None:
    status, error, _ = call(
        [b"{}"], {"content-type": "application/json"}, path="/predict", app=ErrorApp(body)
    )
    assert status == 400
    assert error == json.loads(body)


def test_docs_json_is_the_contracts_document() -> None:
    status, document, app = call([b""], {}, path="/docs.json", method="GET")
    assert (status, document) == (200, {"openapi": "3.0.2", "paths": {}})
    assert app.seen == []
