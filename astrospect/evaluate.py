"""Evaluation on the fixed holdout: the metric table, the per-redshift-bin table, plots."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import matplotlib

matplotlib.use("Agg")  # headless: plots are files for MLflow, never windows
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
import pandas as pd

from astrospect.data.dataset import RowSelection, iter_selected
from astrospect.metrics import CATASTROPHIC_DZ, METRIC_NAMES, metric_table, per_bin_table
from astrospect.predict import predict_redshift

Predict = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]  # raw cutouts -> redshift


@dataclass
class Evaluation:
    """One model's predictions on the holdout and the metrics computed from them."""

    name: str  # the challenger's name, or "v<version>" for a registered model
    metrics: dict[str, float]
    per_bin: pd.DataFrame
    objid: npt.NDArray[np.int64]
    z_true: npt.NDArray[np.float32]
    z_pred: npt.NDArray[np.float32]


def evaluate(predict: Predict, holdout: RowSelection, *, name: str) -> Evaluation:
    """Score a predictor (raw cutouts in, redshift out) on the holdout rows, streaming the pixels."""
    if len(holdout) == 0:
        raise ValueError(f"{name}: no holdout galaxies in {len(holdout.shards)} shard(s)")
    objid, z_true, z_pred = [], [], []
    for images, redshift, ids in iter_selected(holdout):
        z_pred.append(predict(images))
        z_true.append(redshift)
        objid.append(ids)
    ids_all, truth, pred = np.concatenate(objid), np.concatenate(z_true), np.concatenate(z_pred)
    return Evaluation(name, metric_table(truth, pred), per_bin_table(truth, pred), ids_all, truth, pred)


def evaluate_model(model: keras.Model, holdout: RowSelection, *, name: str) -> Evaluation:
    """Score a Keras model that maps raw cutouts to redshift."""
    return evaluate(lambda images: predict_redshift(model, images), holdout, name=name)


def comparison_table(evaluations: Sequence[Evaluation], *, with_seed: bool = True) -> pd.DataFrame:
    """Metrics side by side, one row per model, plus the seed's published rows (real SDSS data) for reference."""
    from astrospect import challengers

    rows = [
        {"model": e.name, "data": "simulated (holdout)", "n": len(e.z_true), **e.metrics} for e in evaluations
    ]
    if with_seed:
        rows += [
            {"model": f"seed-{c.name}", "data": "real SDSS (published)", "n": np.nan, **c.published}
            for c in challengers.registered()
            if c.published is not None
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
