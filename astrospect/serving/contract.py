"""The HTTP contract of the service: one error model, the status codes each route answers, the OpenAPI document.

Every error the service sends is one JSON object, ``{"error": "<what was expected>", "detail": [...]}``, with
``detail`` (pydantic's list of ``{type, loc, msg, url}``) only on request validation errors. BentoML 1.4.40
sends its own exceptions' 4xx bodies as a one-element list (``[{"error": ...}]``, BentoML issue 4232); the
request guard unwraps them (:func:`unwrap_error_body`), so a client reads every error with one schema.

``ROUTES`` says, per API route, the media type it takes and the error statuses it can answer; the request
guard enforces the media type (415) and :func:`openapi_document` writes both into ``/docs.json`` in place of
BentoML's generic 400/404/500 entries, whose 400 schema declares ``detail`` a string. A new endpoint adds
its row here; its request body types (:mod:`astrospect.serving.decoding`) already describe themselves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from bentoml.exceptions import BentoMLException, InvalidArgument

JSON = "application/json"
BINARY = "application/octet-stream"
MULTIPART = "multipart/form-data"
HDF5 = "application/x-hdf5"  # an uploaded shard, and predict_file's qp answer
ERROR_SCHEMA = "#/components/schemas/Error"
# The binary route's shape header: N cutouts band-first or channels-last, 32x32 or 64x64 (centre-cropped).
SHAPE_HEADER = "Cutout-Shape"
SHAPE_PATTERN = r"^[1-9][0-9]{0,8},(?:5,32,32|32,32,5|5,64,64|64,64,5)$"


class BadRequest(InvalidArgument):
    """A request the service cannot take (400); the message says what was expected."""


class PayloadTooLarge(BentoMLException):
    """A body over the configured limit (413)."""

    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(BentoMLException):
    """A body, or an uploaded file, in a format the route does not take (415)."""

    error_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class NoPdfs(BentoMLException):
    """PDFs asked of a champion that has none, a point-estimate model (409).

    409 Conflict, not 400 or 422: the request is well formed and would be answered by a PDF champion; what
    refuses it is the state of the server, which the next deployment can change (RFC 9110, 15.5.10).
    """

    error_code = HTTPStatus.CONFLICT


class Busy(BentoMLException):
    """The batch queue is full (503): the client should retry."""

    error_code = HTTPStatus.SERVICE_UNAVAILABLE


# What each status means on this service; the same words in /docs.json for every route that answers it.
MEANING: dict[HTTPStatus, str] = {
    HTTPStatus.BAD_REQUEST: (
        "The request does not match this document: not valid JSON, a missing or mistyped field, a header"
        " out of its pattern, cutouts of the wrong shape or count, or with NaN or infinite fluxes, or an"
        " `ebv` that is not one finite, non-negative value (or null) per cutout."
        " `error` says what was expected; `detail` lists each failing field for JSON bodies."
    ),
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: (
        "The body is over the limit (`max_body_bytes` in /metadata), declared or counted as it arrives."
    ),
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: (
        "The Content-Type is not the one this route takes, or an uploaded file is neither an HDF5 shard"
        " nor a .npy array."
    ),
    HTTPStatus.CONFLICT: (
        "The champion is a point-estimate model (no PDF head; `pdf_bins` is null in /metadata): it gives"
        " one redshift per cutout and no PDF, so predict_pdf, predict_pdf_binary and predict_file with"
        " format=qp are refused. predict, predict_binary and predict_file's JSON answer still work."
    ),
    HTTPStatus.INTERNAL_SERVER_ERROR: "An unexpected error; the server log has the traceback.",
    HTTPStatus.SERVICE_UNAVAILABLE: "The batch queue is full (about 2 s of model work): retry shortly.",
}
ANY_REQUEST = (
    HTTPStatus.BAD_REQUEST,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    HTTPStatus.INTERNAL_SERVER_ERROR,
)
PREDICTION = (*ANY_REQUEST, HTTPStatus.SERVICE_UNAVAILABLE)
PDF_PREDICTION = (*PREDICTION, HTTPStatus.CONFLICT)  # a route that needs a PDF champion (or may)
BINARY_FILE: dict[str, Any] = {"type": "string", "format": "binary"}


@dataclass(frozen=True)
class Route:
    """What one API route takes and which error statuses it can answer."""

    media_type: str
    errors: tuple[HTTPStatus, ...]
    # OpenAPI additions that BentoML's generator cannot express: header parameters, a raw body schema,
    # the content types of a multipart upload's parts.
    parameters: tuple[dict[str, Any], ...] = ()
    body_schema: dict[str, Any] | None = None
    part_types: Mapping[str, str] = field(default_factory=dict)
    body_required: bool = True
    # 200 answers in other media types than JSON (e.g. a file), each with its schema
    other_answers: Mapping[str, dict[str, Any]] = field(default_factory=dict)


SHAPE_PARAMETER: dict[str, Any] = {
    "name": SHAPE_HEADER,
    "in": "header",
    "required": True,
    "description": (
        "shape of the float32 array in the body: N,5,32,32 (band-first) or N,32,32,5"
        " (channels-last), 64x64 likewise; the body holds exactly 4 x N x 5 x H x W bytes"
    ),
    "schema": {"type": "string", "pattern": SHAPE_PATTERN},
}
BINARY_BODY_SCHEMA: dict[str, Any] = {
    **BINARY_FILE,
    "description": "raw little-endian float32 fluxes in nanomaggies, C order, of the shape in Cutout-Shape",
}

ROUTES: dict[str, Route] = {
    "/predict": Route(JSON, PREDICTION),
    "/predict_binary": Route(
        BINARY, PREDICTION, parameters=(SHAPE_PARAMETER,), body_schema=BINARY_BODY_SCHEMA
    ),
    "/predict_pdf": Route(JSON, PDF_PREDICTION),
    "/predict_pdf_binary": Route(
        BINARY, PDF_PREDICTION, parameters=(SHAPE_PARAMETER,), body_schema=BINARY_BODY_SCHEMA
    ),
    "/predict_file": Route(
        MULTIPART,
        PDF_PREDICTION,
        part_types={"file": f"{HDF5}, application/x-npy"},
        other_answers={
            HDF5: {
                **BINARY_FILE,
                "description": (
                    "with format=qp: a qp HDF5 file (qp.read opens it, saved with the suffix .hdf5) of the"
                    " cutouts' PDFs, a qp.hist ensemble over the champion's bins, objid as ancillary data"
                    " when the upload has one"
                ),
            }
        },
    ),
    "/metadata": Route(JSON, ANY_REQUEST, body_required=False),  # no body reads as {}
}


def error_schemas() -> dict[str, Any]:
    """The error model's JSON schemas, as OpenAPI components."""
    return {
        "Error": {
            "type": "object",
            "title": "Error",
            "description": "Every error body of this service.",
            "required": ["error"],
            "properties": {
                "error": {"type": "string", "description": "what was expected, and what was received"},
                "detail": {
                    "type": "array",
                    "description": "request validation errors only: one entry per failing field",
                    "items": {"$ref": "#/components/schemas/ValidationIssue"},
                },
            },
        },
        "ValidationIssue": {
            "type": "object",
            "title": "ValidationIssue",
            "required": ["type", "loc", "msg"],
            "properties": {
                "type": {"type": "string", "description": "pydantic's error type, e.g. too_short"},
                "loc": {
                    "type": "array",
                    "description": 'path to the failing field, e.g. ["images", 0]',
                    "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                },
                "msg": {"type": "string"},
                "url": {"type": "string"},
            },
        },
    }


def error_response(status: HTTPStatus) -> dict[str, Any]:
    return {"description": MEANING[status], "content": {JSON: {"schema": {"$ref": ERROR_SCHEMA}}}}


def openapi_document(spec: dict[str, Any], routes: Mapping[str, Route]) -> dict[str, Any]:
    """BentoML's generated document (``Service.openapi_spec.asdict()``) with this service's contract.

    Per route: the answer's schema is its pydantic component, the documented error statuses replace
    BentoML's generic ones, every error body is ``Error``, and the route's own parameters, raw body schema,
    upload part types and other answers (a file) are added.
    """
    document = json.loads(json.dumps(spec))  # a deep copy: BentoML's objects stay untouched
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for generic in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(generic, None)
    schemas.update(error_schemas())
    for path, route in routes.items():
        operation = document["paths"][path]["post"]
        success = operation["responses"][str(HTTPStatus.OK.value)]
        answer = success["content"][JSON]
        if answer["schema"].get("title") in schemas:
            # BentoML inlines the answer's fields and keeps the first branch of each anyOf, so a field
            # that may be null (pdf_summary from a point model) would be documented as never null; the
            # component it was made from is pydantic's exact schema.
            answer["schema"] = {"$ref": f"#/components/schemas/{answer['schema']['title']}"}
        success["content"].update(
            {media: {"schema": schema} for media, schema in route.other_answers.items()}
        )
        operation["responses"] = {
            str(HTTPStatus.OK.value): success,
            **{str(status.value): error_response(status) for status in route.errors},
        }
        body = operation["requestBody"]
        body["required"] = route.body_required
        (content,) = body["content"].values()
        if route.body_schema is not None:
            content["schema"] = route.body_schema
        if route.part_types:
            content["encoding"] = {part: {"contentType": types} for part, types in route.part_types.items()}
        body["content"] = {route.media_type: content}
        if route.parameters:
            operation["parameters"] = list(route.parameters)
    # BentoML answers 503 on /readyz until every worker has loaded its model.
    document["paths"]["/readyz"]["get"]["responses"][str(HTTPStatus.SERVICE_UNAVAILABLE.value)] = {
        "description": "Not ready: a worker is still loading or warming its model."
    }
    return document


def unwrap_error_body(body: bytes) -> bytes | None:
    """BentoML's ``[{"error": ...}]`` as ``{"error": ...}``; None when ``body`` is already an object."""
    if not body.startswith(b"["):
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if isinstance(parsed, list) and len(parsed) == 1 and isinstance(parsed[0], dict) and "error" in parsed[0]:
        return json.dumps(parsed[0]).encode()
    return None


def error_body(message: str) -> bytes:
    """An ``Error`` body for the responses the request guard sends itself."""
    return json.dumps({"error": message}).encode()
