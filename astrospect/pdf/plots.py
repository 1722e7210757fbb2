"""PDF figures for MLflow: the PIT histogram, example PDFs with their spec-z, the coverage curve.

Each takes one or more named PDF sets (e.g. the PDF CNN and both PDF baselines) so no figure stands alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: plots are files for MLflow, never windows
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt

from astrospect.pdf.bins import RedshiftPdfs
from astrospect.pdf.metrics import COVERAGE_LEVELS, coverage_curve

PIT_HISTOGRAM_BINS = 20


def plot_pit_histogram(pits: Mapping[str, npt.ArrayLike], path: Path) -> Path:
    """PIT histograms, normalised so a calibrated set lies on 1; a U shape means too-narrow PDFs, a hump
    too-wide ones, a slope a bias."""
    fig, axis = plt.subplots(figsize=(6.5, 4.2))
    edges = [float(v) for v in np.linspace(0, 1, PIT_HISTOGRAM_BINS + 1)]
    for name, pit in pits.items():
        axis.hist(
            np.asarray(pit, dtype=np.float64), bins=edges, density=True, histtype="step", lw=1.5, label=name
        )
    axis.axhline(1.0, color="k", lw=0.8, ls="--", label="calibrated")
    axis.set_xlabel("PIT = CDF(spec-z)")
    axis.set_ylabel("density")
    axis.set_xlim(0, 1)
    axis.legend(fontsize=8)
    return save_figure(fig, path)


def plot_coverage_curve(pits: Mapping[str, npt.ArrayLike], path: Path) -> Path:
    """Observed fraction of spec-z inside the central interval against the interval's nominal level."""
    fig, axis = plt.subplots(figsize=(4.8, 4.5))
    levels = [float(v) for v in COVERAGE_LEVELS]
    for name, pit in pits.items():
        axis.plot(levels, coverage_curve(pit, levels), "o-", ms=3, label=name)
    axis.plot([0, 1], [0, 1], "k--", lw=0.8, label="calibrated")
    axis.set_xlabel("nominal coverage of the central interval")
    axis.set_ylabel("observed coverage")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.legend(fontsize=8)
    return save_figure(fig, path)


def plot_example_pdfs(
    pdfs: Mapping[str, RedshiftPdfs],
    z_true: npt.ArrayLike,
    path: Path,
    *,
    n_examples: int = 12,
    seed: int = 0,
) -> Path:
    """A grid of galaxies spread over the spec-z range (a seeded draw per redshift quantile): each panel
    shows every named PDF of that galaxy, its spec-z (black line) and the first set's 68% interval; the
    x range is the first set's bins."""
    z = np.asarray(z_true, dtype=np.float64).ravel()
    chosen = _spread_over_redshift(z, n_examples, seed)
    columns = 4
    rows = -(-len(chosen) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
    first = next(iter(pdfs.values()))
    bins = first.bins
    summary = first[chosen].summary()
    for panel, (axis, galaxy) in enumerate(zip(axes.ravel(), chosen, strict=False)):
        for name, values in pdfs.items():
            density = values.probabilities[galaxy] / values.bins.widths
            axis.stairs(density, values.bins.edge_array, label=name)
        axis.axvspan(summary.lo68[panel], summary.hi68[panel], color="C0", alpha=0.12)
        axis.axvline(z[galaxy], color="k", lw=1.2)
        half_width = max(0.08, 4 * (summary.hi95[panel] - summary.lo95[panel]))
        axis.set_xlim(max(bins.edges[0], z[galaxy] - half_width), min(bins.edges[-1], z[galaxy] + half_width))
        axis.set_title(f"spec-z {z[galaxy]:.3f}", fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in axes.ravel()[len(chosen) :]:
        axis.axis("off")
    axes[0, 0].legend(fontsize=6)
    fig.supxlabel("redshift")
    fig.supylabel("p(z)")
    return save_figure(fig, path)


def _spread_over_redshift(z: npt.NDArray[np.float64], n: int, seed: int) -> list[int]:
    """One galaxy from each of n equal-count spec-z slices: the tail is shown, not only the peak."""
    if z.size == 0:
        raise ValueError("no galaxies to plot")
    rng = np.random.default_rng(seed)
    order = np.argsort(z)
    return [int(rng.choice(part)) for part in np.array_split(order, min(n, z.size)) if part.size]


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Write a figure (PNG for MLflow, never a window) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
