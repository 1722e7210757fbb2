"""One challenger's training stage end to end: fit it, score it on the fixed holdout, draw its plots.

The CLI's ``train`` command and the Airflow training tasks both call :func:`run_challenger`, so a nightly
run and a person at a terminal produce the same artefacts. The splits come in already computed: a session
selects them once (:func:`astrospect.data.dataset.select_splits`) and every stage reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from astrospect.data.dataset import Splits
from astrospect.models.evaluate import (
    Evaluation,
    evaluate,
    plot_learning_curves,
    plot_pdf_figures,
    plot_predicted_vs_true,
    plot_residuals,
)
from astrospect.models.registry import Challenger, TrainConfig, Trained
from astrospect.settings import get_logger

log = get_logger(__name__)


@dataclass
class ChallengerOutcome:
    """What one challenger produced: the fitted model, its holdout scores, and its plots."""

    trained: Trained
    evaluation: Evaluation
    plots: list[Path] = field(default_factory=list)

    @property
    def challenger(self) -> Challenger:
        return self.trained.challenger


def run_challenger(challenger: Challenger, splits: Splits, config: TrainConfig) -> ChallengerOutcome:
    trained = challenger.fit(splits, config)
    evaluation = evaluate(
        trained.predict,
        splits.holdout,
        name=challenger.name,
        predict_pdf=trained.predict_pdf,
        bins=trained.bins,
        uncalibrated_pdf=trained.uncalibrated_pdf,
    )
    plots_dir = config.out_dir / "plots"
    plots = [
        plot_predicted_vs_true([evaluation], plots_dir / "predicted_vs_true.png"),
        plot_residuals([evaluation], plots_dir / "residuals_vs_z.png"),
    ]
    if trained.history:
        plots.append(
            plot_learning_curves({challenger.name: trained.history}, plots_dir / "learning_curves.png")
        )
    if evaluation.pdfs is not None:
        plots += plot_pdf_figures(evaluation, plots_dir)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    evaluation.per_bin.to_csv(config.out_dir / "per_bin_metrics.csv", index=False)
    log.info(
        "%s holdout: sigma_mad %.4f, mae %.4f on %d galaxies%s",
        challenger.name,
        evaluation.metrics["sigma_mad"],
        evaluation.metrics["mae"],
        len(evaluation.z_true),
        "; PDFs: crps {crps:.4f}, coverage_68 {coverage_68:.3f}, pit_ks {pit_ks:.3f}".format(
            **evaluation.pdf_metrics
        )
        if evaluation.pdf_metrics
        else "",
    )
    return ChallengerOutcome(trained, evaluation, plots)
