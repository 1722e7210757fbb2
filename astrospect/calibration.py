"""Temperature scaling of the PDF CNN on the validation split, so that its PDFs are calibrated.

A network trained with cross-entropy is usually over-confident on data it has not seen; dividing its
logits by one temperature T > 1 widens every PDF without moving its mode (Guo et al. 2017). T minimises
the negative log-likelihood of the validation galaxies' spec-z bins, and is stored in the model.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from astrospect.model import PDF_LOGITS, PDF_OUTPUT, pdf_bins
from astrospect.pdf import RedshiftBins
from astrospect.predict import PREDICT_BATCH
from astrospect.settings import get_logger

log = get_logger(__name__)
LOG_T_BOUNDS = (np.log(0.05), np.log(20.0))  # the search range; a fit at a bound is reported as such


def bin_logits(model: keras.Model, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The PDF head's logits before the temperature, for channels-last raw cutouts."""
    logits_model = keras.Model(model.input, model.get_layer(PDF_LOGITS).output)
    parts = [
        np.asarray(logits_model.predict_on_batch(images[start : start + PREDICT_BATCH]), dtype=np.float32)
        for start in range(0, len(images), PREDICT_BATCH)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, model.output.shape[-1]), np.float32)


def temperature_nll(
    logits: npt.NDArray[np.floating], z_true: npt.ArrayLike, bins: RedshiftBins, temperature: float
) -> float:
    """Mean negative log-likelihood of the spec-z bins under softmax(logits / T)."""
    index = bins.index(np.asarray(z_true, dtype=np.float64).ravel())
    log_probs = special.log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-np.mean(log_probs[np.arange(len(index)), index]))


def fit_temperature(logits: npt.NDArray[np.floating], z_true: npt.ArrayLike, bins: RedshiftBins) -> float:
    """The temperature minimising :func:`temperature_nll` (a bounded 1-D search in log T)."""
    logits = np.asarray(logits, dtype=np.float64)
    z = np.asarray(z_true, dtype=np.float64).ravel()
    if logits.ndim != 2 or logits.shape != (len(z), bins.n):
        raise ValueError(
            f"logits must have shape ({len(z)}, {bins.n}) for {len(z)} redshifts, got {logits.shape}"
        )
    if len(z) == 0:
        raise ValueError("cannot fit a temperature on no validation galaxies")
    result = optimize.minimize_scalar(
        lambda log_t: temperature_nll(logits, z, bins, float(np.exp(log_t))),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-4},
    )
    if not result.success:
        raise RuntimeError(f"temperature fit did not converge: {result.message}")
    temperature = float(np.exp(result.x))
    if min(abs(result.x - bound) for bound in LOG_T_BOUNDS) < 1e-3:
        log.warning("temperature %.3g is at the edge of its search range: the PDFs are far off", temperature)
    return temperature


def apply_temperature(model: keras.Model, temperature: float) -> None:
    """Store ``temperature`` in the model's PDF layer (saved with its weights)."""
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    model.get_layer(PDF_OUTPUT).temperature.assign(float(temperature))


def calibrate_temperature(
    model: keras.Model, chunks: Iterable[tuple[npt.NDArray[np.float32], npt.NDArray[np.floating]]]
) -> dict[str, float]:
    """Fit the temperature on validation (images, spec-z) chunks, store it in ``model``, and report it with
    the validation NLL before and after (e.g. ``((x, z) for x, z, _ in iter_selected(val_rows))``)."""
    bins = pdf_bins(model)
    if bins is None:
        raise ValueError(f"model {model.name!r} has no PDF head ({PDF_OUTPUT!r} layer) to calibrate")
    logit_parts, z_parts = [], []
    for images, z in chunks:
        logit_parts.append(bin_logits(model, images))
        z_parts.append(np.asarray(z, dtype=np.float64))
    if not logit_parts:
        raise ValueError("cannot fit a temperature on no validation galaxies")
    logits, z_true = np.concatenate(logit_parts), np.concatenate(z_parts)
    temperature = fit_temperature(logits, z_true, bins)
    apply_temperature(model, temperature)
    report = {
        "temperature": temperature,
        "val_nll_before": temperature_nll(logits, z_true, bins, 1.0),
        "val_nll_after": temperature_nll(logits, z_true, bins, temperature),
    }
    log.info(
        "temperature %.3f on %d validation galaxies: NLL %.4f -> %.4f",
        temperature,
        len(z_true),
        report["val_nll_before"],
        report["val_nll_after"],
    )
    return report
