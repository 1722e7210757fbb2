"""The real SDSS galaxies the simulator is calibrated against, and the selection they were queried with.

Both files are copies of ``shared/calibration`` (shipped in the package so a fresh clone has them):

* ``sdss_main_sample_calibration.csv``: 20,737 real SDSS main-sample galaxies (the calibration half of a
  41,475-galaxy catalogue), ugriz model magnitudes and spectroscopic redshifts. The simulator's spectra are
  fitted to them and synth-check compares with them.
* ``sdss_galaxy_colour_targets.csv``: per redshift bin of the whole catalogue, the 16th/50th/84th
  percentiles of u-g, g-r, r-i, i-z and r, and on its comment lines the redshift and r quantiles; its bin
  edges are synth-check's.

The catalogue was queried with every band brighter than 20: :func:`query_cut` applies the same cut to
anything compared with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from astrospect.settings import BANDS

CALIBRATION_CSV = Path(__file__).with_name("sdss_main_sample_calibration.csv")
QUERY_MAG_LIMIT = 20.0  # the catalogue's query: every band brighter than this
COMPARED_Z_RANGE = (0.0, 0.3)  # beyond 0.3 the sample is a QSO-like tail of class GALAXY
TARGETS_CSV = Path(__file__).with_name("sdss_galaxy_colour_targets.csv")
COLOURS = ("u-g", "g-r", "r-i", "i-z")
PERCENTILES = ("p16", "p50", "p84")
QUANTILE_LEVELS = ("p1", "p5", "p16", "p50", "p84", "p95", "p99")


@dataclass(frozen=True)
class CalibrationTargets:
    bins: pd.DataFrame  # z_lo, z_hi, n, then <colour>_<pNN> and r_<pNN>
    redshift_quantiles: dict[str, float]  # p1 ... p99
    r_quantiles: dict[str, float]
    fraction_above: dict[float, float]  # redshift -> fraction of the sample above it


def _quantile_line(text: str, label: str, path: Path) -> dict[str, float]:
    match = re.search(rf"#\s*{label} quantiles [p0-9,]+:\s*([0-9.,\s]+)", text)
    if match is None:
        raise ValueError(f"{path}: field '{label} quantiles': comment line not found")
    values = [
        float(v) for v in match.group(1).replace(" ", "").strip(",;").split(",")[: len(QUANTILE_LEVELS)]
    ]
    if len(values) != len(QUANTILE_LEVELS):
        raise ValueError(
            f"{path}: field '{label} quantiles': expected {len(QUANTILE_LEVELS)} values, got {values}"
        )
    return dict(zip(QUANTILE_LEVELS, values, strict=True))


@cache
def load_targets(path: Path = TARGETS_CSV) -> CalibrationTargets:
    text = path.read_text()
    bins = pd.read_csv(path, comment="#")
    missing = {"z_lo", "z_hi", "n"} | {f"{c}_{p}" for c in (*COLOURS, "r") for p in PERCENTILES}
    missing -= set(bins.columns)
    if missing:
        raise ValueError(f"{path}: field '{sorted(missing)[0]}': column missing from the targets table")
    fractions = {float(z): float(f) for z, f in re.findall(r"fraction z>([0-9.]+):\s*([0-9.]+)", text)}
    return CalibrationTargets(
        bins=bins,
        redshift_quantiles=_quantile_line(text, "redshift", path),
        r_quantiles=_quantile_line(text, "r magnitude", path),
        fraction_above=fractions,
    )


def query_cut(magnitudes: npt.ArrayLike, redshift: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Rows inside the real catalogue's selection: every band < 20 and 0 < z < 0.3."""
    mags = np.asarray(magnitudes, dtype=np.float64)
    z = np.asarray(redshift, dtype=np.float64)
    low, high = COMPARED_Z_RANGE
    return np.asarray((mags < QUERY_MAG_LIMIT).all(axis=1) & (z > low) & (z < high))


@cache
def load_calibration_galaxies(path: Path = CALIBRATION_CSV) -> pd.DataFrame:
    """The real galaxies inside :func:`query_cut`: columns u, g, r, i, z, redshift, redshift_err."""
    table = pd.read_csv(path, comment="#")
    missing = [column for column in (*BANDS, "redshift", "redshift_err") if column not in table]
    if missing:
        raise ValueError(f"{path}: field '{missing[0]}': column missing from the calibration galaxies")
    inside = query_cut(table[list(BANDS)].to_numpy(), table["redshift"].to_numpy())
    return table[inside].reset_index(drop=True)
