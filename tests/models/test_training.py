"""Training on simulated data: the input pipeline's guarantees and a short run that learns something."""

from pathlib import Path

import numpy as np
import pytest

from astrospect.data.clipping import CLIPPED_Z_MAX
from astrospect.data.dataset import make_tf_dataset, read_labels, select_holdout, select_splits
from astrospect.data.metrics import metric_table
from astrospect.data.shards import write_shard
from astrospect.models import registry as challengers
from astrospect.models.registry import TrainConfig
from astrospect.models.train import fit_seed_cnn
from astrospect.simulate import synthesize

pytestmark = pytest.mark.model


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
    rows = select_splits([shard], "full").train
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


def test_clipping_drops_high_redshift_from_train_and_val_only(simulated: list[Path]) -> None:
    full, clipped = select_splits(simulated, "full"), select_splits(simulated, "clipped")
    assert full.train.redshift.max() > CLIPPED_Z_MAX  # the LRG tail is there to be clipped
    assert clipped.train.redshift.max() <= CLIPPED_Z_MAX
    assert clipped.train.redshift.size == int(np.sum(full.train.redshift <= CLIPPED_Z_MAX))
    assert clipped.val.redshift.max() <= CLIPPED_Z_MAX
    assert np.array_equal(full.holdout.redshift, clipped.holdout.redshift)
    assert np.array_equal(full.holdout.redshift, select_holdout(simulated).redshift)
    for split in ("train", "val", "holdout"):  # the three splits never share a galaxy
        for other in ("train", "val", "holdout"):
            if split < other:
                a, b = getattr(full, split), getattr(full, other)
                assert all(not set(x) & set(y) for x, y in zip(a.rows, b.rows, strict=True))


def test_select_splits_reads_each_shards_labels_once(
    simulated: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import h5py

    opened: list[str] = []
    real_file = h5py.File

    def counting_file(name: object, *args: object, **kwargs: object) -> h5py.File:
        opened.append(str(name))
        return real_file(name, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", counting_file)
    splits = select_splits(simulated, "clipped")
    label_reads = len(opened)
    monkeypatch.setattr(h5py, "File", real_file)
    assert len(splits.train) + len(splits.val) <= sum(len(s.objid) for s in read_labels(simulated))
    # One label pass: each shard opened once for its structure check and once for its labels, never per split.
    assert label_reads == 2 * len(simulated), opened


def test_short_training_run_beats_predicting_the_mean(simulated: list[Path], tmp_path: Path) -> None:
    from astrospect.models.evaluate import evaluate_model

    splits = select_splits(simulated, "full")
    trained = fit_seed_cnn(
        challengers.get("full"), splits, TrainConfig(out_dir=tmp_path / "run", epochs=12, patience=12, seed=0)
    )
    assert trained.model_path is not None and trained.model_path.exists()
    assert len(trained.history["loss"]) <= 12
    assert trained.history["val_loss"][-1] < trained.history["val_loss"][0]
    assert trained.keras_model is not None
    evaluation = evaluate_model(trained.keras_model, splits.holdout, name="full")
    mean_guess = np.full_like(evaluation.z_true, splits.train.redshift.mean())
    assert evaluation.metrics["mae"] < 0.8 * metric_table(evaluation.z_true, mean_guess)["mae"]
    assert evaluation.metrics["r2"] > 0.2


def test_the_colour_baseline_picks_the_aperture_and_k_that_score_best_on_validation(
    simulated: list[Path],
) -> None:
    from astrospect.models.baselines import APERTURE_CANDIDATES_ARCSEC, aperture_sweep, fit_colour_baseline

    splits = select_splits(simulated, "full")
    rows = aperture_sweep(splits)
    assert [row["aperture_arcsec"] for row in rows] == list(APERTURE_CANDIDATES_ARCSEC)
    assert len({row["val_sigma_mad"] for row in rows}) == len(rows)  # other colours, other fits
    best = min(rows, key=lambda row: row["val_sigma_mad"])
    chosen = fit_colour_baseline(splits)
    assert (chosen.aperture_arcsec, chosen.k, chosen.val_sigma_mad) == (
        best["aperture_arcsec"],
        best["k"],
        best["val_sigma_mad"],
    )
    for row in rows:
        assert 0.0 < row["holdout_sigma_mad"] < 0.1 and 0.0 <= row["holdout_outlier_frac_005"] <= 1.0
