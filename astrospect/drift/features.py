"""Per-cutout drift features: what a night's cutouts look like, in numbers a two-sample test can compare.

One row per cutout, measured from the pixels in one streaming pass (chunks of
:func:`~astrospect.data.shards.iter_shard`):

- **brightness**: ``mag_<b>``, the asinh magnitude in the 6" total aperture of
  :mod:`astrospect.data.photometry`, per band;
- **colours**: ``u-g``, ``g-r``, ``r-i``, ``i-z`` in the 2" colour aperture (the baseline's and
  ``synth-check``'s colours);
- **size and concentration**: ``r50_arcsec``, the r-band half-light radius from the curve of growth out to
  6", and ``concentration`` = r90 / r50;
- **PSF-size proxy**: ``peak_fraction_r``, the brightest of the four central r pixels over the 2" flux:
  worse seeing spreads the same light over more pixels;
- **sky**: ``sky_<b>`` (border median) and ``noise_<b>`` (border robust scatter), the validation summaries
  of :mod:`astrospect.data.summaries`, per band. In calibrated units the sky noise also carries the zero
  point, so a calibration drift moves it;
- **redshift**, the spectroscopic label, when every shard has labels.

A cutout whose r flux in 6" is not positive has no size (NaN); the tests drop NaNs and count them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from astrospect.data.photometry import (
    COLOUR_APERTURE_RADIUS_ARCSEC,
    TOTAL_APERTURE_RADIUS_ARCSEC,
    aperture_weights,
    luptitudes,
)
from astrospect.data.shards import inspect_shard, iter_shard
from astrospect.data.summaries import summarize_images
from astrospect.settings import BANDS, CUTOUT_SIZE

# Bump when a feature's definition changes: cached reference features are keyed by it.
FEATURES_VERSION = "1"
GROWTH_RADII_ARCSEC = (0.5, 1.0, 1.5, COLOUR_APERTURE_RADIUS_ARCSEC, 3.0, 4.0, TOTAL_APERTURE_RADIUS_ARCSEC)
R_BAND = BANDS.index("r")
COLOURS = tuple(f"{blue}-{red}" for blue, red in pairwise(BANDS))
LABEL = "redshift"
PREDICTION = "z_pred"
DATA_FEATURES = (
    *(f"mag_{band}" for band in BANDS),
    *COLOURS,
    "r50_arcsec",
    "concentration",
    "peak_fraction_r",
    *(f"sky_{band}" for band in BANDS),
    *(f"noise_{band}" for band in BANDS),
)

Predictor = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.floating]]


@cache
def _growth_weights() -> npt.NDArray[np.float32]:
    return np.stack([aperture_weights(radius) for radius in GROWTH_RADII_ARCSEC])


def _radius_enclosing(growth: npt.NDArray[np.float64], fraction: float) -> npt.NDArray[np.float64]:
    """Radius where the (monotonised) curve of growth first reaches ``fraction``, linearly interpolated."""
    radii = np.concatenate([[0.0], GROWTH_RADII_ARCSEC])
    curve = np.concatenate([np.zeros((len(growth), 1)), np.maximum.accumulate(growth, axis=1)], axis=1)
    above = np.argmax(curve >= fraction, axis=1)  # >= 1: the curve starts at 0 and ends at 1
    low, high = curve[np.arange(len(curve)), above - 1], curve[np.arange(len(curve)), above]
    weight = (fraction - low) / np.where(high > low, high - low, 1.0)
    return np.asarray(radii[above - 1] + weight * (radii[above] - radii[above - 1]))


def image_features(images: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float64]]:
    """The data features of channels-last cutouts (N, 32, 32, 5): name -> (N,) array."""
    # float32 BLAS: ~8x faster than a float64 einsum, and 1e-5 mag is far below any drift worth seeing.
    fluxes = np.tensordot(images, _growth_weights(), axes=([1, 2], [1, 2])).transpose(0, 2, 1)
    fluxes = fluxes.astype(np.float64)  # (N, radii, bands)
    total = fluxes[:, -1, :]
    colour_mags = luptitudes(fluxes[:, GROWTH_RADII_ARCSEC.index(COLOUR_APERTURE_RADIUS_ARCSEC), :])
    features = {f"mag_{band}": luptitudes(total)[:, b] for b, band in enumerate(BANDS)}
    features |= {colour: colour_mags[:, b] - colour_mags[:, b + 1] for b, colour in enumerate(COLOURS)}

    total_r = total[:, R_BAND]
    lit = total_r > 0
    growth = fluxes[:, :, R_BAND] / np.where(lit, total_r, 1.0)[:, None]
    r50, r90 = _radius_enclosing(growth, 0.5), _radius_enclosing(growth, 0.9)
    features["r50_arcsec"] = np.where(lit, r50, np.nan)
    features["concentration"] = np.where(lit & (r50 > 0), r90 / np.where(r50 > 0, r50, 1.0), np.nan)

    centre = CUTOUT_SIZE // 2
    peak = images[:, centre - 1 : centre + 1, centre - 1 : centre + 1, R_BAND].max(axis=(1, 2))
    colour_r = fluxes[:, GROWTH_RADII_ARCSEC.index(COLOUR_APERTURE_RADIUS_ARCSEC), R_BAND]
    features["peak_fraction_r"] = np.where(colour_r > 0, peak / np.where(colour_r > 0, colour_r, 1.0), np.nan)

    summaries = summarize_images(images)
    for band in BANDS:
        features[f"sky_{band}"] = summaries[f"sky_{band}"]
        features[f"noise_{band}"] = summaries[f"noise_{band}"]
    return {name: np.asarray(features[name], dtype=np.float64) for name in DATA_FEATURES}


def shard_features(
    shards: Sequence[Path], *, data: bool = True, predict: Predictor | None = None
) -> pd.DataFrame:
    """One row per cutout of ``shards``, reading each pixel once: the data features (when ``data``), the
    redshift label (when every shard has one) and the model's prediction ``z_pred`` (when ``predict``)."""
    labelled = all(inspect_shard(shard, require_labels=False).has_labels for shard in shards)
    parts = []
    for shard in shards:
        for chunk in iter_shard(shard, require_labels=False):
            columns: dict[str, npt.NDArray[np.float64]] = image_features(chunk.images) if data else {}
            if data and labelled and chunk.redshift is not None:
                columns[LABEL] = chunk.redshift.astype(np.float64)
            if predict is not None:
                columns[PREDICTION] = np.asarray(predict(chunk.images), dtype=np.float64).reshape(-1)
            parts.append(pd.DataFrame(columns))
    if not parts:
        raise ValueError("no cutouts: the drift features need at least one shard with cutouts")
    return pd.concat(parts, ignore_index=True)
