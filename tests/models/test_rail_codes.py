"""The field's codes through RAIL's own stages: each trains and predicts on a tiny simulated set, its qp
ensemble goes through the PDF metrics (binned, and through a qp file and back), and a failing stage's error
names the stage."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from astrospect.data.dataset import Splits, iter_selected_cutouts, select_splits
from astrospect.models import registry as challengers
from astrospect.models.pipeline import ChallengerOutcome, run_challenger
from astrospect.models.registry import TrainConfig, Trained
from astrospect.pdf.bins import DEFAULT_BINS, read_qp, write_qp
from astrospect.pdf.metrics import PDF_METRIC_NAMES, pdf_metric_table, pit_values
from astrospect.simulate import synthesize

if TYPE_CHECKING:
    from astrospect.models.rail.codes import RailPredictor

pytestmark = pytest.mark.model

RAIL_CHALLENGERS = ("rail-flexzboost", "rail-cmnn", "rail-dnf", "rail-bpz")


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> Splits:
    shards = synthesize(tmp_path_factory.mktemp("sim"), n=400, seed=33, shard_size=200, lrg_fraction=0.05)
    return select_splits(shards, "full")


@pytest.fixture(scope="module", params=RAIL_CHALLENGERS)
def outcome(
    request: pytest.FixtureRequest, splits: Splits, tmp_path_factory: pytest.TempPathFactory
) -> ChallengerOutcome:
    name = request.param
    return run_challenger(challengers.get(name), splits, TrainConfig(out_dir=tmp_path_factory.mktemp(name)))


def test_each_code_is_a_baseline_pdf_challenger_on_the_default_queue() -> None:
    for name in RAIL_CHALLENGERS:
        challenger = challengers.get(name)
        # baseline: scored and logged, never promoted; the DAG sends baselines to the default queue
        assert challenger.output == "pdf" and challenger.baseline and challenger.clipping == "full"
    # make run's set holds the codes that fit its 15 minutes (registry.DEFAULT_SESSION says why)
    assert [name for name in RAIL_CHALLENGERS if name in challengers.DEFAULT_SESSION] == ["rail-dnf"]


def test_each_code_trains_and_scores_pdfs_on_the_system_bins(
    outcome: ChallengerOutcome, splits: Splits
) -> None:
    evaluation = outcome.evaluation
    assert evaluation.bins == DEFAULT_BINS and evaluation.pdfs is not None
    assert len(evaluation.pdfs) == len(splits.holdout) == len(evaluation.z_pred)
    np.testing.assert_allclose(evaluation.pdfs.probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert set(PDF_METRIC_NAMES) <= set(evaluation.pdf_metrics)
    assert 0.0 < evaluation.pdf_metrics["crps"] < 0.2
    assert 0.0 <= evaluation.pdf_metrics["coverage_68"] <= 1.0
    # the point redshift is RAIL's median of the code's own PDF: inside the range, and near the binned median
    assert np.isfinite(evaluation.z_pred).all()
    binned_median = evaluation.pdfs.point("median")
    assert np.median(np.abs(evaluation.z_pred - binned_median)) < 2 * DEFAULT_BINS.widths[0]
    assert outcome.trained.params["informer"].endswith("Informer")
    assert {path.name for path in outcome.plots} >= {"pit_histogram.png", "coverage_curve.png"}


def test_the_codes_qp_ensemble_round_trips_through_the_pdf_metrics(
    outcome: ChallengerOutcome, splits: Splits, tmp_path: Path
) -> None:
    from astrospect.models.rail.stages import ensemble_pdfs

    predictor = _predictor_of(outcome.trained)
    chunk = next(iter_selected_cutouts(splits.holdout))
    assert chunk.redshift is not None
    ensemble = predictor.ensemble(predictor.table(chunk.images))
    pdfs = ensemble_pdfs(ensemble, DEFAULT_BINS)
    # The binned PDFs' PIT is the code's own CDF at the true redshift, to within a bin's mass.
    own_pit = np.asarray(ensemble.cdf(chunk.redshift.astype(np.float64)[:, None])).reshape(-1)
    inside = (chunk.redshift > DEFAULT_BINS.edges[0]) & (chunk.redshift < DEFAULT_BINS.edges[-1])
    np.testing.assert_allclose(pit_values(pdfs, chunk.redshift)[inside], own_pit[inside], atol=0.05)
    # and through a qp file and back: the same metrics
    metrics = pdf_metric_table(pdfs, chunk.redshift)
    read, _ = read_qp(write_qp(tmp_path / "rail.hdf5", pdfs))
    assert pdf_metric_table(read, chunk.redshift) == pytest.approx(metrics, rel=1e-9, abs=1e-12)


def _predictor_of(trained: Trained) -> RailPredictor:
    """The RailPredictor behind a builder's predictions (its predict_pdf is a RailPredictions' method)."""
    from astrospect.models.rail.codes import RailPredictions

    predictions = getattr(trained.predict_pdf, "__self__", None)
    assert isinstance(predictions, RailPredictions)
    return predictions.predictor


def test_a_failing_stage_names_the_stage_and_chains_the_cause(
    splits: Splits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from astrospect.models.rail import codes
    from astrospect.models.rail.stages import RailStageError

    broken = codes.RailCode(
        "CMNN with a band the table lacks",
        codes.CODES["cmnn"].informer,
        codes.CODES["cmnn"].estimator,
        inform_config={"bands": ["mag_u_sdss", "mag_g_sdss", "mag_r_sdss", "mag_i_sdss", "mag_w_sdss"]},
    )
    monkeypatch.setitem(codes.CODES, "cmnn", broken)
    with pytest.raises(
        RailStageError, match=r"challenger 'rail-cmnn': RAIL stage CMNNInformer failed"
    ) as caught:
        challengers.get("rail-cmnn").fit(splits, TrainConfig(out_dir=tmp_path))
    assert caught.value.stage == "CMNNInformer"
    assert isinstance(caught.value.__cause__, KeyError) and "mag_w_sdss" in str(caught.value)
