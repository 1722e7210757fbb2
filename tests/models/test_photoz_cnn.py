"""The `cnn-ebv` challenger: its E(B-V) input with and without the dataset, its in-model photometry, and the
training recipe every CNN shares (the schedule is in the saved model, a single spike never stops training)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from astrospect.data.dataset import make_tf_dataset, select_splits
from astrospect.data.shards import write_shard
from astrospect.models import registry as challengers
from astrospect.models.cnn import (
    PHOTOMETRY_RADII_ARCSEC,
    ForegroundInput,
    build_photoz_cnn,
    fit_input_scaling,
    fit_photometry_scaling,
    load_model,
    photometry_features,
    takes_ebv,
)
from astrospect.models.predict import model_inputs, predict_redshift
from astrospect.models.registry import TrainConfig
from astrospect.models.train import SmoothedEarlyStopping, fit_photoz_cnn

pytestmark = pytest.mark.model


def _shard(folder: Path, name: str, n: int, *, with_ebv: bool, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] - 15.5
    z = rng.uniform(0.02, 0.4, n)
    # a galaxy whose colour moves with z, so there is something to learn
    colour = np.stack([np.exp(-3 * z * (b - 2)) for b in range(5)], axis=1)
    images = rng.normal(0, 0.03, (n, 5, 32, 32)) + 30.0 * colour[:, :, None, None] * np.exp(
        -(xx**2 + yy**2) / 8.0
    )
    ebv = rng.uniform(0.0, 0.1, n) if with_ebv else None
    return write_shard(
        folder / name,
        images.astype(np.float32),
        10**12 + seed * 10**6 + np.arange(n),
        z,
        np.full(n, 1e-4),
        ebv=ebv,
    )


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("ebv")
    return [
        _shard(folder, "with.h5", 300, with_ebv=True, seed=1),
        _shard(folder, "without.h5", 300, with_ebv=False, seed=2),
    ]


def test_foreground_input_is_the_value_and_a_mask_with_zero_for_unknown() -> None:
    out = np.asarray(ForegroundInput()(np.array([0.05, np.nan, 0.0], np.float32)))
    assert np.allclose(out[:, 1], [1.0, 0.0, 1.0])  # known, unknown, known (zero reddening is a value)
    assert out[1, 0] == 0.0 and out[0, 0] > 0.0 and out[2, 0] == 0.0


def test_the_dataset_gives_ebv_where_the_shard_has_it_and_nan_where_not(shards: list[Path]) -> None:
    rows = select_splits(shards, "full").train
    batches = list(make_tf_dataset(rows, 64, shuffle=False, seed=0, with_ebv=True).as_numpy_iterator())
    ebv = np.concatenate([inputs["ebv"] for inputs, _ in batches])
    images = np.concatenate([inputs["cutouts"] for inputs, _ in batches])
    n_first = len(rows.rows[0])
    assert images.shape == (len(rows), 32, 32, 5)
    assert np.all(np.isfinite(ebv[:n_first])) and np.all((ebv[:n_first] >= 0) & (ebv[:n_first] <= 0.1))
    assert np.all(np.isnan(ebv[n_first:]))  # the shard without `ebv`: the documented fallback, no crash


def test_augmentation_turns_the_cutout_and_keeps_its_ebv_and_label(shards: list[Path]) -> None:
    rows = select_splits(shards, "full").train
    plain = list(
        make_tf_dataset(rows, 32, shuffle=False, seed=3, with_ebv=True).unbatch().as_numpy_iterator()
    )
    turned = list(
        make_tf_dataset(rows, 32, shuffle=False, seed=3, with_ebv=True, augment=True)
        .unbatch()
        .as_numpy_iterator()
    )
    moved = 0
    for (inputs, z), (new_inputs, new_z) in zip(plain, turned, strict=True):
        assert new_z == z  # a flipped or rotated galaxy has the same redshift
        assert np.array_equal(new_inputs["ebv"], inputs["ebv"], equal_nan=True)
        image = inputs["cutouts"]
        symmetries = [np.rot90(image, k, axes=(0, 1)) for k in range(4)]
        symmetries += [np.flip(s, axis=1) for s in symmetries]
        assert any(np.array_equal(new_inputs["cutouts"], s) for s in symmetries)
        moved += not np.array_equal(new_inputs["cutouts"], image)
    assert moved > len(plain) // 2


def test_in_model_photometry_equals_the_numpy_measurement(shards: list[Path]) -> None:
    rows = select_splits(shards, "full").train
    images = next(make_tf_dataset(rows, 64, shuffle=False, seed=0).as_numpy_iterator())[0]
    photometry = fit_photometry_scaling(images)
    model = build_photoz_cnn(fit_input_scaling(images), photometry, 0.0, 0.5)
    standardised = np.asarray(model.get_layer("aperture_photometry")(images), np.float64)
    in_model = standardised * np.asarray(photometry[1]) + np.asarray(photometry[0])  # back to magnitudes
    expected = photometry_features(images, PHOTOMETRY_RADII_ARCSEC)
    assert in_model.shape == expected.shape == (len(images), 5 * len(PHOTOMETRY_RADII_ARCSEC))
    assert np.abs(in_model - expected).max() < 1e-4  # float32 magnitudes near 20: ~1e-5 mag


def test_cnn_ebv_trains_saves_its_schedule_and_predicts_with_and_without_ebv(
    shards: list[Path], tmp_path: Path
) -> None:
    splits = select_splits(shards, "full")
    config = TrainConfig(
        out_dir=tmp_path / "run", epochs=4, warmup_epochs=1, patience=4, seed=0, precision="float32"
    )
    trained = fit_photoz_cnn(challengers.get("cnn-ebv"), splits, config)
    assert trained.model_path is not None and trained.keras_model is not None
    # Validation and early stopping saw the weight average, and the model kept is the one they chose: it
    # scores on validation exactly the best validation loss of the history.
    val = make_tf_dataset(splits.val, config.batch_size, shuffle=False, seed=0, with_ebv=True)
    val_loss = trained.keras_model.evaluate(val, verbose=0, return_dict=True)["loss"]
    assert val_loss == pytest.approx(min(trained.history["val_loss"][config.warmup :]), rel=1e-4)
    # The recipe is in the saved model's training config: AdamW on the warm-up + cosine schedule, clipped.
    with zipfile.ZipFile(trained.model_path) as archive:
        saved = json.loads(archive.read("config.json"))
    optimizer = saved["compile_config"]["optimizer"]
    assert optimizer["class_name"] == "AdamW"
    assert optimizer["config"]["clipnorm"] == config.clipnorm
    assert optimizer["config"]["weight_decay"] == pytest.approx(config.weight_decay)
    assert optimizer["config"]["use_ema"]
    steps = -(-len(splits.train) // config.batch_size)
    # a short run: the average spans 15% of its steps, not the last 100
    assert optimizer["config"]["ema_momentum"] == pytest.approx(1 - 1 / (0.15 * config.epochs * steps))
    schedule = optimizer["config"]["learning_rate"]
    assert schedule["class_name"] == "CosineDecay"
    assert schedule["config"]["warmup_target"] == pytest.approx(config.learning_rate)
    assert schedule["config"]["warmup_steps"] == config.warmup_epochs * steps
    assert schedule["config"]["decay_steps"] == (config.epochs - config.warmup_epochs) * steps

    model = load_model(trained.model_path)
    assert takes_ebv(model)
    images = np.stack(
        [
            np.asarray(batch)
            for batch in next(make_tf_dataset(splits.holdout, 16, shuffle=False, seed=0).as_numpy_iterator())[
                0
            ]
        ]
    )
    known = predict_redshift(model, images, np.full(len(images), 0.05, np.float32))
    unknown = predict_redshift(model, images)  # no E(B-V): zero plus the mask, never a crash
    assert known.shape == unknown.shape == (len(images),)
    assert np.all(np.isfinite(known)) and np.all(np.isfinite(unknown))
    assert not np.allclose(known, unknown)  # the E(B-V) input reaches the output
    with pytest.raises(ValueError, match="ebv: expected one value per cutout"):
        model_inputs(model, images, np.zeros(3, np.float32))


def test_the_weight_average_spans_at_most_15_percent_of_the_schedule(tmp_path: Path) -> None:
    config = TrainConfig(out_dir=tmp_path, epochs=20)
    assert (
        config.ema_momentum_for(steps_per_epoch=62) == 0.99
    )  # make run's 9.6k galaxies: the last ~100 steps
    assert config.ema_momentum_for(steps_per_epoch=4) == pytest.approx(1 - 1 / 12)  # 80 steps: the last 12
    assert TrainConfig(out_dir=tmp_path, ema_momentum=None).ema_momentum_for(62) is None


def test_a_single_validation_spike_does_not_stop_training() -> None:
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    stopper = SmoothedEarlyStopping(patience=2, smoothing=3, warmup_epochs=1)
    stopper.set_model(model)
    model.stop_training = False  # as fit() sets it
    losses = [5.0, 1.0, 0.9, 20.0, 0.8, 0.7, 0.75, 0.72]  # epoch 4 spikes 22x
    for epoch, loss in enumerate(losses):
        stopper.on_epoch_end(epoch, {"val_loss": loss})
        assert not model.stop_training, f"stopped at epoch {epoch + 1}"
    assert stopper.best_epoch == 5  # the lowest loss after the warm-up
    for epoch, loss in enumerate([0.9, 0.95, 0.99], start=len(losses)):  # a real plateau does stop it
        stopper.on_epoch_end(epoch, {"val_loss": loss})
    assert model.stop_training
