"""Evaluation on the fixed holdout: the metric table, the per-redshift-bin table, plots."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import matplotlib

matplotlib.use("Agg")  # headless: plots are files for MLflow, never windows
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
import pandas as pd

from astrospect.data.dataset import RowSelection, iter_selected_cutouts
from astrospect.data.metrics import CATASTROPHIC_DZ, METRIC_NAMES, metric_table, per_bin_table
from astrospect.data.shards import Cutouts
from astrospect.models.predict import predict_redshift
from astrospect.pdf.bins import RedshiftBins, RedshiftPdfs
from astrospect.pdf.plots import plot_coverage_curve, plot_example_pdfs, plot_pit_histogram, save_figure

# A batch of cutouts (raw pixels, with the E(B-V) and whatever else their shard carries) -> redshift, or
# -> their PDFs.
Predict = Callable[[Cutouts], npt.NDArray[np.float32]]
PredictPdf = Callable[[Cutouts], RedshiftPdfs]


@dataclass
class Evaluation:
    """One model's predictions on the holdout and the metrics computed from them."""

    name: str  # the challenger's name, or "v<version>" for a registered model
    metrics: dict[str, float]  # the point metric table
    per_bin: pd.DataFrame
    objid: npt.NDArray[np.int64]
    z_true: npt.NDArray[np.float32]
    z_pred: npt.NDArray[np.float32]
    # For a model that gives PDFs: the PDF metric table, its holdout PDFs on `bins`, and the metrics before
    # calibration where there is one.
    pdf_metrics: dict[str, float] = field(default_factory=dict)
    pdfs: RedshiftPdfs | None = None
    bins: RedshiftBins | None = None
    uncalibrated_pdf_metrics: dict[str, float] = field(default_factory=dict)


def evaluate(
    predict: Predict | None,
    holdout: RowSelection,
    *,
    name: str,
    predict_pdf: PredictPdf | None = None,
    bins: RedshiftBins | None = None,
    uncalibrated_pdf: PredictPdf | None = None,
) -> Evaluation:
    """Score a predictor (raw cutouts in, redshift out; optionally PDFs on ``bins``) on the holdout rows,
    streaming the pixels once. With PDFs and no ``predict``, the redshift is the PDFs' POINT_ESTIMATE,
    taken from the same model call (what serving answers), so the model runs once per chunk."""
    from astrospect.pdf.bins import POINT_ESTIMATE

    if len(holdout) == 0:
        raise ValueError(f"{name}: no holdout galaxies in {len(holdout.shards)} shard(s)")
    if (predict_pdf is None) != (bins is None):
        raise ValueError(f"{name}: PDFs need both predict_pdf and their bins")
    if predict is None and bins is None:
        raise ValueError(f"{name}: a redshift needs predict, or PDFs to take it from")
    objid: list[npt.NDArray[np.int64]] = []
    z_true: list[npt.NDArray[np.float32]] = []
    z_pred: list[npt.NDArray[np.float32]] = []
    pdfs: list[RedshiftPdfs] = []
    raw_pdfs: list[RedshiftPdfs] = []
    for chunk in iter_selected_cutouts(holdout):
        assert chunk.redshift is not None
        z_true.append(chunk.redshift)
        objid.append(chunk.objid)
        if predict_pdf is not None:
            pdfs.append(predict_pdf(chunk))
        if predict is not None:
            z_pred.append(predict(chunk))
        else:
            z_pred.append(pdfs[-1].point(POINT_ESTIMATE).astype(np.float32))
        if uncalibrated_pdf is not None:
            raw_pdfs.append(uncalibrated_pdf(chunk))
    ids_all, truth, pred = np.concatenate(objid), np.concatenate(z_true), np.concatenate(z_pred)
    evaluation = Evaluation(name, metric_table(truth, pred), per_bin_table(truth, pred), ids_all, truth, pred)
    if bins is not None:
        from astrospect.pdf.metrics import pdf_metric_table

        evaluation.pdfs = RedshiftPdfs.concatenate(pdfs)
        if evaluation.pdfs.bins != bins:
            raise ValueError(f"{name}: PDFs over other bins than the {bins.n} given")
        evaluation.bins = bins
        evaluation.pdf_metrics = pdf_metric_table(evaluation.pdfs, truth)
        if raw_pdfs:
            evaluation.uncalibrated_pdf_metrics = pdf_metric_table(RedshiftPdfs.concatenate(raw_pdfs), truth)
    return evaluation


def evaluate_model(model: keras.Model, holdout: RowSelection, *, name: str) -> Evaluation:
    """Score a saved Keras model (raw cutouts in): redshift, or PDFs and their point estimate."""
    from astrospect.models.cnn import pdf_bins

    bins = pdf_bins(model)
    if bins is None:
        return evaluate(lambda chunk: predict_redshift(model, chunk.images, chunk.ebv), holdout, name=name)
    from astrospect.models.predict import predict_pdf

    return evaluate(
        None,
        holdout,
        name=name,
        predict_pdf=lambda chunk: predict_pdf(model, chunk.images, chunk.ebv, bins),
        bins=bins,
    )


def comparison_table(evaluations: Sequence[Evaluation], *, with_seed: bool = True) -> pd.DataFrame:
    """Metrics side by side, one row per model, plus the seed's published rows (real SDSS data) for reference."""
    from astrospect.models import registry as challengers

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
    return save_figure(fig, path)


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
    return save_figure(fig, path)


def plot_learning_curves(histories: dict[str, dict[str, list[float]]], path: Path) -> Path:
    """Training and validation curves of every metric the history holds both of (loss; mae for point models)."""
    keys = sorted(
        {key for history in histories.values() for key in history if f"val_{key}" in history},
        key=lambda key: (key != "loss", key),
    )
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.8), squeeze=False)
    for name, history in histories.items():
        for axis, key in zip(axes[0], keys, strict=True):
            epochs = np.arange(1, len(history[key]) + 1)
            line = axis.plot(epochs, history[key], label=f"{name} train")[0]
            axis.plot(epochs, history[f"val_{key}"], "--", color=line.get_color(), label=f"{name} val")
            axis.set_xlabel("epoch")
            axis.set_ylabel(key)
            axis.set_yscale("log")
    axes[0, 0].legend(fontsize=8)
    return save_figure(fig, path)


def plot_pdf_figures(evaluation: Evaluation, folder: Path) -> list[Path]:
    """The PIT histogram, the coverage curve and a grid of example PDFs with their spec-z."""
    from astrospect.pdf.metrics import pit_values

    if evaluation.pdfs is None or evaluation.bins is None:
        raise ValueError(f"{evaluation.name}: no PDFs to plot")
    pits = {evaluation.name: pit_values(evaluation.pdfs, evaluation.z_true)}
    return [
        plot_pit_histogram(pits, folder / "pit_histogram.png"),
        plot_coverage_curve(pits, folder / "coverage_curve.png"),
        plot_example_pdfs(
            {evaluation.name: evaluation.pdfs},
            evaluation.z_true,
            folder / "example_pdfs.png",
        ),
    ]
