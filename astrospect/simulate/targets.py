"""The real SDSS figures the simulator is calibrated against (41,475 spectroscopic galaxies).

``sdss_galaxy_colour_targets.csv`` (a copy of ``shared/calibration``, shipped in the package so a fresh clone
has it) holds, per redshift bin, the 16th/50th/84th percentiles of u-g, g-r, r-i, i-z and r, and on its
comment lines the whole-sample redshift and r quantiles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

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
