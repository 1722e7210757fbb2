"""Training on simulated data: the input pipeline's guarantees and a short run that learns something."""

from pathlib import Path

import numpy as np
import pytest

from astrospect.data.dataset import make_tf_dataset, select_rows
from astrospect.data.shards import write_shard
from astrospect.data.splits import Split
from astrospect.metrics import metric_table
from astrospect.settings import CLIPPED_Z_MAX
from astrospect.simulate import synthesize
from astrospect.train import TrainConfig, train


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return synthesize(tmp_path_factory.mktemp("sim"), n=900, seed=3, shard_size=300, lrg_fraction=0.1)


def _square_symmetries(image: np.ndarray) -> list[np.ndarray]:
    turns = [np.rot90(image, k, axes=(0, 1)) for k in range(4)]
    return turns + [np.flip(t, axis=1) for t in turns]


def test_augmentation_applies_a_symmetry_of_the_square_and_keeps_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.normal(size=(40, 5, 32, 32)).astype(np.float32)
    shard = write_shard(tmp_path / "a.h5", images, np.arange(40), rng.uniform(0, 0.5, 40), np.full(40, 1e-4))
    rows = select_rows([shard], Split.TRAIN)
    plain = list(make_tf_dataset(rows, 8, shuffle=False, seed=1).unbatch().as_numpy_iterator())
    augmented = list(
        make_tf_dataset(rows, 8, shuffle=False, seed=1, augment=True).unbatch().as_numpy_iterator()
    )
    assert len(plain) == len(augmented) == len(rows)
    changed = 0
    for (image, z), (new_image, new_z) in zip(plain, augmented, strict=True):
        assert new_z == z
        matches = [np.array_equal(new_image, candidate) for candidate in _square_symmetries(image)]
        assert any(matches)
        changed += not matches[0]
    assert changed > len(plain) // 2  # 7 of 8 transforms change the image
    again = list(make_tf_dataset(rows, 8, shuffle=False, seed=1, augment=True).unbatch().as_numpy_iterator())
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(augmented, again, strict=True))


def test_clipped_variant_drops_high_redshift_from_train_and_val_only(simulated: list[Path]) -> None:
    full_train = select_rows(simulated, Split.TRAIN, "full")
    clipped_train = select_rows(simulated, Split.TRAIN, "clipped")
    assert full_train.redshift.max() > CLIPPED_Z_MAX  # the LRG tail is there to be clipped
    assert clipped_train.redshift.max() <= CLIPPED_Z_MAX
    assert clipped_train.redshift.size == int(np.sum(full_train.redshift <= CLIPPED_Z_MAX))
    assert select_rows(simulated, Split.VAL, "clipped").redshift.max() <= CLIPPED_Z_MAX
    holdout_full = select_rows(simulated, Split.HOLDOUT, "full")
    holdout_clipped = select_rows(simulated, Split.HOLDOUT, "clipped")
    assert np.array_equal(holdout_full.redshift, holdout_clipped.redshift)


def test_short_training_run_beats_predicting_the_mean(simulated: list[Path], tmp_path: Path) -> None:
    from astrospect.evaluate import evaluate_model

    result = train(
        TrainConfig(
            variant="full", shards=simulated, out_dir=tmp_path / "run", epochs=12, patience=12, seed=0
        )
    )
    assert result.model_path.exists() and result.epochs_run == len(result.history["loss"]) <= 12
    assert result.history["val_loss"][-1] < result.history["val_loss"][0]
    evaluation = evaluate_model(result.model, simulated)
    mean_guess = np.full_like(evaluation.z_true, select_rows(simulated, Split.TRAIN).redshift.mean())
    assert evaluation.metrics["mae"] < 0.8 * metric_table(evaluation.z_true, mean_guess)["mae"]
    assert evaluation.metrics["r2"] > 0.2


def test_the_colour_baseline_picks_the_aperture_and_k_that_score_best_on_validation(
    simulated: list[Path],
) -> None:
    from astrospect.baseline import APERTURE_CANDIDATES_ARCSEC, aperture_sweep, fit_colour_baseline

    rows = aperture_sweep(simulated)
    assert [row["aperture_arcsec"] for row in rows] == list(APERTURE_CANDIDATES_ARCSEC)
    assert len({row["val_sigma_mad"] for row in rows}) == len(rows)  # other colours, other fits
    best = min(rows, key=lambda row: row["val_sigma_mad"])
    chosen = fit_colour_baseline(simulated)
    assert (chosen.aperture_arcsec, chosen.k, chosen.val_sigma_mad) == (
        best["aperture_arcsec"],
        best["k"],
        best["val_sigma_mad"],
    )
    for row in rows:
        assert 0.0 < row["holdout_sigma_mad"] < 0.1 and 0.0 <= row["holdout_outlier_frac_005"] <= 1.0
