"""Schemathesis hooks for the serving fuzz test (``SCHEMATHESIS_HOOKS``): valid bodies where JSON Schema stops.

The document says everything a JSON schema can: the JSON route's exact sizes and bounds, the binary route's
shape-header pattern, the upload's part types. What it cannot say is how two parts of a request agree, or
what bytes a file format holds: that the binary body holds exactly ``4 x prod(Cutout-Shape)`` bytes of
finite float32, that the JSON routes' ``ebv`` holds one value per cutout of ``images``, or that an
``application/x-npy`` part is a ``.npy`` array of cutouts. These hooks teach
Schemathesis exactly that, the way its documentation says to for custom media types, so its schema-valid
(positive) requests are the ones the service must accept. Negative requests are left as Schemathesis makes
them; the integration tests send the bad bodies these strategies never make (NaN, wrong length, bad files).
"""

from __future__ import annotations

import io
import os

import h5py
import hypothesis.strategies as st
import numpy as np
import schemathesis
from hypothesis.extra.numpy import arrays
from schemathesis import Case

from astrospect.serving.contract import SHAPE_HEADER
from astrospect.settings import CUTOUT_SIZE, N_BANDS

MAX_CUTOUTS = int(os.environ["ASTROSPECT_SERVING_MAX_CUTOUTS"])  # the served limit, set by the test
CHANNELS_LAST = (CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS)
BAND_FIRST = (N_BANDS, CUTOUT_SIZE, CUTOUT_SIZE)
FLUX = st.floats(-1e4, 1e4, width=32)


@st.composite
def cutout_arrays(draw: st.DrawFn) -> np.ndarray:
    """1 to MAX_CUTOUTS finite float32 cutouts, band-first or channels-last."""
    n = draw(st.integers(1, MAX_CUTOUTS))
    layout = draw(st.sampled_from([CHANNELS_LAST, BAND_FIRST]))
    return draw(arrays(np.float32, (n, *layout), elements=FLUX))


def _npy(images: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, images)
    return buffer.getvalue()


def _shard(images: np.ndarray) -> bytes:
    """An unlabelled shard (docs/reference/shard-format.md without labels): images band-first, objid."""
    band_first = images if images.shape[1] == N_BANDS else np.transpose(images, (0, 3, 1, 2))
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle.create_dataset("images", data=band_first)
        handle.create_dataset(
            "objid", data=np.arange(len(images), dtype=np.int64) + 1_237_660_000_000_000_000
        )
    return buffer.getvalue()


schemathesis.openapi.media_type("application/x-npy", cutout_arrays().map(_npy))
schemathesis.openapi.media_type("application/x-hdf5", cutout_arrays().map(_shard))
schemathesis.openapi.media_type(
    "application/octet-stream", cutout_arrays().map(lambda images: images.astype("<f4").tobytes())
)


@schemathesis.hook("map_case").apply_to(path=["/predict_binary", "/predict_pdf_binary"])
def shape_of_the_body(ctx: schemathesis.HookContext, case: Case) -> Case:
    """A positive binary case states its body's shape (the header and the body are drawn apart)."""
    if case.meta is None or not case.meta.generation.mode.is_positive or not isinstance(case.body, bytes):
        return case
    values = len(case.body) // 4
    per_cutout = CUTOUT_SIZE * CUTOUT_SIZE * N_BANDS
    # The strategy above draws either layout; both read the same bytes, so either header is right.
    case.headers[SHAPE_HEADER] = f"{values // per_cutout},{CUTOUT_SIZE},{CUTOUT_SIZE},{N_BANDS}"
    return case


@schemathesis.hook("map_case").apply_to(path=["/predict", "/predict_pdf"])
def one_ebv_per_cutout(ctx: schemathesis.HookContext, case: Case) -> Case:
    """A positive JSON case with ``ebv`` gives one value per cutout (the two lists are drawn apart)."""
    if case.meta is None or not case.meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return case
    images, ebv = case.body.get("images"), case.body.get("ebv")
    if isinstance(images, list) and isinstance(ebv, list) and ebv:
        case.body["ebv"] = [ebv[i % len(ebv)] for i in range(len(images))]
    return case
