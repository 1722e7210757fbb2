"""The `pdf` challenger through the real pipeline stage: trained, calibrated, scored, saved in float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from astrospect.data.dataset import Splits, iter_selected, select_splits
from astrospect.models import registry as challengers
from astrospect.models.pipeline import ChallengerOutcome, run_challenger
from astrospect.models.registry import TrainConfig
from astrospect.pdf.metrics import PDF_METRIC_NAMES
from astrospect.simulate import synthesize

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> Splits:
    shards = synthesize(tmp_path_factory.mktemp("sim"), n=900, seed=8, shard_size=300, lrg_fraction=0.05)
    return select_splits(shards, "full")


@pytest.fixture(scope="module")
def outcome(splits: Splits, tmp_path_factory: pytest.TempPathFactory) -> ChallengerOutcome:
    config = TrainConfig(
        out_dir=tmp_path_factory.mktemp("pdf") / "run", epochs=3, patience=3, precision="auto"
    )
    return run_challenger(challengers.get("pdf"), splits, config)


def test_pdf_challenger_reports_point_and_pdf_metrics_before_and_after_calibration(
    outcome: ChallengerOutcome,
) -> None:
    evaluation = outcome.evaluation
    assert set(PDF_METRIC_NAMES) <= set(evaluation.pdf_metrics)
    assert set(PDF_METRIC_NAMES) <= set(evaluation.uncalibrated_pdf_metrics)
    assert evaluation.pdfs is not None and evaluation.bins is not None
    assert np.allclose(evaluation.pdfs.probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert 0.0 < evaluation.pdf_metrics["coverage_68"] < 1.0 and evaluation.pdf_metrics["crps"] > 0
    assert {"temperature", "shift"} <= set(outcome.trained.run_metrics)
    # Its point redshift is the PDF's median: what serving answers too.
    from astrospect.pdf.bins import POINT_ESTIMATE

    np.testing.assert_allclose(evaluation.z_pred, evaluation.pdfs.point(POINT_ESTIMATE), atol=1e-6)
    names = {path.name for path in outcome.plots}
    assert {"pit_histogram.png", "coverage_curve.png", "example_pdfs.png"} <= names


def test_the_saved_pdf_model_computes_in_float32_and_reloads_identically(
    outcome: ChallengerOutcome, splits: Splits
) -> None:
    from astrospect.models.calibration import model_calibration
    from astrospect.models.cnn import load_model
    from astrospect.models.predict import predict_pdf

    assert outcome.trained.model_path is not None and outcome.trained.keras_model is not None
    reloaded = load_model(outcome.trained.model_path)
    assert {layer.dtype_policy.name for layer in reloaded.layers} <= {"float32"}
    images = next(iter_selected(splits.holdout))[0]
    np.testing.assert_array_equal(
        predict_pdf(reloaded, images).probabilities,
        predict_pdf(outcome.trained.keras_model, images).probabilities,
    )
    assert model_calibration(reloaded) == model_calibration(outcome.trained.keras_model)


def test_cpu_bfloat16_is_used_where_the_cpu_has_it(outcome: ChallengerOutcome) -> None:
    from astrospect.models.train import cpu_has_bfloat16

    expected = "mixed_bfloat16" if cpu_has_bfloat16() else "float32"
    assert outcome.trained.params["precision_used"] in (expected, "mixed_float16")


def test_the_null_and_knn_baselines_give_pdfs_on_the_same_bins(splits: Splits, tmp_path: Path) -> None:
    for name in ("baseline-nz-full", "baseline-knn-full"):
        result = run_challenger(challengers.get(name), splits, TrainConfig(out_dir=tmp_path / name))
        from astrospect.pdf.bins import DEFAULT_BINS

        assert result.evaluation.bins == DEFAULT_BINS  # the PDF CNN's bins: every PDF row is comparable
        assert result.evaluation.pdfs is not None
        assert np.allclose(result.evaluation.pdfs.probabilities.sum(axis=1), 1.0)
        if name == "baseline-nz-full":  # the same N(z) for every galaxy
            assert np.all(result.evaluation.pdfs.probabilities == result.evaluation.pdfs.probabilities[0])
