"""Per-cutout summaries: the table the Great Expectations suites check instead of raw pixels.

One row per cutout: ``row`` (index in the shard), ``objid``, ``redshift``, ``redshift_err``,
``redshift_err_rel`` (the error over the redshift) and, per band b:
``flux_b`` total flux in the 32x32 cutout (nanomaggies), ``mag_b`` its SDSS asinh magnitude, ``colour_mag_b`` the
asinh magnitude in the 2" colour aperture (:mod:`astrospect.data.photometry`: high S/N colours), ``peak_b`` the
brightest pixel, ``sky_b`` the background level (median of the 2-pixel border), ``noise_b`` the border's
robust scatter (1.4826 MAD) and ``finite_frac_b`` the fraction of finite pixels. Non-finite pixels count as
0 in the fluxes, so a NaN shows up in ``finite_frac`` rather than poisoning every other column.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from astrospect.data.photometry import COLOUR_APERTURE_RADIUS_ARCSEC, aperture_flux, luptitudes
from astrospect.data.shards import MAX_DECLARED_BYTES, Cutouts, iter_shard
from astrospect.settings import BANDS, CUTOUT_SIZE

if TYPE_CHECKING:  # pandas is imported where a table is built: the sandboxed reader never needs it
    import pandas as pd

BORDER_WIDTH = 2  # pixels: the sky ring, far from a centred galaxy
PER_BAND = ("flux", "mag", "colour_mag", "peak", "sky", "noise", "finite_frac")
COLUMNS = (
    "row",
    "objid",
    "redshift",
    "redshift_err",
    "redshift_err_rel",
    *(f"{quantity}_{band}" for band in BANDS for quantity in PER_BAND),
)


def _border_mask(size: int = CUTOUT_SIZE) -> npt.NDArray[np.bool_]:
    mask = np.ones((size, size), dtype=bool)
    mask[BORDER_WIDTH:-BORDER_WIDTH, BORDER_WIDTH:-BORDER_WIDTH] = False
    return mask


BORDER = _border_mask()


def summarize_images(images: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float64]]:
    """Per-band summaries of channels-last cutouts (N, 32, 32, 5): name -> (N,) array."""
    finite = np.isfinite(images)
    clean = np.where(finite, images, np.float32(0.0))
    flux = clean.sum(axis=(1, 2), dtype=np.float64)
    peak = clean.max(axis=(1, 2)).astype(np.float64)
    finite_frac = finite.mean(axis=(1, 2))
    border = images[:, BORDER, :].astype(np.float64)
    if finite[:, BORDER, :].all():
        sky = np.median(border, axis=1)
        noise = 1.4826 * np.median(np.abs(border - sky[:, None, :]), axis=1)
    else:  # nanmedian is ~3x slower: only for the rare chunk with a non-finite border pixel
        border = np.where(np.isfinite(border), border, np.nan)
        with warnings.catch_warnings():
            # A border with no finite pixel gives NaN here; finite_frac already flags that cutout.
            warnings.simplefilter("ignore", RuntimeWarning)
            sky = np.nanmedian(border, axis=1)
            noise = 1.4826 * np.nanmedian(np.abs(border - sky[:, None, :]), axis=1)
    mags = luptitudes(flux)
    # The colour-calibration check (astrospect.gate.colour_calibration) needs colours, and a small aperture's are
    # far less noisy than the whole stamp's (u's sky noise over 1,024 pixels swamps a faint galaxy).
    colour_mags = luptitudes(aperture_flux(clean, COLOUR_APERTURE_RADIUS_ARCSEC))
    columns = {
        "flux": flux,
        "mag": mags,
        "colour_mag": colour_mags,
        "peak": peak,
        "sky": sky,
        "noise": noise,
        "finite_frac": finite_frac,
    }
    return {
        f"{name}_{band}": values[:, b] for name, values in columns.items() for b, band in enumerate(BANDS)
    }


def relative_error(redshift: npt.ArrayLike, error: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The redshift error as a fraction of the redshift (inf at z = 0, where no error is small enough)."""
    z, err = np.asarray(redshift, np.float64), np.asarray(error, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(z > 0, err / np.where(z > 0, z, 1.0), np.inf)


def summarize_columns(
    path: Path | str, *, max_declared_bytes: int = MAX_DECLARED_BYTES
) -> dict[str, npt.NDArray[np.generic]]:
    """The summary table of a structurally valid shard as plain arrays, one per column of :data:`COLUMNS`
    (see :func:`astrospect.data.shards.inspect_shard`)."""
    return summarize_cutouts(iter_shard(path, max_declared_bytes=max_declared_bytes))


def summarize_cutouts(chunks: Iterable[Cutouts]) -> dict[str, npt.NDArray[np.generic]]:
    """The summary columns of a labelled shard's cutouts, chunk by chunk."""
    parts: dict[str, list[npt.NDArray[np.generic]]] = {column: [] for column in COLUMNS}
    start = 0
    for chunk in chunks:
        n = len(chunk)
        if chunk.redshift is None or chunk.redshift_err is None:
            raise ValueError("summaries need labelled cutouts (specz_redshift, specz_redshift_err)")
        part = {
            "row": np.arange(start, start + n, dtype=np.int64),
            "objid": chunk.objid,
            "redshift": chunk.redshift.astype(np.float64),
            "redshift_err": chunk.redshift_err.astype(np.float64),
            "redshift_err_rel": relative_error(chunk.redshift, chunk.redshift_err),
            **summarize_images(chunk.images),
        }
        for column in COLUMNS:
            parts[column].append(part[column])
        start += n
    return {column: np.concatenate(values) for column, values in parts.items()}


def summary_table(columns: Mapping[str, npt.NDArray[np.generic]]) -> pd.DataFrame:
    """The summary columns as the dataframe the expectation suites run on, in :data:`COLUMNS` order."""
    import pandas as pd

    return pd.DataFrame({column: columns[column] for column in COLUMNS})


def summarize_shard(path: Path | str) -> pd.DataFrame:
    """The summary table of a structurally valid shard (see :func:`astrospect.data.shards.inspect_shard`)."""
    return summary_table(summarize_columns(path))


def magnitudes(table: pd.DataFrame) -> npt.NDArray[np.float64]:
    """The (N, 5) per-band magnitudes of a summary table, in ugriz order."""
    return table[[f"mag_{band}" for band in BANDS]].to_numpy(dtype=np.float64)
