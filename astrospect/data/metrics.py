"""The metric table (docs/explanation/architecture.md, "Metrics"), defined once: training, evaluation, promotion and serving import it.

With dz = z_pred - z_spec and d = dz / (1 + z_spec).
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pandas as pd

METRIC_NAMES = (
    "mae",
    "mse",
    "r2",
    "sigma_mad",
    "bias",
    "catastrophic_outlier_frac",
    "outlier_frac_005",
)
CATASTROPHIC_DZ = 0.15  # |dz| above this is a catastrophic outlier (the seed's definition)
OUTLIER_D = 0.05  # |dz / (1 + z)| above this is an outlier (Pasquet et al. 2019)
Z_BIN_EDGES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 2.0)


def metric_table(z_true: npt.ArrayLike, z_pred: npt.ArrayLike) -> dict[str, float]:
    """The metric table (docs/explanation/architecture.md, "Metrics") for one set of predictions, as plain floats."""
    truth = np.asarray(z_true, dtype=np.float64).ravel()
    pred = np.asarray(z_pred, dtype=np.float64).ravel()
    if truth.shape != pred.shape:
        raise ValueError(f"z_true has {truth.size} values but z_pred has {pred.size}")
    if truth.size == 0:
        raise ValueError("cannot compute metrics on an empty set")
    dz = pred - truth
    d = dz / (1.0 + truth)
    total_var = float(np.sum((truth - truth.mean()) ** 2))
    return {
        "mae": float(np.mean(np.abs(dz))),
        "mse": float(np.mean(dz**2)),
        "r2": 1.0 - float(np.sum(dz**2)) / total_var if total_var > 0 else float("nan"),
        "sigma_mad": 1.4826 * float(np.median(np.abs(d - np.median(d)))),
        "bias": float(np.mean(d)),
        "catastrophic_outlier_frac": float(np.mean(np.abs(dz) > CATASTROPHIC_DZ)),
        "outlier_frac_005": float(np.mean(np.abs(d) > OUTLIER_D)),
    }


def per_bin_table(
    z_true: npt.ArrayLike, z_pred: npt.ArrayLike, edges: tuple[float, ...] = Z_BIN_EDGES
) -> pd.DataFrame:
    """The metric table per spectroscopic-redshift bin; empty bins are left out."""
    truth = np.asarray(z_true, dtype=np.float64).ravel()
    pred = np.asarray(z_pred, dtype=np.float64).ravel()
    rows = []
    for lo, hi in itertools.pairwise(edges):
        inside = (truth >= lo) & (truth < hi)
        if inside.sum() == 0:
            continue
        rows.append(
            {"z_lo": lo, "z_hi": hi, "n": int(inside.sum()), **metric_table(truth[inside], pred[inside])}
        )
    return pd.DataFrame(rows)
