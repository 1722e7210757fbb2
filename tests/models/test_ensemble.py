"""The `pdf-ensemble` challenger: M `pdf` members with their own seeds, their PDFs averaged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from astrospect.data.dataset import Splits, iter_selected_cutouts, select_splits
from astrospect.models import progress
from astrospect.models import registry as challengers
from astrospect.models.calibration import Calibration, apply_calibration
from astrospect.models.cnn import (
    build_pdf_cnn,
    fit_input_scaling,
    fit_photometry_scaling,
    load_model,
    pdf_bins,
    takes_ebv,
)
from astrospect.models.ensemble import build_ensemble, member_seeds
from astrospect.models.pipeline import ChallengerOutcome, run_challenger
from astrospect.models.predict import predict_pdf
from astrospect.models.registry import TrainConfig
from astrospect.pdf.bins import DEFAULT_BINS
from astrospect.simulate import synthesize

pytestmark = pytest.mark.model


def test_the_ensemble_model_gives_the_mean_of_its_members_pdfs(raw_cutouts: np.ndarray) -> None:
    scaling, photometry = fit_input_scaling(raw_cutouts), fit_photometry_scaling(raw_cutouts)
    members = [build_pdf_cnn(scaling, DEFAULT_BINS, photometry=photometry) for _ in range(3)]
    apply_calibration(members[1], Calibration(0.7, 0.01))  # the members need not agree on anything
    ensemble = build_ensemble(members)
    assert takes_ebv(ensemble) and pdf_bins(ensemble) == DEFAULT_BINS
    ebv = np.linspace(0, 0.2, len(raw_cutouts)).astype(np.float32)
    each = [predict_pdf(member, raw_cutouts, ebv).probabilities for member in members]
    assert not np.allclose(each[0], each[1], atol=1e-4)
    mixed = predict_pdf(ensemble, raw_cutouts, ebv).probabilities
    np.testing.assert_allclose(mixed, np.mean(each, axis=0), atol=1e-6)
    assert np.allclose(mixed.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        build_ensemble(members[:1])


def test_an_ensemble_of_one_is_refused_with_the_setting_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ensemble_members"):
        member_seeds(TrainConfig(out_dir=tmp_path, ensemble_members=1))
    assert member_seeds(TrainConfig(out_dir=tmp_path, seed=7, ensemble_members=3)) == [7, 8, 9]


@dataclass
class Recorder:
    """What the challenger's run would hear while the members train."""

    params: list[dict[str, Any]] = field(default_factory=list)
    curves: list[tuple[int, dict[str, float]]] = field(default_factory=list)

    def training_started(self, params: Mapping[str, Any], input_example: npt.NDArray[np.float32]) -> None:
        self.params.append(dict(params))

    def epoch_ended(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.curves.append((epoch, dict(metrics)))


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> Splits:
    return select_splits(synthesize(tmp_path_factory.mktemp("sim"), n=600, seed=12, shard_size=300), "full")


@pytest.fixture(scope="module")
def trained_ensemble(
    splits: Splits, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ChallengerOutcome, Recorder, TrainConfig]:
    config = TrainConfig(
        out_dir=tmp_path_factory.mktemp("ensemble") / "run", epochs=2, patience=2, ensemble_members=2
    )
    recorder = Recorder()
    with progress.observing(recorder):
        outcome = run_challenger(challengers.get("pdf-ensemble"), splits, config)
    return outcome, recorder, config


def test_the_ensemble_trains_and_its_pdf_is_the_mean_of_its_saved_members(
    trained_ensemble: tuple[ChallengerOutcome, Recorder, TrainConfig], splits: Splits
) -> None:
    outcome, _, config = trained_ensemble
    trained = outcome.trained
    assert outcome.evaluation.pdfs is not None
    assert np.allclose(outcome.evaluation.pdfs.probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert trained.params["member_seeds"] == f"{config.seed},{config.seed + 1}"
    assert trained.model_path is not None
    members = [load_model(config.out_dir / f"member{k}" / "model.keras") for k in range(2)]
    if not trained.params["members_calibrated"]:  # the raw members were the better mixture on validation
        for member in members:
            apply_calibration(member, Calibration())
    chunk = next(iter(iter_selected_cutouts(splits.holdout)))
    each = [predict_pdf(member, chunk.images, chunk.ebv).probabilities for member in members]
    assert not np.allclose(each[0], each[1], atol=1e-4)  # different seeds, different networks
    reloaded = load_model(trained.model_path)
    np.testing.assert_allclose(
        predict_pdf(reloaded, chunk.images, chunk.ebv).probabilities, np.mean(each, axis=0), atol=1e-6
    )
    run = trained.run_metrics
    assert run["images_per_second"] > 0
    assert trained.params["members_calibrated"] == (
        run["val_pit_cvm_calibrated_members"] <= run["val_pit_cvm_raw_members"]
    )


def test_each_member_reports_its_epochs_under_its_own_name_and_the_parameters_once(
    trained_ensemble: tuple[ChallengerOutcome, Recorder, TrainConfig],
) -> None:
    outcome, recorder, config = trained_ensemble
    assert len(recorder.params) == 1 and recorder.params[0]["seed"] == config.seed
    names = {name for _, metrics in recorder.curves for name in metrics}
    for k in range(2):
        assert {f"loss_member{k}", f"val_loss_member{k}", f"images_per_second_member{k}"} <= names
    assert "loss" not in names
    # the history logged at the end names the same curves, so the run gets no second copy
    assert {f"loss_member{k}" for k in range(2)} <= set(outcome.trained.history)
    assert outcome.trained.params["seed"] == recorder.params[0]["seed"]


def test_both_challengers_are_registered_cnns_outside_the_default_session() -> None:
    """Not baselines, so the DAG sends them to the `gpu` queue and they can be registered and promoted."""
    for name in ("pasquet", "pdf-ensemble"):
        challenger = challengers.get(name)
        assert challenger.output == "pdf" and not challenger.baseline and challenger.clipping == "full"
        assert name not in challengers.DEFAULT_SESSION
