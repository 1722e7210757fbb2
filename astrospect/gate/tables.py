"""The tables the gate's shard-level suites judge, one row per shard, and the objids' owners.

:func:`structure_row` is a shard's header as the sandboxed reader saw it (``shard_structure``);
:func:`statistics_row` is what Great Expectations has no expectation for (``shard_statistics``): whether the
labels follow the galaxies' colours (:class:`ColourRedshift`, ``expectations/label_reference.json``) and the
colour calibration; :func:`with_ledger_lookup` adds, per cutout, the accepted shard already holding its objid.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from astrospect.data.summaries import magnitudes
from astrospect.gate.colour_calibration import ColourReference
from astrospect.gate.ledger import Ledger
from astrospect.gate.sandbox import Reading
from astrospect.settings import BANDS, Settings

LABEL_REFERENCE_FILE = "label_reference.json"


@dataclass(frozen=True)
class ColourRedshift:
    """A linear redshift from four colours and r (``expectations/label_reference.json``): only its ranks are
    used, to see whether a shard's labels belong to its galaxies."""

    coefficients: tuple[float, ...]  # for (1, u-g, g-r, r-i, i-z, r)

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        mags = magnitudes(table)
        features = np.column_stack([np.ones(len(mags)), -np.diff(mags, axis=1), mags[:, BANDS.index("r")]])
        return np.asarray(features @ np.asarray(self.coefficients), dtype=np.float64)


def colour_redshift(settings: Settings) -> ColourRedshift:
    shipped = json.loads((settings.expectations_dir / LABEL_REFERENCE_FILE).read_text())
    features = ["1", "u-g", "g-r", "r-i", "i-z", "r"]
    if shipped["features"] != features or len(shipped["coefficients"]) != len(features):
        raise ValueError(f"{LABEL_REFERENCE_FILE}: field 'features': expected {features}")
    return ColourRedshift(tuple(float(value) for value in shipped["coefficients"]))


def structure_row(name: str, reading: Reading) -> dict[str, Any]:
    """One shard's row of the structure table: the reader's verdict (a structural error, or the header's
    description) and the file attributes."""
    info, error = reading.info, reading.error
    attrs = info.attrs if info else {}
    return {
        "shard": name,
        "format_error_field": error.field if error else None,
        "format_error": error.reason if error else None,
        "n_cutouts": info.n if info else None,
        "cutout_size": info.size if info else None,
        "objid_dtype": info.objid_dtype if info else None,
        "bands_attr": str(attrs["bands"]) if "bands" in attrs else None,
        "pixel_scale_arcsec": _number(attrs["pixel_scale_arcsec"]) if "pixel_scale_arcsec" in attrs else None,
    }


def statistics_row(
    name: str, table: pd.DataFrame, colours: ColourRedshift, calibration: ColourReference
) -> dict[str, Any]:
    """One shard's row of the statistics table: how well its labels follow its galaxies' colours, as the
    Spearman rank correlation of redshift with the colour redshift and that correlation times sqrt(N - 1)
    (about a standard normal for labels unrelated to the galaxies). Nothing measurable (fewer than three
    cutouts, a constant column) counts as no agreement: 0. Then the colour calibration
    (:meth:`ColourReference.check`): per colour the median residual and its significance."""
    from scipy.stats import spearmanr

    n = len(table)
    rho = 0.0
    if n >= 3:
        with warnings.catch_warnings():  # a constant column has no correlation: 0 below, no warning
            warnings.simplefilter("ignore")
            statistic = float(spearmanr(table["redshift"], colours.predict(table)).statistic)
        rho = statistic if np.isfinite(statistic) else 0.0
    return {
        "shard": name,
        "n_cutouts": n,
        "redshift_colour_rank_correlation": rho,
        "redshift_colour_significance": rho * float(np.sqrt(max(n - 1, 0))),
        **calibration.check(table, with_estimate=False).columns(),
    }


def _number(value: object) -> float:
    """An attribute as a float; one that is not a number becomes -1, which fails the range expectation."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return -1.0


def with_ledger_lookup(
    table: pd.DataFrame, ledger: Ledger, provisional: dict[int, str] | None = None
) -> pd.DataFrame:
    """Add ``objid_accepted_in``: the accepted shard already holding each objid (None when new), from the
    ledger and from ``provisional`` (shards judged earlier in the same run whose verdict is not written yet).
    """
    objids = table["objid"].to_numpy(dtype=np.int64)
    owners = {**(provisional or {}), **ledger.accepted_owner(objids)}
    table = table.copy()
    table["objid_accepted_in"] = pd.Series([owners.get(int(o)) for o in objids], dtype=object)
    return table
