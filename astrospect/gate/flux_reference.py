"""The flux reference: per-band magnitude quantiles that the summary suite's distribution expectations
compare each shard with (``expectations/flux_reference.json`` until enough data is accepted)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from astrospect.gate.ledger import Ledger
from astrospect.settings import BANDS, Settings

REFERENCE_FILE = "flux_reference.json"


@dataclass(frozen=True)
class FluxReference:
    """Per-band magnitude quantiles (p01, p50, p99) and tolerances the distribution expectations compare to."""

    quantiles: dict[str, dict[str, float]]
    median_tolerance: float
    range_margin: float
    source: str

    def parameters(self) -> dict[str, float]:
        """The ``$PARAMETER`` values of the summary suite."""
        values = {}
        for band in BANDS:
            q = self.quantiles[band]
            values[f"mag_{band}_median_min"] = q["p50"] - self.median_tolerance
            values[f"mag_{band}_median_max"] = q["p50"] + self.median_tolerance
            values[f"mag_{band}_min"] = q["p01"] - self.range_margin
            values[f"mag_{band}_max"] = q["p99"] + self.range_margin
        return {name: round(value, 4) for name, value in values.items()}


def flux_reference(settings: Settings, ledger: Ledger) -> FluxReference:
    """The accepted data's own magnitude quantiles once there are ``reference_min_rows`` accepted cutouts;
    until then the reference shipped in ``expectations/flux_reference.json`` (from real SDSS galaxies).

    Not the first batch: a batch cannot vouch for itself, and a shifted first batch would become the norm.
    """
    shipped = json.loads((settings.expectations_dir / REFERENCE_FILE).read_text())
    tolerance = shipped["tolerance"]
    accepted = ledger.accepted_magnitudes()
    if len(accepted) >= settings.reference_min_rows:
        p01, p50, p99 = np.percentile(accepted, [1, 50, 99], axis=0)
        quantiles = {
            band: {"p01": float(p01[b]), "p50": float(p50[b]), "p99": float(p99[b])}
            for b, band in enumerate(BANDS)
        }
        source = f"accepted data ({len(accepted)} cutouts)"
    else:
        quantiles = shipped["quantiles"]
        source = f"shipped SDSS reference ({len(accepted)} accepted cutouts < {settings.reference_min_rows})"
    return FluxReference(
        quantiles, float(tolerance["median_mag"]), float(tolerance["range_margin_mag"]), source
    )
