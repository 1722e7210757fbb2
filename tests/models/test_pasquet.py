"""The `pasquet` challenger: Pasquet et al. 2019's inception network on 32x32 cutouts, with the PDF head."""

from __future__ import annotations

import numpy as np
import pytest

from astrospect.data.dataset import Splits, iter_selected_cutouts, select_splits
from astrospect.models import registry as challengers
from astrospect.models.cnn import count_trainable_params, fit_input_scaling, load_model, pdf_bins, takes_ebv
from astrospect.models.pasquet import INCEPTION_WIDTHS, build_pasquet_cnn
from astrospect.models.pipeline import ChallengerOutcome, run_challenger
from astrospect.models.predict import predict_pdf
from astrospect.models.registry import TrainConfig
from astrospect.pdf.bins import DEFAULT_BINS
from astrospect.simulate import synthesize

pytestmark = pytest.mark.model


def test_the_inception_stages_see_32_16_and_8_pixel_maps_with_the_published_widths(
    raw_cutouts: np.ndarray,
) -> None:
    model = build_pasquet_cnn(fit_input_scaling(raw_cutouts), DEFAULT_BINS)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    # four branches: 1x1, 3x3 and 5x5 of `filters` each, and the pooled `reduction`; the last one has no 5x5
    widths = [3 * f + r for r, f in INCEPTION_WIDTHS[:-1]] + [
        2 * INCEPTION_WIDTHS[-1][1] + INCEPTION_WIDTHS[-1][0]
    ]
    sizes = [32, 32, 16, 16, 8]
    for k, (size, width) in enumerate(zip(sizes, widths, strict=True)):
        assert shapes[f"inception{k}_concat"] == (size, size, width)
    assert "aperture_photometry" not in shapes  # pixels and E(B-V) alone, as theirs
    assert takes_ebv(model) and pdf_bins(model) == DEFAULT_BINS
    # Flattened 8x8x348 features and E(B-V)'s two (value, known) into 1096 units dominate the count
    dense1 = model.get_layer("dense1")
    assert dense1.kernel.shape == (8 * 8 * widths[-1] + 2, 1096)
    assert count_trainable_params(model) > 25_000_000


def test_its_pdfs_are_normalised_and_ebv_changes_them(raw_cutouts: np.ndarray) -> None:
    model = build_pasquet_cnn(
        fit_input_scaling(raw_cutouts), DEFAULT_BINS, prior=DEFAULT_BINS.histogram(np.full(10, 0.2))
    )
    low = predict_pdf(model, raw_cutouts, np.zeros(len(raw_cutouts), np.float32)).probabilities
    high = predict_pdf(model, raw_cutouts, np.full(len(raw_cutouts), 0.3, np.float32)).probabilities
    unknown = predict_pdf(model, raw_cutouts).probabilities  # NaN: the zero-plus-mask fallback
    for pdfs in (low, high, unknown):
        assert np.allclose(pdfs.sum(axis=1), 1.0, atol=1e-5) and np.all(pdfs >= 0)
    assert np.max(np.abs(high - low)) > 1e-6 and np.max(np.abs(unknown - low)) > 1e-6
    with pytest.raises(ValueError, match="expected 280 probabilities"):
        build_pasquet_cnn(fit_input_scaling(raw_cutouts), DEFAULT_BINS, prior=np.ones(3))


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> Splits:
    return select_splits(synthesize(tmp_path_factory.mktemp("sim"), n=600, seed=11, shard_size=300), "full")


@pytest.fixture(scope="module")
def outcome(splits: Splits, tmp_path_factory: pytest.TempPathFactory) -> ChallengerOutcome:
    config = TrainConfig(out_dir=tmp_path_factory.mktemp("pasquet") / "run", epochs=2, patience=2)
    return run_challenger(challengers.get("pasquet"), splits, config)


def test_the_challenger_trains_calibrates_and_predicts_normalised_pdfs(
    outcome: ChallengerOutcome, splits: Splits
) -> None:
    trained, evaluation = outcome.trained, outcome.evaluation
    assert trained.challenger.name == "pasquet" and trained.challenger.output == "pdf"
    assert not trained.challenger.baseline  # a CNN: the gpu queue, registered and promotable
    assert evaluation.pdfs is not None and len(evaluation.z_true) > 0
    assert np.allclose(evaluation.pdfs.probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert {"temperature", "shift", "images_per_second"} <= set(trained.run_metrics)
    assert trained.run_metrics["images_per_second"] > 0 and len(trained.history["loss"]) >= 1
    assert trained.model_path is not None and trained.keras_model is not None
    reloaded = load_model(trained.model_path)
    assert {layer.dtype_policy.name for layer in reloaded.layers} <= {"float32"}
    chunk = next(iter(iter_selected_cutouts(splits.holdout)))
    np.testing.assert_array_equal(
        predict_pdf(reloaded, chunk.images, chunk.ebv).probabilities,
        predict_pdf(trained.keras_model, chunk.images, chunk.ebv).probabilities,
    )
