"""The serving API's types: the one cutout check every request path ends in, and what a response holds.

The request bodies are decoded by :mod:`astrospect.serving.decoding` (JSON and binary) and
:mod:`astrospect.serving.uploads` (files); each ends in :func:`validate_cutouts`. The response models are the
service's return types, so BentoML writes the OpenAPI document from them. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from astrospect.data.shards import ShardFormatError, to_model_layout
from astrospect.settings import BANDS, CUTOUT_SIZE, N_BANDS

FloatArray = npt.NDArray[np.float32]
LAYOUTS = f"(N, {N_BANDS}, {CUTOUT_SIZE}, {CUTOUT_SIZE}) band-first or (N, {CUTOUT_SIZE}, {CUTOUT_SIZE}, {N_BANDS}) channels-last"


class CutoutError(ValueError):
    """A batch of cutouts the model cannot take; the message says what was expected."""


def validate_cutouts(values: Any, *, max_cutouts: int, source: str = "images") -> FloatArray:
    """Check a batch of raw cutouts and return it in the model's layout, (N, 32, 32, 5) float32.

    Accepts either layout (and 64x64 cubes, centre-cropped) through :func:`to_model_layout`, the one
    transposing function. Rejects, in this order: non-numbers, an empty batch, more than ``max_cutouts``,
    a wrong rank, shape or band count, and NaN or infinite fluxes.
    """
    try:
        array = np.asarray(values)
    except ValueError as error:  # ragged nested lists
        raise CutoutError(
            f"{source}: expected a rectangular array {LAYOUTS}, got ragged nested lists ({error})"
        ) from error
    if array.dtype.kind not in "iuf":
        what = "booleans" if array.dtype.kind == "b" else f"non-numeric values (dtype {array.dtype})"
        raise CutoutError(f"{source}: expected numbers (fluxes in nanomaggies), got {what}")
    if array.size == 0 or array.ndim == 0:
        raise CutoutError(
            f"{source}: expected at least one cutout {LAYOUTS}, got an empty batch (shape {array.shape})"
        )
    if array.shape[0] > max_cutouts:
        raise CutoutError(
            f"{source}: expected at most {max_cutouts} cutouts per request, got {array.shape[0]}"
        )
    try:
        with np.errstate(over="ignore"):  # a flux beyond float32 becomes inf, refused just below
            images = to_model_layout(array, source=source)
    except ShardFormatError as error:
        raise CutoutError(f"{source}: {error.reason}") from error
    finite = np.isfinite(images)
    if not finite.all():
        bad = ~finite
        cutout, _, _, band = (int(axis[0]) for axis in np.nonzero(bad))
        raise CutoutError(
            f"{source}: expected finite fluxes, got {int(bad.sum())} NaN or infinite value(s);"
            f" the first in cutout {cutout}, band {BANDS[band]}"
        )
    return images


class ModelIdentity(BaseModel):
    """Which registered model answered: its MLflow name, version and training run."""

    model_name: str = Field(description="MLflow registered model name")
    model_version: str = Field(description="MLflow registered model version")
    run_id: str = Field(description="MLflow run that trained the model")


Interval = Annotated[list[float], Field(min_length=2, max_length=2)]


class RedshiftSummary(BaseModel):
    """One cutout's redshift PDF in seven numbers (astrospect.pdf.bins.RedshiftPdfs.summary; point estimates at bin centres)."""

    mean: float = Field(description="the PDF's mean redshift")
    median: float = Field(description="the PDF's median redshift: the served `redshift`")
    mode: float = Field(description="the centre of the PDF's most probable bin")
    interval_68: Interval = Field(description="the central 68% interval [16th, 84th percentile]")
    interval_95: Interval = Field(description="the central 95% interval [2.5th, 97.5th percentile]")


POINT_MODEL_NULL = "always present; null when the champion is a point-estimate model (no PDF head)"


class Prediction(ModelIdentity):
    """Redshifts for a JSON batch, in the order of the request's cutouts."""

    redshift: list[float] = Field(
        description="photometric redshift per cutout; a PDF champion's is its PDF's median"
    )
    pdf_summary: list[RedshiftSummary] | None = Field(
        description=f"per cutout, its redshift PDF's summary; {POINT_MODEL_NULL}"
    )


class PdfPrediction(ModelIdentity):
    """Redshift PDFs for a batch, in the order of the request's cutouts, over the champion's bins."""

    bin_edges: list[float] = Field(
        description="the n + 1 redshift bin edges, increasing; the same for every cutout"
    )
    probabilities: list[list[float]] = Field(
        description="per cutout, the probability of each of the n bins (flat within a bin); each row sums to 1"
    )
    redshift: list[float] = Field(description="per cutout, the PDF's median (what /predict answers)")
    pdf_summary: list[RedshiftSummary]


class FileRow(BaseModel):
    index: int = Field(description="row of the cutout in the uploaded file")
    objid: int | None = Field(default=None, description="SDSS object id, when the file has one (HDF5 shards)")
    redshift: float
    pdf_summary: RedshiftSummary | None = Field(description=POINT_MODEL_NULL)


class FilePrediction(ModelIdentity):
    """One row per cutout of an uploaded HDF5 shard or .npy array."""

    file_format: str = Field(description="hdf5 or npy")
    n: int = Field(description="number of cutouts")
    rows: list[FileRow]


class ModelMetadata(ModelIdentity):
    """What the service serves: the registry entry, the data it was trained on and its holdout metrics."""

    bento_model: str = Field(description="tag of the model in BentoML's model store")
    dataset_version: str | None = Field(description="snapshot version of the training data set")
    metrics: dict[str, float] = Field(
        description="the metric table of docs/explanation/architecture.md#metrics logged with the run"
    )
    pdf_bins: int | None = Field(
        description="number of redshift bins of the champion's PDFs; null for a point-estimate model, whose"
        " predict_pdf and predict_file format=qp answer 409"
    )
    max_cutouts_per_request: int
    max_cutouts_per_file: int
    max_body_bytes: int
