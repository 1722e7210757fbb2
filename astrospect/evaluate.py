"""Evaluation on the fixed holdout: the metric table, the per-redshift-bin table, the colour baseline, plots."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import matplotlib

matplotlib.use("Agg")  # headless: plots are files for MLflow, never windows
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
import pandas as pd

from astrospect.baseline import ColourBaseline, colour_table
from astrospect.data.dataset import iter_selected, select_rows
from astrospect.data.splits import Split
from astrospect.metrics import CATASTROPHIC_DZ, METRIC_NAMES, SEED_RESULTS, metric_table, per_bin_table
from astrospect.predict import predict_redshift


@dataclass
class Evaluation:
    """One model's predictions on the holdout and the metrics computed from them."""

    name: str  # e.g. "cnn-full", "baseline-knn-full"
    variant: str
    metrics: dict[str, float]
    per_bin: pd.DataFrame
    objid: npt.NDArray[np.int64]
    z_true: npt.NDArray[np.float32]
    z_pred: npt.NDArray[np.float32]


def _evaluation(
    name: str,
    variant: str,
    objid: npt.NDArray[np.int64],
    z_true: npt.NDArray[np.float32],
    z_pred: npt.NDArray[np.float32],
) -> Evaluation:
    return Evaluation(
        name, variant, metric_table(z_true, z_pred), per_bin_table(z_true, z_pred), objid, z_true, z_pred
    )


def evaluate_model(
    model: keras.Model,
    shards: Sequence[Path],
    *,
    name: str = "cnn",
    variant: str = "full",
    train_fraction: float = 0.8,
    val_fraction: float = 0.1,
) -> Evaluation:
    """Score a model (raw cutouts in, redshift out) on the holdout of ``shards``, streaming the pixels."""
    holdout = select_rows(shards, Split.HOLDOUT, "full", train_fraction, val_fraction)
    if len(holdout) == 0:
        raise ValueError(f"no holdout galaxies in {len(shards)} shard(s)")
    objid, z_true, z_pred = [], [], []
    for images, redshift, ids in iter_selected(holdout):
        z_pred.append(predict_redshift(model, images))
        z_true.append(redshift)
        objid.append(ids)
    return _evaluation(name, variant, np.concatenate(objid), np.concatenate(z_true), np.concatenate(z_pred))


def evaluate_baseline(
    baseline: ColourBaseline,
    shards: Sequence[Path],
    *,
    name: str = "baseline-knn",
    variant: str = "full",
    train_fraction: float = 0.8,
    val_fraction: float = 0.1,
) -> Evaluation:
    holdout = select_rows(shards, Split.HOLDOUT, "full", train_fraction, val_fraction)
    table = colour_table(holdout, baseline.aperture_arcsec)  # the colours it was fitted on
    return _evaluation(name, variant, table.objid, table.redshift, baseline.predict_features(table.features))


def comparison_table(evaluations: Sequence[Evaluation], *, with_seed: bool = True) -> pd.DataFrame:
    """Metrics side by side, one row per model, plus the seed's published rows (real SDSS data) for reference."""
    rows = [
        {"model": e.name, "data": "simulated (holdout)", "n": len(e.z_true), **e.metrics} for e in evaluations
    ]
    if with_seed:
        rows += [
            {"model": f"seed-{variant}", "data": "real SDSS (published)", "n": np.nan, **values}
            for variant, values in SEED_RESULTS.items()
        ]
    return pd.DataFrame(rows, columns=["model", "data", "n", *METRIC_NAMES])


def plot_predicted_vs_true(evaluations: Sequence[Evaluation], path: Path) -> Path:
    fig, axes = plt.subplots(1, len(evaluations), figsize=(4.2 * len(evaluations), 4.2), squeeze=False)
    top = max(float(max(e.z_true.max(), e.z_pred.max())) for e in evaluations) * 1.05
    line = np.array([0.0, top])
    for axis, evaluation in zip(axes[0], evaluations, strict=True):
        axis.hexbin(
            evaluation.z_true,
            evaluation.z_pred,
            gridsize=60,
            extent=(0, top, 0, top),
            bins="log",
            cmap="viridis",
            mincnt=1,
        )
        axis.plot(line, line, "w-", lw=1)
        axis.plot(line, line + CATASTROPHIC_DZ, "w--", lw=0.8)
        axis.plot(line, line - CATASTROPHIC_DZ, "w--", lw=0.8)
        m = evaluation.metrics
        axis.set_title(f"{evaluation.name}\nsigma_MAD={m['sigma_mad']:.4f}  MAE={m['mae']:.4f}", fontsize=9)
        axis.set_xlabel("spectroscopic z")
        axis.set_ylabel("predicted z")
        axis.set_xlim(0, top)
        axis.set_ylim(0, top)
    return _save(fig, path)


def plot_residuals(evaluations: Sequence[Evaluation], path: Path) -> Path:
    fig, axis = plt.subplots(figsize=(6.5, 4.2))
    for evaluation in evaluations:
        d = (evaluation.z_pred - evaluation.z_true) / (1 + evaluation.z_true)
        edges = np.quantile(evaluation.z_true, np.linspace(0, 1, 16))
        centres, medians, spreads = [], [], []
        for lo, hi in itertools.pairwise(edges):
            inside = (evaluation.z_true >= lo) & (evaluation.z_true <= hi)
            if inside.sum() >= 5:
                centres.append(float(np.median(evaluation.z_true[inside])))
                medians.append(float(np.median(d[inside])))
                spreads.append(1.4826 * float(np.median(np.abs(d[inside] - np.median(d[inside])))))
        line = axis.plot(centres, medians, "o-", ms=3, label=evaluation.name)[0]
        axis.fill_between(
            centres,
            np.subtract(medians, spreads),
            np.add(medians, spreads),
            color=line.get_color(),
            alpha=0.15,
        )
    axis.axhline(0, color="k", lw=0.8)
    axis.set_xlabel("spectroscopic z")
    axis.set_ylabel("median Δz/(1+z)  (band: sigma_MAD)")
    axis.legend(fontsize=8)
    return _save(fig, path)


def plot_learning_curves(histories: dict[str, dict[str, list[float]]], path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, history in histories.items():
        for axis, key in zip(axes, ("loss", "mae"), strict=True):
            epochs = np.arange(1, len(history[key]) + 1)
            line = axis.plot(epochs, history[key], label=f"{name} train")[0]
            axis.plot(epochs, history[f"val_{key}"], "--", color=line.get_color(), label=f"{name} val")
            axis.set_xlabel("epoch")
            axis.set_ylabel(key)
            axis.set_yscale("log")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
