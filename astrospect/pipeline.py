"""One variant's training stage end to end: fit the CNN and the colour baseline, score both, draw the plots.

The CLI's ``train`` command and the Airflow training tasks both call :func:`run_variant`, so a nightly run
and a person at a terminal produce the same artefacts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from astrospect.baseline import ColourBaseline, fit_colour_baseline
from astrospect.evaluate import (
    Evaluation,
    evaluate_baseline,
    evaluate_model,
    plot_learning_curves,
    plot_predicted_vs_true,
    plot_residuals,
)
from astrospect.settings import get_logger
from astrospect.train import TrainConfig, TrainResult, train

log = get_logger(__name__)


@dataclass
class VariantOutcome:
    """What one variant produced: the trained CNN, its holdout scores, the baseline's, and the plots."""

    train_result: TrainResult
    evaluation: Evaluation
    baseline: ColourBaseline
    baseline_evaluation: Evaluation
    plots: list[Path] = field(default_factory=list)


def run_variant(config: TrainConfig) -> VariantOutcome:
    result = train(config)
    split = {"train_fraction": config.train_fraction, "val_fraction": config.val_fraction}
    evaluation = evaluate_model(
        result.model, config.shards, name=f"cnn-{config.variant}", variant=config.variant, **split
    )
    baseline = fit_colour_baseline(config.shards, config.variant, **split)
    baseline_evaluation = evaluate_baseline(
        baseline, config.shards, name=f"baseline-knn-{config.variant}", variant=config.variant, **split
    )
    plots_dir = config.out_dir / "plots"
    plots = [
        plot_predicted_vs_true([evaluation, baseline_evaluation], plots_dir / "predicted_vs_true.png"),
        plot_residuals([evaluation, baseline_evaluation], plots_dir / "residuals_vs_z.png"),
        plot_learning_curves({config.variant: result.history}, plots_dir / "learning_curves.png"),
    ]
    evaluation.per_bin.to_csv(config.out_dir / "per_bin_metrics.csv", index=False)
    ratio = evaluation.metrics["sigma_mad"] / baseline_evaluation.metrics["sigma_mad"]
    log.info(
        "%s holdout: CNN sigma_mad %.4f, colour k-NN %.4f, ratio %.2f",
        config.variant,
        evaluation.metrics["sigma_mad"],
        baseline_evaluation.metrics["sigma_mad"],
        ratio,
    )
    return VariantOutcome(result, evaluation, baseline, baseline_evaluation, plots)
