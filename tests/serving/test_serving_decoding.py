"""Decoding the prediction routes' bodies: flat JSON and raw float32, the same cutouts and the same refusals."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import jsonschema
import numpy as np
import pytest
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from astrospect.serving.contract import SHAPE_HEADER, BadRequest
from astrospect.serving.decoding import (
    CUTOUT_VALUES,
    BinaryCutouts,
    EbvPerCutout,
    FlatCutouts,
    Layout,
    decode_binary,
    ebv_per_cutout,
    from_flat,
)
from astrospect.serving.schemas import CutoutError, FloatArray

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(11)
CHANNELS_LAST = RNG.normal(1.0, 0.5, (3, 32, 32, 5)).astype(np.float32)
BAND_FIRST = np.ascontiguousarray(np.transpose(CHANNELS_LAST, (0, 3, 1, 2)))
MAX = 4


class PredictInput(BaseModel):
    """The JSON body of ``predict``, as BentoML builds it from the method's signature."""

    images: Annotated[FloatArray, FlatCutouts(max_cutouts=MAX)]
    layout: Layout
    ebv: Annotated[list[float | None] | None, EbvPerCutout(max_cutouts=MAX)] = None


def json_body(images: np.ndarray, layout: str) -> bytes:
    return json.dumps({"images": images.reshape(len(images), -1).tolist(), "layout": layout}).encode()


def decoded_json(body: bytes | str) -> np.ndarray:
    parsed = PredictInput.model_validate_json(body)
    return from_flat(parsed.images, parsed.layout, max_cutouts=MAX)


# --- JSON ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("images", "layout"), [(CHANNELS_LAST, "channels-last"), (BAND_FIRST, "band-first")])
def test_flat_json_in_either_layout_gives_the_model_input(images: np.ndarray, layout: str) -> None:
    decoded = decoded_json(json_body(images, layout))
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, CHANNELS_LAST)


def test_integers_are_numbers() -> None:
    body = json.dumps({"images": [[1] * CUTOUT_VALUES], "layout": "channels-last"})
    assert float(decoded_json(body).sum()) == CUTOUT_VALUES


def _body(images: Any, layout: Any = "channels-last") -> str:
    return json.dumps({"images": images, "layout": layout})


ONE = [1.0] * CUTOUT_VALUES


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        (_body([]), ["images"], "at least 1 item"),
        (_body([[]]), ["images", 0], "at least 5120 items"),
        (_body([ONE[:-1]]), ["images", 0], "at least 5120 items"),
        (_body([[*ONE, 1.0]]), ["images", 0], "at most 5120 items"),
        (_body([ONE] * (MAX + 1)), ["images"], "at most 4 items"),
        (_body([["1.0", *ONE[1:]]]), ["images", 0, 0], "Input should be a valid number"),
        (_body([[True, *ONE[1:]]]), ["images", 0, 0], "Input should be a valid number"),
        (_body([[None, *ONE[1:]]]), ["images", 0, 0], "Input should be a valid number"),
        (_body([[*ONE[:7], 1e39, *ONE[8:]]]), ["images", 0, 7], "less than or equal to 3402823466"),
        (_body([ONE], "channels-first"), ["layout"], "'channels-last' or 'band-first'"),
        (_body(3.5), ["images"], "valid array"),
        (json.dumps({"images": [ONE]}), ["layout"], "Field required"),
    ],
)
def test_bad_json_cutouts_are_refused_at_the_failing_field(body: str, loc: list[Any], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        decoded_json(body)
    (first, *_) = refused.value.errors()
    assert list(first["loc"]) == loc
    assert message in first["msg"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_non_finite_literals_are_refused(literal: str) -> None:
    body = _body([ONE]).replace("1.0", literal, 1)
    with pytest.raises(ValidationError, match="finite number"):
        decoded_json(body)


def test_the_json_schema_is_exactly_what_is_accepted() -> None:
    schema = PredictInput.model_json_schema()
    images = schema["properties"]["images"]
    assert (images["minItems"], images["maxItems"]) == (1, MAX)
    cutout = images["items"]
    assert (cutout["minItems"], cutout["maxItems"]) == (CUTOUT_VALUES, CUTOUT_VALUES)
    assert cutout["items"]["type"] == "number"
    assert schema["properties"]["layout"]["enum"] == ["channels-last", "band-first"]
    assert schema["required"] == ["images", "layout"]
    # Schema-valid means accepted, and schema-invalid means refused, on the cases above's boundaries.
    for body in ([ONE], [ONE] * MAX, [[0] * CUTOUT_VALUES]):
        jsonschema.validate(json.loads(_body(body)), schema)
        decoded_json(_body(body))
    for body in ([], [[]], [ONE[:-1]], [ONE] * (MAX + 1), [[1e39, *ONE[1:]]]):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(json.loads(_body(body)), schema)
        with pytest.raises(ValidationError):
            decoded_json(_body(body))


# --- JSON E(B-V) ----------------------------------------------------------------------------------------


def decoded_ebv(body: bytes | str) -> np.ndarray | None:
    """The ``ebv`` the service hands the batcher for this body: the field's type, then its length check."""
    parsed = PredictInput.model_validate_json(body)
    cutouts = from_flat(parsed.images, parsed.layout, max_cutouts=MAX)
    return ebv_per_cutout(parsed.ebv, len(cutouts))


def _ebv_body(ebv: Any, n: int = 3) -> str:
    return json.dumps({"images": [ONE] * n, "layout": "channels-last", "ebv": ebv})


def test_ebv_is_one_float32_per_cutout_in_order_with_nan_where_null() -> None:
    ebv = decoded_ebv(_ebv_body([0.031, None, 0]))
    assert ebv is not None
    assert ebv.dtype == np.float32
    np.testing.assert_array_equal(ebv, np.float32([0.031, np.nan, 0.0]))


@pytest.mark.parametrize("body", [json.dumps({"images": [ONE], "layout": "channels-last"}), _ebv_body(None)])
def test_absent_or_null_ebv_is_none_all_unknown(body: str) -> None:
    assert decoded_ebv(body) is None


@pytest.mark.parametrize(
    ("ebv", "loc", "message"),
    [
        ([0.1, -0.01, 0.2], ["ebv", 1], "greater than or equal to 0"),
        ([0.1, 0.2, "0.3"], ["ebv", 2], "Input should be a valid number"),
        ([True, 0.2, 0.3], ["ebv", 0], "Input should be a valid number"),
        ([0.1, 0.2, 1e39], ["ebv", 2], "less than or equal to 3402823466"),
        ([], ["ebv"], "at least 1 item"),
        ([0.1] * (MAX + 1), ["ebv"], "at most 4 items"),
        (0.1, ["ebv"], "Input should be a valid array"),
    ],
)
def test_bad_ebv_values_are_refused_at_the_ebv_field(ebv: Any, loc: list[Any], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        decoded_ebv(_ebv_body(ebv))
    (first, *_) = refused.value.errors()
    assert list(first["loc"]) == loc
    assert message in first["msg"]
    assert str(refused.value).splitlines()[1].startswith("ebv")  # the message BentoML sends names the field


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_ebv_is_refused(literal: str) -> None:
    body = _ebv_body([0.1, 0.2, 0.3]).replace("0.2", literal)
    with pytest.raises(ValidationError) as refused:
        decoded_ebv(body)
    (first,) = refused.value.errors()
    assert list(first["loc"]) == ["ebv", 1]
    assert "finite number" in first["msg"]


@pytest.mark.parametrize("n_values", [2, 4])
def test_ebv_of_another_length_than_images_is_a_400_naming_the_field(n_values: int) -> None:
    with pytest.raises(BadRequest) as refused:
        decoded_ebv(_ebv_body([0.1] * n_values, n=3))
    assert refused.value.error_code == 400
    assert str(refused.value) == (
        f"ebv: expected one value per cutout (3, as many as images), got {n_values}"
    )


def _as_json_schema(openapi: Any) -> Any:
    """An OpenAPI 3.0 schema in JSON Schema's words: each ``nullable`` node becomes an anyOf with null."""
    if not isinstance(openapi, dict):
        return openapi
    converted = {key: _as_json_schema(value) for key, value in openapi.items() if key != "nullable"}
    return {"anyOf": [converted, {"type": "null"}]} if openapi.get("nullable") else converted


def test_the_ebv_schema_is_what_is_accepted() -> None:
    ebv = PredictInput.model_json_schema()["properties"]["ebv"]
    assert "ebv" not in PredictInput.model_json_schema()["required"]
    assert "one per cutout" in ebv["description"]
    schema = _as_json_schema(ebv)  # the document is OpenAPI 3.0: `nullable` where JSON Schema has null
    for good in (None, [0.0], [None, 0.5]):
        jsonschema.validate(good, schema)
        decoded_ebv(_ebv_body(good, n=1 if good is None else len(good)))
    for bad in ([], [-0.1], ["0.1"], [0.1] * (MAX + 1)):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
        with pytest.raises(ValidationError):
            decoded_ebv(_ebv_body(bad))


# --- binary --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("images", "shape"), [(CHANNELS_LAST, "3,32,32,5"), (BAND_FIRST, "3,5,32,32")], ids=["last", "first"]
)
def test_binary_in_either_layout_gives_the_model_input(images: np.ndarray, shape: str) -> None:
    decoded = decode_binary(images.astype("<f4").tobytes(), shape, max_cutouts=MAX)
    np.testing.assert_array_equal(decoded, CHANNELS_LAST)


def test_binary_64_pixel_cutouts_are_centre_cropped() -> None:
    padded = np.pad(BAND_FIRST, ((0, 0), (0, 0), (16, 16), (16, 16)), constant_values=-1.0)
    decoded = decode_binary(padded.astype("<f4").tobytes(), "3,5,64,64", max_cutouts=MAX)
    np.testing.assert_array_equal(decoded, CHANNELS_LAST)


def test_binary_and_json_decode_to_the_same_array() -> None:
    from_binary = decode_binary(BAND_FIRST.tobytes(), "3,5,32,32", max_cutouts=MAX)
    np.testing.assert_array_equal(from_binary, decoded_json(json_body(BAND_FIRST, "band-first")))


ONE_BINARY = CHANNELS_LAST[:1].tobytes()


def _with(value: float) -> bytes:
    images = CHANNELS_LAST[:1].copy()
    images[0, 3, 4, 2] = value
    return images.tobytes()


@pytest.mark.parametrize(
    ("body", "shape", "message"),
    [
        (ONE_BINARY, None, f"expected a {SHAPE_HEADER} header"),
        (ONE_BINARY, "1,32,32", "expected N,5,32,32 or N,32,32,5"),
        (ONE_BINARY, "1, 32, 32, 5", "expected N,5,32,32 or N,32,32,5"),
        (ONE_BINARY, "0,32,32,5", "expected N,5,32,32 or N,32,32,5"),
        (ONE_BINARY, "1,4,32,32", "expected N,5,32,32 or N,32,32,5"),
        (ONE_BINARY, "1,16,16,5", "expected N,5,32,32 or N,32,32,5"),
        (ONE_BINARY * (MAX + 1), f"{MAX + 1},32,32,5", "expected at most 4 cutouts per request, got 5"),
        (ONE_BINARY, "2,32,32,5", "expected 40960 bytes"),
        (ONE_BINARY[:-1], "1,32,32,5", "got 20479"),
        (CHANNELS_LAST[:1].astype(np.float64).tobytes(), "1,32,32,5", "expected 20480 bytes"),  # float64
        (b"", "1,32,32,5", "got 0"),
        (
            _with(np.nan),
            "1,32,32,5",
            "expected finite fluxes, got 1 NaN or infinite value(s); the first in cutout 0, band r",
        ),
        (_with(np.inf), "1,32,32,5", "expected finite fluxes"),
        (_with(-np.inf), "1,32,32,5", "expected finite fluxes"),
    ],
)
def test_bad_binary_bodies_are_refused_with_what_was_expected(
    body: bytes, shape: str | None, message: str
) -> None:
    with pytest.raises(CutoutError) as refused:
        decode_binary(body, shape, max_cutouts=MAX)
    assert message in str(refused.value)


class BinaryInput(BinaryCutouts):
    max_cutouts = MAX


def _request(body: bytes, headers: dict[str, str]) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict_binary",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "query_string": b"",
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def test_the_binary_input_spec_reads_the_body_and_the_header() -> None:
    request = _request(BAND_FIRST.tobytes(), {SHAPE_HEADER: "3,5,32,32"})
    parsed = asyncio.run(BinaryInput.from_http_request(request, serde=None))  # type: ignore[arg-type]
    np.testing.assert_array_equal(parsed.images, CHANNELS_LAST)


def test_the_binary_input_spec_refuses_with_a_400() -> None:
    request = _request(ONE_BINARY, {SHAPE_HEADER: "2,32,32,5"})
    with pytest.raises(BadRequest, match="expected 40960 bytes") as refused:
        asyncio.run(BinaryInput.from_http_request(request, serde=None))  # type: ignore[arg-type]
    assert refused.value.error_code == 400
