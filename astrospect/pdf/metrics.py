"""PDF metrics on the holdout: CRPS, PIT and its statistics, interval coverage, CDE loss.

The PIT values, their KS and Cramér-von Mises statistics and the CDE loss are qp's (``qp.metrics``, as
RAIL's evaluation computes them). CRPS is not in qp: it is the exact closed form for a histogram PDF below.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from astrospect.pdf.bins import RedshiftPdfs

PDF_METRIC_NAMES = (
    "crps",
    "pit_ks",
    "pit_cvm",
    "pit_outlier_frac",
    "coverage_68",
    "coverage_95",
    "cde_loss",
)
PIT_OUTLIER_LIMITS = (0.0001, 0.9999)  # qp's and Schmidt et al. (2020)'s definition of a PIT outlier
PIT_KS_TARGET = 0.05  # a calibrated PDF set has pit_ks below this (issue 14)
COVERAGE_LEVELS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # the coverage curve's nominal levels


def crps(pdfs: RedshiftPdfs, z_true: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """CRPS = integral of (F(x) - 1[x >= z])^2 dx per galaxy (N,), exact for a histogram PDF.

    F is linear across each bin, so each bin contributes (b - a)(F_a^2 + F_a F_b + F_b^2) / 3 left of the
    spec-z and the same in (1 - F) right of it; the bin holding the spec-z is split there. A spec-z outside
    the bins adds its distance to the range (F is 0 below it and 1 above it).
    """
    at_edges, bins = pdfs.cdf_at_edges, pdfs.bins
    z = _truth(z_true, len(at_edges))
    edges, widths = bins.edge_array, bins.widths
    lo, hi = at_edges[:, :-1], at_edges[:, 1:]
    below = widths * (lo**2 + lo * hi + hi**2) / 3  # integral of F^2 over each whole bin
    above = widths * ((1 - lo) ** 2 + (1 - lo) * (1 - hi) + (1 - hi) ** 2) / 3  # of (1 - F)^2
    inside = np.clip(z, edges[0], edges[-1])
    index = bins.index(inside)
    rows = np.arange(len(z))
    # whole bins left of the spec-z's bin, and whole bins right of it
    cum_below = np.concatenate([np.zeros((len(z), 1)), np.cumsum(below, axis=1)], axis=1)
    cum_above = np.concatenate([np.cumsum(above[:, ::-1], axis=1)[:, ::-1], np.zeros((len(z), 1))], axis=1)
    score = cum_below[rows, index] + cum_above[rows, index + 1]
    # the spec-z's own bin, split at the spec-z
    a, b = edges[index], edges[index + 1]
    f_a, f_b = at_edges[rows, index], at_edges[rows, index + 1]
    f_z = f_a + (inside - a) / (b - a) * (f_b - f_a)
    score += (inside - a) * (f_a**2 + f_a * f_z + f_z**2) / 3
    score += (b - inside) * ((1 - f_z) ** 2 + (1 - f_z) * (1 - f_b) + (1 - f_b) ** 2) / 3
    return score + np.abs(z - inside)


def pit_values(pdfs: RedshiftPdfs, z_true: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The probability integral transform CDF(spec-z) per galaxy (0 below the bins, 1 above).

    Evaluated by the qp ensemble's own CDF at each galaxy's spec-z, as ``qp.metrics.pit.PIT`` gathers its
    samples; that class also fits a quantile ensemble to the PIT values, which fails on ties (many spec-z
    beyond their PDFs) and is not needed here.
    """
    z = _truth(z_true, len(pdfs))
    return np.asarray(pdfs.ensemble.cdf(z[:, None]), dtype=np.float64).reshape(len(z))


def pit_statistics(pit: npt.ArrayLike) -> dict[str, float]:
    """KS and Cramér-von Mises statistics of the PIT values against U(0, 1), and the PIT outlier fraction.

    The statistics are scipy's, as qp's ``PIT.evaluate_PIT_KS`` / ``evaluate_PIT_CvM`` call them. The outlier
    fraction is counted from the PIT values themselves: qp's ``evaluate_PIT_outlier_rate`` reads it off a
    100-quantile fit of the PIT distribution (0.073 where the exact fraction is 0.075 on a constructed case).
    """
    from scipy import stats

    values = np.asarray(pit, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("no PIT values")
    low, high = PIT_OUTLIER_LIMITS
    return {
        "pit_ks": float(stats.kstest(values, stats.uniform.cdf).statistic),
        "pit_cvm": float(stats.cramervonmises(values, stats.uniform.cdf).statistic),
        "pit_outlier_frac": float(np.mean((values < low) | (values > high))),
    }


def coverage(pit: npt.ArrayLike, level: float) -> float:
    """Fraction of spec-z inside their PDF's central ``level`` interval: (1-level)/2 <= PIT <= (1+level)/2.

    For the linear-in-bin CDF that is exactly "inside :meth:`astrospect.pdf.bins.RedshiftPdfs.central_interval`".
    """
    values = np.asarray(pit, dtype=np.float64).ravel()
    return float(np.mean((values >= (1 - level) / 2) & (values <= (1 + level) / 2)))


def coverage_curve(pit: npt.ArrayLike, levels: Sequence[float] = COVERAGE_LEVELS) -> npt.NDArray[np.float64]:
    """Observed coverage at each nominal level: on the diagonal when the PDFs are calibrated."""
    return np.array([coverage(pit, level) for level in levels])


def cde_loss(pdfs: RedshiftPdfs, z_true: npt.ArrayLike) -> float:
    """qp's conditional density estimation loss (Izbicki & Lee 2017): E[int f^2 dz] - 2 E[f(z_spec)].

    Evaluated on the bin centres, where a histogram's density is exact; lower is better.
    """
    from qp.metrics.concrete_metric_classes import CDELossMetric

    z = _truth(z_true, len(pdfs))
    return float(CDELossMetric(eval_grid=pdfs.bins.centres).evaluate(pdfs.ensemble, z))


def pdf_metric_table(pdfs: RedshiftPdfs, z_true: npt.ArrayLike) -> dict[str, float]:
    """Every PDF metric of :data:`PDF_METRIC_NAMES` for one set of PDFs, as plain floats."""
    z = _truth(z_true, len(pdfs))
    pit = pit_values(pdfs, z)
    return {
        "crps": float(np.mean(crps(pdfs, z))),
        **pit_statistics(pit),
        "coverage_68": coverage(pit, 0.68),
        "coverage_95": coverage(pit, 0.95),
        "cde_loss": cde_loss(pdfs, z),
    }


def _truth(z_true: npt.ArrayLike, n: int) -> npt.NDArray[np.float64]:
    z = np.asarray(z_true, dtype=np.float64).ravel()
    if z.shape != (n,):
        raise ValueError(f"{n} PDFs but {z.size} spectroscopic redshifts")
    if n == 0:
        raise ValueError("cannot compute PDF metrics on an empty set")
    if not np.all(np.isfinite(z)):
        raise ValueError("spectroscopic redshifts must be finite")
    return z
