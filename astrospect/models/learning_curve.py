"""The learning curve: holdout sigma_MAD of challengers against the number of training galaxies.

Every point trains on a nested subset of one snapshot's training split (the galaxies whose objid hash falls
in the first fraction of the training range, so a smaller set is always inside a larger one) and is scored
on the same fixed holdout; the validation split is the whole one at every size, because that is where the
recipe makes its choices (early stopping, the k-NN's aperture and k). `astrospect learning-curve` runs it
and logs the table and the figure to MLflow (:func:`astrospect.tracking.studies.log_learning_curve`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from astrospect.data.dataset import RowSelection, Splits, read_labels, splits_from_labels
from astrospect.data.splits import TRAIN_FRACTION, objid_unit_hash
from astrospect.models import registry as challengers
from astrospect.settings import get_logger

if TYPE_CHECKING:
    from astrospect.models.pipeline import ChallengerOutcome
    from astrospect.models.registry import TrainConfig

log = get_logger(__name__)


@dataclass
class CurvePoint:
    """One challenger trained on ``n_train`` galaxies and scored on the holdout."""

    challenger: str
    n_train: int
    sigma_mad: float
    outlier_frac_005: float
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)
    params: dict[str, object] = field(default_factory=dict)
    crps: float | None = None  # for a challenger that gives PDFs


def nested_training_subset(splits: Splits, objid: Sequence[np.ndarray], n_train: int) -> Splits:
    """``splits`` with its training rows cut to the ``n_train`` whose objid hash is lowest.

    The split hash puts a training galaxy anywhere in [0, TRAIN_FRACTION): keeping those below a threshold
    keeps a uniform, nested subset, and validation and holdout do not move.
    """
    train = splits.train
    if n_train > len(train):
        raise ValueError(
            f"asked for {n_train} training galaxies; the snapshot's training split has {len(train)}"
        )
    hashes = [objid_unit_hash(ids[rows]) for ids, rows in zip(objid, train.rows, strict=True)]
    threshold = np.sort(np.concatenate(hashes))[n_train - 1] if n_train else -1.0
    kept_rows, kept_z = [], []
    start = 0
    for shard_hashes, rows in zip(hashes, train.rows, strict=True):
        keep = shard_hashes <= threshold
        kept_rows.append(rows[keep])
        kept_z.append(train.redshift[start : start + len(rows)][keep])
        start += len(rows)
    subset = RowSelection(train.shards, tuple(kept_rows), np.concatenate(kept_z))
    assert len(subset) == n_train and threshold < TRAIN_FRACTION
    return replace(splits, train=subset)


def run_learning_curve(
    shards: Sequence[Path],
    sizes: Sequence[int],
    challenger_names: Sequence[str],
    config: TrainConfig,
) -> list[CurvePoint]:
    """Train and score each challenger at each size (smallest first), one label pass for all of them."""
    from astrospect.models.pipeline import run_challenger

    labels = read_labels(shards)
    objid = [shard.objid for shard in labels]
    points = []
    for size in sorted(sizes):
        for name in challenger_names:
            challenger = challengers.get(name)
            splits = nested_training_subset(splits_from_labels(labels, challenger.clipping), objid, size)
            started = time.perf_counter()
            outcome: ChallengerOutcome = run_challenger(
                challenger, splits, replace(config, out_dir=config.out_dir / f"{name}-{size}")
            )
            seconds = time.perf_counter() - started
            metrics = outcome.evaluation.metrics
            points.append(
                CurvePoint(
                    name,
                    size,
                    float(metrics["sigma_mad"]),
                    float(metrics["outlier_frac_005"]),
                    seconds,
                    outcome.trained.history,
                    outcome.trained.params,
                    outcome.evaluation.pdf_metrics.get("crps"),
                )
            )
            log.info(
                "learning curve: %s at %d training galaxies: sigma_mad %.4f (%.0f s)",
                name,
                size,
                points[-1].sigma_mad,
                seconds,
            )
    return points


def curve_table(
    points: Sequence[CurvePoint], reference: str = "baseline-knn-full"
) -> list[dict[str, object]]:
    """One row per size: each challenger's sigma_MAD (and CRPS, for PDFs), and each one's ratio to
    ``reference``'s where both ran."""
    rows: list[dict[str, object]] = []
    for size in sorted({point.n_train for point in points}):
        at_size = {point.challenger: point for point in points if point.n_train == size}
        row: dict[str, object] = {"n_train": size}
        for name, point in at_size.items():
            row[f"{name} sigma_mad"] = point.sigma_mad
            if point.crps is not None:
                row[f"{name} crps"] = point.crps
        if reference in at_size:
            base = at_size[reference]
            for name, point in at_size.items():
                if name != reference:
                    row[f"{name} / {reference}"] = point.sigma_mad / base.sigma_mad
                    if point.crps is not None and base.crps is not None:
                        row[f"{name} crps / {reference}"] = point.crps / base.crps
        rows.append(row)
    return rows


def record_learning_curve(
    points: Sequence[CurvePoint], load_before: float | None = None, reference: str = "baseline-knn-full"
) -> Path:
    """docs/results/learning-curve.json (:mod:`astrospect.results`): per training-set size, each
    challenger's sigma_MAD (and CRPS), its ratio to ``reference``'s, and its wall time."""
    from astrospect import results

    names = sorted({point.challenger for point in points}, key=lambda name: (name == reference, name))
    has_crps = sorted({point.challenger for point in points if point.crps is not None})
    others = [name for name in names if name != reference]
    columns = [
        "training galaxies",
        *(f"{name} sigma_MAD" for name in names),
        *(f"{name} / {reference}" for name in others),
        *(f"{name} CRPS" for name in has_crps),
        *(f"{name} CRPS / {reference}" for name in has_crps if name != reference and reference in has_crps),
        *(f"{name} wall time (min)" for name in names),
    ]
    rows: list[list[results.Scalar]] = []
    for size in sorted({point.n_train for point in points}):
        at = {point.challenger: point for point in points if point.n_train == size}
        base = at.get(reference)

        def ratio(value: float | None, against: float | None) -> float | None:
            return round(value / against, 2) if value is not None and against else None

        rows.append(
            [
                size,
                *(round(at[name].sigma_mad, 4) if name in at else None for name in names),
                *(
                    ratio(at[n].sigma_mad if n in at else None, base.sigma_mad if base else None)
                    for n in others
                ),
                *(
                    round(c, 4) if (c := at[n].crps if n in at else None) is not None else None
                    for n in has_crps
                ),
                *(
                    ratio(at[n].crps if n in at else None, base.crps if base else None)
                    for n in has_crps
                    if n != reference and reference in has_crps
                ),
                *(round(at[name].seconds / 60, 1) if name in at else None for name in names),
            ]
        )
    largest = max(point.n_train for point in points)
    return results.record(
        "learning-curve",
        title="sigma_MAD against training-set size, one holdout",
        figures={"largest_training_set": largest, "reference": reference},
        tables={"curve": results.table(columns, rows)},
        load_before=load_before,
    )


def plot_learning_curve(points: Sequence[CurvePoint], path: Path) -> Path:
    """sigma_MAD against training galaxies (log axis), one line per challenger."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4.2))
    for name in dict.fromkeys(point.challenger for point in points):
        mine = sorted((p for p in points if p.challenger == name), key=lambda p: p.n_train)
        axis.plot([p.n_train for p in mine], [p.sigma_mad for p in mine], marker="o", label=name)
    axis.set_xscale("log")
    axis.set_xlabel("training galaxies")
    axis.set_ylabel("holdout sigma_MAD")
    axis.set_title("learning curve (same holdout, same validation split)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
