"""The catalogues synth-check compares: simulated galaxies measured FROM THEIR CUTOUTS, the same galaxies'
true magnitudes, and the real SDSS calibration galaxies, each cut to the real query.

**Photometry.** The real colours are SDSS model magnitudes: every band measured with the r band's best-fit
profile, the total from the r fit. So the cutouts are measured the same way (:func:`model_magnitudes`):
each band's flux weighted by the r band's adaptive-moment Gaussian (GalSim HSM), corrected for that band's
PSF where the shards record it (SDSS's fits convolve the profile with each band's PSF; a fixed weight
read every colour 0.01-0.02 mag red under seeing that widens toward the blue), normalised to a total r.
Aperture colours (what the colour baseline uses) would be redder in the centre than model colours; the
simulator is not tuned to absorb that difference, the measurement is matched instead. The total r is the
shards' truth ``mag_r`` where they carry it, else the 6" aperture r: SDSS fitted its profiles to whole
frames, and a 12.7" cutout does not hold a galaxy's wings (summed over the stamp, r is 0.17 mag faint at
half-light radii of 2-3", 0.57 beyond 5"), which would push galaxies out of the query's u < 20 and so
thin the sample at higher z (median z 0.080 against the truth's 0.083). The
axis ratio comes from the same r-band moments, corrected for the field's r-band PSF (the seeing SDSS
records per field; here ``truth/psf_fwhm_arcsec``) as SDSS's profile fits are. Disk-dominated means truth ``bulge_fraction`` < 0.5 (the
only figure taken from the truth table: the cutouts cannot tell a bulge fraction without profile fits).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd

from astrospect.data.photometry import R_BAND_INDEX, model_magnitudes, psf_corrected_axis_ratio
from astrospect.data.shards import iter_shard, resolve_shards
from astrospect.settings import BANDS
from astrospect.simulate.targets import COLOURS, load_calibration_galaxies, query_cut


def catalogue_from_magnitudes(
    magnitudes: npt.ArrayLike,
    redshift: npt.ArrayLike,
    axis_ratio: npt.ArrayLike | None = None,
    bulge_fraction: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """The per-galaxy table compare() reads: redshift, u..z, colours, axis_ratio, bulge_fraction."""
    mags = np.asarray(magnitudes, dtype=np.float64)
    n = len(mags)
    table = pd.DataFrame(mags, columns=list(BANDS))
    table.insert(0, "redshift", np.asarray(redshift, dtype=np.float64))
    for colour in (*COLOURS, "u-r"):
        first, second = colour.split("-")
        table[colour] = table[first] - table[second]
    table["axis_ratio"] = np.full(n, np.nan) if axis_ratio is None else np.asarray(axis_ratio, np.float64)
    table["bulge_fraction"] = (
        np.full(n, np.nan) if bulge_fraction is None else np.asarray(bulge_fraction, np.float64)
    )
    return table


def measure_catalogue(folder: Path | str) -> pd.DataFrame:
    """Per galaxy: spec-z, model-like ugriz and the r-band axis ratio from the cutouts (shard by shard)."""
    parts: list[pd.DataFrame] = []
    for shard in resolve_shards(folder):
        with h5py.File(shard, "r") as handle:
            truth = handle.get("truth")
            bulge = truth["bulge_fraction"][()] if truth is not None and "bulge_fraction" in truth else None
            psf = truth["psf_fwhm_arcsec"][()] if truth is not None and "psf_fwhm_arcsec" in truth else None
            total_r = truth["mag_r"][()] if truth is not None and "mag_r" in truth else None
        mags: list[npt.NDArray[np.float64]] = []
        ratios: list[npt.NDArray[np.float64]] = []
        redshift: list[npt.NDArray[np.float64]] = []
        done = 0
        for chunk in iter_shard(shard):
            assert chunk.redshift is not None  # iter_shard requires labels by default
            psf_rows = None if psf is None else psf[done : done + len(chunk.images)]
            done += len(chunk.images)
            measured, second_moments = model_magnitudes(chunk.images, psf_rows)
            mags.append(measured)
            ratios.append(
                psf_corrected_axis_ratio(
                    second_moments, None if psf_rows is None else psf_rows[:, R_BAND_INDEX]
                )
            )
            redshift.append(chunk.redshift.astype(np.float64))
        magnitudes = np.concatenate(mags)
        if total_r is not None:  # the colours stay measured; only the total comes from the whole profile
            magnitudes += (total_r - magnitudes[:, R_BAND_INDEX])[:, None]
        parts.append(
            catalogue_from_magnitudes(magnitudes, np.concatenate(redshift), np.concatenate(ratios), bulge)
        )
    return pd.concat(parts, ignore_index=True)


def noiseless_catalogue(folder: Path | str) -> pd.DataFrame | None:
    """The shards' true magnitudes (``truth/mag_*``) as a catalogue, or None where a shard has no truth."""
    parts: list[pd.DataFrame] = []
    for shard in resolve_shards(folder):
        with h5py.File(shard, "r") as handle:
            truth = handle.get("truth")
            if truth is None or any(f"mag_{band}" not in truth for band in BANDS):
                return None
            magnitudes = np.column_stack([truth[f"mag_{band}"][()] for band in BANDS])
            parts.append(catalogue_from_magnitudes(magnitudes, truth["redshift"][()]))
    return pd.concat(parts, ignore_index=True)


def real_catalogue() -> pd.DataFrame:
    real = load_calibration_galaxies()
    return catalogue_from_magnitudes(real[list(BANDS)].to_numpy(), real["redshift"].to_numpy())


def cut_to_query(catalogue: pd.DataFrame) -> pd.DataFrame:
    return catalogue[query_cut(catalogue[list(BANDS)].to_numpy(), catalogue["redshift"].to_numpy())]
