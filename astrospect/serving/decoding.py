"""Request bodies of the prediction routes, decoded into the model's layout: flat JSON and raw float32.

Both end in :func:`~astrospect.serving.schemas.validate_cutouts`, the one cutout check (shape, count, finite
fluxes), so every path gives the same guarantees; the body size limit is the request guard's.

- **JSON** (``predict``): ``{"images": [[...5120 numbers...], ...], "layout": "channels-last"}``, one flat
  array per cutout. The type below is both pydantic's validator (in Rust, straight from the JSON bytes:
  strict numbers, finite, within float32, exactly 5120 per cutout, 1 to ``max_cutouts`` cutouts) and the
  schema in ``/docs.json``, so a body valid by the document is a body the service takes. An optional
  ``ebv`` field gives each cutout's Galactic E(B-V) (null where unknown): its values are checked by the same
  kind of type, its length against ``images`` by :func:`ebv_per_cutout` (a JSON schema cannot relate them).
- **Binary** (``predict_binary``): the raw bytes of a C-ordered little-endian float32 array, its shape in
  the ``Cutout-Shape`` header (``N,5,32,32`` band-first or ``N,32,32,5`` channels-last, 64x64 centre-cropped).
  The body must hold exactly ``4 * prod(shape)`` bytes, which also catches float64 or float16 sent by mistake.
  No E(B-V) travels with it: a champion that takes E(B-V) answers binary cutouts with its unknown-E(B-V)
  fallback (send JSON, or a shard with ``ebv``, to use it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import annotated_types
import bentoml
import numpy as np
from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler, TypeAdapter, WithJsonSchema
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from astrospect.serving.contract import SHAPE_HEADER, SHAPE_PATTERN, BadRequest
from astrospect.serving.schemas import CutoutError, FloatArray, validate_cutouts
from astrospect.settings import CUTOUT_SIZE, N_BANDS

if TYPE_CHECKING:
    from _bentoml_impl.serde import Serde
    from starlette.requests import Request

CUTOUT_VALUES = CUTOUT_SIZE * CUTOUT_SIZE * N_BANDS  # 5120 numbers per flat cutout
FLOAT32_MAX = float(np.finfo(np.float32).max)  # a larger flux would become inf in the model's dtype
Layout = Literal["channels-last", "band-first"]
LAYOUT_AXES: dict[str, tuple[int, int, int]] = {
    "channels-last": (CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS),
    "band-first": (N_BANDS, CUTOUT_SIZE, CUTOUT_SIZE),
}
_SHAPE = re.compile(SHAPE_PATTERN)

Flux = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
# Galactic foreground E(B-V) in magnitudes: a reddening, never negative; null in the list means unknown.
EbvValue = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=FLOAT32_MAX)]
EBV_DESCRIPTION = (
    "optional: each cutout's Galactic foreground E(B-V) in magnitudes (SFD, as SDSS catalogues give it), in"
    " the order of `images`, exactly one per cutout; null where unknown, and the whole field absent or null"
    " when none is known. A champion with an E(B-V) input is more precise with it (without, it uses its"
    " unknown-E(B-V) fallback); any other champion ignores it."
)


@dataclass(frozen=True)
class FlatCutouts:
    """Pydantic annotation for the JSON ``images`` field: validated rows, returned as (N, 5120) float32.

    The list type is the single description: pydantic validates with it and writes the JSON schema from it.
    """

    max_cutouts: int

    def list_type(self) -> Any:
        cutout = Annotated[
            list[Flux],
            annotated_types.Len(CUTOUT_VALUES, CUTOUT_VALUES),
            Field(description=f"one cutout, {CUTOUT_VALUES} fluxes in `layout` order, C order"),
        ]
        return Annotated[list[cutout], annotated_types.Len(1, self.max_cutouts)]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            _rows_to_array,
            handler.generate_schema(self.list_type()),
            serialization=core_schema.plain_serializer_function_ser_schema(_to_lists),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        described: JsonSchemaValue = TypeAdapter(self.list_type()).json_schema()
        described["description"] = (
            f"1 to {self.max_cutouts} cutouts, each a flat array of {CUTOUT_VALUES} raw ugriz fluxes in"
            f" nanomaggies per pixel, in the axis order `layout` names; every flux finite, within float32."
        )
        return described


@dataclass(frozen=True)
class EbvPerCutout:
    """Pydantic annotation for the JSON ``ebv`` field: a list of 1 to ``max_cutouts`` E(B-V) values or nulls,
    or null. The list type is the single description, as for :class:`FlatCutouts`; whether the list holds
    one value per cutout is :func:`ebv_per_cutout`'s to say, once ``images`` is decoded."""

    max_cutouts: int

    def list_type(self) -> Any:
        return Annotated[list[EbvValue | None], annotated_types.Len(1, self.max_cutouts)] | None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return handler.generate_schema(self.list_type())

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # Written in OpenAPI 3.0's words (`nullable`), the document's version: BentoML keeps only the first
        # branch of an anyOf, which would document a null field, or a null value, as refused.
        return {
            "type": "array",
            "nullable": True,
            "minItems": 1,
            "maxItems": self.max_cutouts,
            "items": {"type": "number", "minimum": 0.0, "maximum": FLOAT32_MAX, "nullable": True},
            "description": EBV_DESCRIPTION,
        }


def _rows_to_array(rows: list[list[float]]) -> FloatArray:
    return np.array(rows, dtype=np.float32)


def _to_lists(array: FloatArray) -> list[Any]:
    return list(np.asarray(array).tolist())


def from_flat(rows: FloatArray, layout: str, *, max_cutouts: int) -> FloatArray:
    """(N, 5120) rows in ``layout`` order as the model's (N, 32, 32, 5)."""
    return validate_cutouts(rows.reshape(len(rows), *LAYOUT_AXES[layout]), max_cutouts=max_cutouts)


def ebv_per_cutout(values: list[float | None] | None, n_cutouts: int) -> FloatArray | None:
    """The JSON ``ebv`` field (each value already checked by its type) as float32, NaN where unknown; None
    when absent. A list that is not one value per cutout is a :class:`BadRequest` naming the field."""
    if values is None:
        return None
    if len(values) != n_cutouts:
        raise BadRequest(
            f"ebv: expected one value per cutout ({n_cutouts}, as many as images), got {len(values)}"
        )
    return np.array([np.nan if value is None else value for value in values], np.float32)


def decode_binary(body: bytes, shape_header: str | None, *, max_cutouts: int) -> FloatArray:
    """A raw little-endian float32 body of the shape ``shape_header`` names, as the model's layout."""
    if shape_header is None:
        raise CutoutError(
            f"expected a {SHAPE_HEADER} header giving the body's shape, e.g. '2,5,32,32' (band-first) or"
            " '2,32,32,5' (channels-last)"
        )
    if not _SHAPE.fullmatch(shape_header):
        raise CutoutError(
            f"{SHAPE_HEADER}: expected N,5,32,32 or N,32,32,5 (or 64x64), N >= 1, no spaces; got {shape_header[:64]!r}"
        )
    shape = tuple(int(axis) for axis in shape_header.split(","))
    if shape[0] > max_cutouts:
        raise CutoutError(
            f"{SHAPE_HEADER}: expected at most {max_cutouts} cutouts per request, got {shape[0]}"
        )
    expected = 4 * math.prod(shape)
    if len(body) != expected:
        raise CutoutError(
            f"body: expected {expected} bytes (float32, little-endian, shape {shape_header}), got {len(body)}"
        )
    return validate_cutouts(
        np.frombuffer(body, dtype="<f4").reshape(shape), max_cutouts=max_cutouts, source="body"
    )


class BinaryCutouts(bentoml.IODescriptor):
    """BentoML input spec of ``predict_binary``: the body is read as bytes, never parsed as JSON.

    A subclass sets ``max_cutouts``. BentoML calls ``from_http_request`` for each request and passes
    ``images`` to the API method.
    """

    media_type: ClassVar[str | None] = "application/octet-stream"
    max_cutouts: ClassVar[int] = 1

    images: Annotated[Any, WithJsonSchema({"type": "string", "format": "binary"})]

    @classmethod
    async def from_http_request(cls, request: Request, serde: Serde) -> BinaryCutouts:
        body = await request.body()
        try:
            images = decode_binary(body, request.headers.get(SHAPE_HEADER), max_cutouts=cls.max_cutouts)
        except CutoutError as error:
            raise BadRequest(str(error)) from error
        return cls.model_construct(images=images)
