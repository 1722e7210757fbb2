"""BentoML's floor for the service's routes: the same route names, workers and input kinds, and no work.

``make bench-serving`` serves this beside the champion and loads both with the same bodies, so each route's
ratio says how close the service comes to what BentoML itself allows on this machine. Each route takes its
body as the service's does (a JSON object with ``images`` and ``layout``, the raw bytes through an
:class:`bentoml.IODescriptor` that reads them, a multipart upload saved to a file) and answers a constant.
Same worker count as the service (``ASTROSPECT_SERVING_WORKERS``), access log off as there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import bentoml
from pydantic import WithJsonSchema

from astrospect.settings import load_settings

if TYPE_CHECKING:
    from _bentoml_impl.serde import Serde
    from starlette.requests import Request

SETTINGS = load_settings()
ANSWER = {"redshift": [0.0]}


class RawBody(bentoml.IODescriptor):
    """The body as bytes, read the way the service's binary input reads it, and not decoded."""

    media_type = "application/octet-stream"
    images: Annotated[Any, WithJsonSchema({"type": "string", "format": "binary"})]

    @classmethod
    async def from_http_request(cls, request: Request, serde: Serde) -> RawBody:
        return cls.model_construct(images=await request.body())


@bentoml.service(
    name="empty-endpoint",
    workers=SETTINGS.serving_workers,
    traffic={"timeout": 60},
    logging={"access": {"enabled": False}},
)
class EmptyEndpoint:
    """Every route reads its body and answers a constant."""

    @bentoml.api
    async def predict(self, images: list[list[float]], layout: str) -> dict[str, list[float]]:
        return ANSWER

    @bentoml.api(input_spec=RawBody)
    async def predict_binary(self, images: bytes) -> dict[str, list[float]]:
        return ANSWER

    @bentoml.api
    async def predict_pdf(self, images: list[list[float]], layout: str) -> dict[str, list[float]]:
        return ANSWER

    @bentoml.api
    async def predict_file(self, file: Path) -> dict[str, list[float]]:
        return ANSWER
