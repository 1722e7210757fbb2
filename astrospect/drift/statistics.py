"""Two-sample comparison of one feature: tonight's values against the reference's.

Per feature: the Kolmogorov-Smirnov statistic and p-value (scipy), the Wasserstein distance in the feature's
units and in units of the reference's robust spread, and the population stability index (PSI) on ten
reference-quantile bins. A feature has drifted when its KS p-value is below ``alpha / n_features``: a
Bonferroni bound, so that a night like the reference is flagged with probability at most ``alpha`` however
many features are watched. PSI and Wasserstein say how large a drift is, the p-value whether it is real.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

PSI_BINS = 10
PSI_FLOOR = 1e-4  # an empty bin counts as this share, so PSI stays finite
PLOT_BINS = 40
ROBUST_SIGMA_PER_IQR = 1.0 / 1.349  # IQR of a Gaussian is 1.349 sigma


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's comparison, with the histogram the report draws (JSON-able)."""

    feature: str
    kind: str  # "data", "label" (the spectroscopic redshift) or "prediction" (the model's redshift)
    n_reference: int
    n_tonight: int
    n_missing: int  # tonight's NaNs (e.g. no positive r flux), left out of the test
    reference_median: float
    tonight_median: float
    ks_statistic: float
    p_value: float
    wasserstein: float  # in the feature's units
    wasserstein_sigma: float  # the same, in units of the reference's robust standard deviation
    psi: float
    drifted: bool
    bin_edges: list[float]
    reference_density: list[float]
    tonight_density: list[float]

    def row(self) -> dict[str, Any]:
        """The table row (no histogram)."""
        row = asdict(self)
        for name in ("bin_edges", "reference_density", "tonight_density"):
            row.pop(name)
        return row


def population_stability_index(
    reference: npt.NDArray[np.float64], tonight: npt.NDArray[np.float64], bins: int = PSI_BINS
) -> float:
    """PSI = sum over reference-quantile bins of (q - p) ln(q / p); ~0.1 is a moderate shift, 0.25 large."""
    edges = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 2:  # a constant reference: any difference is a shift of everything
        return 0.0 if np.all(tonight == edges[0]) else float("inf")
    inner = edges[1:-1]
    p = np.bincount(np.searchsorted(inner, reference, side="right"), minlength=len(edges) - 1) / len(
        reference
    )
    q = np.bincount(np.searchsorted(inner, tonight, side="right"), minlength=len(edges) - 1) / len(tonight)
    p, q = np.maximum(p, PSI_FLOOR), np.maximum(q, PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def robust_sigma(values: npt.NDArray[np.float64]) -> float:
    q25, q75 = np.percentile(values, [25, 75])
    sigma = float(q75 - q25) * ROBUST_SIGMA_PER_IQR
    return sigma if sigma > 0 else float(np.std(values))


def compare_feature(
    name: str,
    kind: str,
    reference: npt.ArrayLike,
    tonight: npt.ArrayLike,
    alpha_per_feature: float,
) -> FeatureDrift:
    """Compare one feature; NaNs are left out (and counted for tonight)."""
    reference_values = np.asarray(reference, dtype=np.float64)
    tonight_all = np.asarray(tonight, dtype=np.float64)
    reference_values = reference_values[np.isfinite(reference_values)]
    tonight_values = tonight_all[np.isfinite(tonight_all)]
    if len(reference_values) == 0 or len(tonight_values) == 0:
        raise ValueError(
            f"feature {name!r}: no finite values ({len(reference_values)} in the reference, "
            f"{len(tonight_values)} tonight)"
        )
    ks = stats.ks_2samp(reference_values, tonight_values, method="asymp")
    wasserstein = float(stats.wasserstein_distance(reference_values, tonight_values))
    sigma = robust_sigma(reference_values)
    low, high = np.percentile(reference_values, [0.5, 99.5])
    edges = np.linspace(low, high, PLOT_BINS + 1) if high > low else np.array([low - 0.5, low + 0.5])
    reference_density, _ = np.histogram(reference_values, edges, density=True)
    tonight_density, _ = np.histogram(tonight_values, edges, density=True)
    return FeatureDrift(
        feature=name,
        kind=kind,
        n_reference=len(reference_values),
        n_tonight=len(tonight_values),
        n_missing=int(len(tonight_all) - len(tonight_values)),
        reference_median=float(np.median(reference_values)),
        tonight_median=float(np.median(tonight_values)),
        ks_statistic=float(ks.statistic),
        p_value=float(ks.pvalue),
        wasserstein=wasserstein,
        wasserstein_sigma=wasserstein / sigma if sigma > 0 else float("inf") if wasserstein > 0 else 0.0,
        psi=population_stability_index(reference_values, tonight_values),
        drifted=bool(ks.pvalue < alpha_per_feature),
        bin_edges=[float(edge) for edge in edges],
        reference_density=[float(value) for value in np.nan_to_num(reference_density)],
        tonight_density=[float(value) for value in np.nan_to_num(tonight_density)],
    )
