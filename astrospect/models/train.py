"""Train the Keras challengers: one recipe, streamed from shards, on a GPU when there is one.

:func:`train` is the one training loop. The recipe (docs/explanation/architecture.md, "Training"): pixel scalings fitted
on the training split; AdamW with decoupled weight decay; a learning rate that warms up linearly for
``warmup_epochs`` and then follows a cosine to 1% of its peak over the remaining epochs; gradients clipped to
a global norm; an exponential moving average of the weights, which validation, early stopping and the
saved model use; early stopping on a smoothed validation loss (the median of the last ``smoothing`` epochs), so
no single spike ends training, with the best epoch's weights restored; one log line per epoch. Whoever
observes the training (:mod:`astrospect.models.progress`: the challenger's MLflow run) hears of each epoch as
it ends. The optimizer and the callbacks are in :mod:`astrospect.models.recipe`.
The registry's builders call it: :func:`fit_seed_cnn` for the seed CNN (MSE on redshift),
:func:`fit_photoz_cnn` for the `cnn-ebv` challenger, :func:`fit_pdf_cnn` for the redshift-PDF CNN
(cross-entropy on the binned redshift, then calibrated on the validation split).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import numpy.typing as npt

from astrospect.data.dataset import Splits, iter_selected_cutouts, make_tf_dataset, sample_images
from astrospect.models import progress
from astrospect.models.cnn import (
    build_pdf_cnn,
    build_photoz_cnn,
    build_seed_cnn,
    count_trainable_params,
    fit_input_scaling,
    fit_photometry_scaling,
    takes_ebv,
)
from astrospect.models.predict import predict_pdf, predict_redshift
from astrospect.models.recipe import EpochReport, SmoothedEarlyStopping, make_optimizer
from astrospect.models.registry import Precision, TrainConfig, Trained
from astrospect.pdf.bins import DEFAULT_BINS, POINT_ESTIMATE, encode_redshift_bins
from astrospect.settings import get_logger

if TYPE_CHECKING:
    import tensorflow as tf

    from astrospect.models.registry import Challenger
    from astrospect.pdf.bins import RedshiftBins

log = get_logger(__name__)
SCALING_SAMPLE = 4096  # training cutouts used to fit the pixel scaling
INPUT_EXAMPLE_SIZE = 4
# (a sample of raw training cutouts to fit the in-model scalings on, the training redshift range) -> model;
# called twice under mixed precision (train, then the float32 copy that is saved), so it must be deterministic.
BuildModel = Callable[[npt.NDArray[np.float32], tuple[float, float]], keras.Model]


@dataclass
class TrainResult:
    model: keras.Model  # float32, whatever precision it trained in
    history: dict[str, list[float]]
    n_train: int
    n_val: int
    images_per_second: float
    input_example: npt.NDArray[np.float32]
    z_range: tuple[float, float]
    device: str = "cpu"
    precision: str = "float32"


def cpu_has_bfloat16() -> bool:
    """Whether this CPU does bfloat16 arithmetic in hardware (Linux: the cpuinfo flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def configure_device(precision: Precision = "auto") -> tuple[str, str]:
    """(device, dtype policy): a GPU when TensorFlow sees one, the CPU otherwise; same code path."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if precision == "auto":
        precision = "mixed_float16" if gpus else "mixed_bfloat16" if cpu_has_bfloat16() else "float32"
    keras.mixed_precision.set_global_policy(precision)
    return (f"gpu x{len(gpus)}" if gpus else "cpu"), precision


def train(
    splits: Splits,
    config: TrainConfig,
    *,
    name: str,
    build: BuildModel,
    loss: str,
    metrics: tuple[str, ...] = (),
    target: Callable[[tf.Tensor], tf.Tensor] | None = None,
) -> TrainResult:
    """Fit ``build(scaling, z_range)`` on ``splits``: the training loop every Keras challenger shares.

    ``target`` maps each batch's redshifts to what ``loss`` compares with (the binned redshift of a PDF
    model); without it the model learns the redshift itself.
    """
    keras.utils.set_random_seed(config.seed)
    device, precision = configure_device(config.precision)
    train_rows, val_rows = splits.train, splits.val
    _check_rows(splits, name=name, device=device, precision=precision)
    sample = sample_images(train_rows, SCALING_SAMPLE)
    z_range = (float(train_rows.redshift.min()), float(train_rows.redshift.max()))
    model = build(sample, z_range)
    steps_per_epoch = -(-len(train_rows) // config.batch_size)
    model.compile(optimizer=make_optimizer(config, steps_per_epoch), loss=loss, metrics=list(metrics))
    log.info("%s: %d trainable parameters", model.name, count_trainable_params(model))
    input_example = sample[:INPUT_EXAMPLE_SIZE]
    progress.training_started(
        training_params(config, splits, len(train_rows), len(val_rows), z_range, device, precision),
        input_example,
    )
    history, throughput = _fit(model, splits=splits, config=config, target=target)
    if precision != "float32":
        # Mixed precision keeps float32 master weights: the same architecture built in float32 takes them,
        # so the saved model computes in float32 wherever it is served.
        keras.mixed_precision.set_global_policy("float32")
        trained = model
        model = build(sample, z_range)
        model.set_weights(trained.get_weights())
    # Compiled with the recipe's optimizer (its state is not kept) so the saved model's training config
    # names the schedule it was trained with.
    model.compile(optimizer=make_optimizer(config, steps_per_epoch), loss=loss, metrics=list(metrics))
    rate = float(np.median(throughput.rates)) if throughput.rates else 0.0
    log.info("%s: %d epochs, median %.0f images/s", name, len(history["loss"]), rate)
    return TrainResult(
        model=model,
        history=history,
        n_train=len(train_rows),
        n_val=len(val_rows),
        images_per_second=rate,
        input_example=input_example,
        z_range=z_range,
        device=device,
        precision=precision,
    )


def _check_rows(splits: Splits, *, name: str, device: str, precision: str) -> None:
    """Refuse splits with no training or no validation cutouts; log what training is about to see."""
    n_train, n_val = len(splits.train), len(splits.val)
    if n_train == 0 or n_val == 0:
        raise ValueError(
            f"{name} ({splits.clipping}): {n_train} training and {n_val} validation cutouts "
            f"in {len(splits.shards)} shard(s); need at least one of each"
        )
    log.info(
        "training %s on %s (%s): %d train, %d val cutouts from %d shards",
        name,
        device,
        precision,
        n_train,
        n_val,
        len(splits.shards),
    )


def _fit(
    model: keras.Model,
    *,
    splits: Splits,
    config: TrainConfig,
    target: Callable[[tf.Tensor], tf.Tensor] | None,
) -> tuple[dict[str, list[float]], EpochReport]:
    """Run Keras's fit with the recipe's callbacks; the history and the per-epoch throughput."""
    with_ebv = takes_ebv(model)

    def data(rows: Any, shuffle: bool, augment: bool) -> tf.data.Dataset:
        dataset = make_tf_dataset(
            rows,
            config.batch_size,
            shuffle=shuffle,
            seed=config.seed,
            shuffle_buffer=config.shuffle_buffer,
            augment=augment,
            with_ebv=with_ebv,
        )
        return dataset if target is None else dataset.map(lambda images, z: (images, target(z)))

    throughput = EpochReport(len(splits.train), config.epochs)
    fit = model.fit(
        data(splits.train, shuffle=True, augment=config.augment),
        validation_data=data(splits.val, shuffle=False, augment=False),
        epochs=config.epochs,
        callbacks=[
            # First, so that validation and the epoch-end callbacks see the averaged weights.
            *([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if config.ema_momentum else []),
            SmoothedEarlyStopping(config.patience, config.smoothing, config.warmup),
            throughput,
        ],
        shuffle=False,  # tf.data shuffles, seeded, per epoch
        verbose=0,
    )
    history = {key: [float(v) for v in values] for key, values in fit.history.items()}
    return history, throughput


def save_model(result: TrainResult, splits: Splits, config: TrainConfig) -> Path:
    """``out_dir/model.keras`` (scalings inside), its history and config; never over an existing model."""
    config.out_dir.mkdir(parents=True, exist_ok=True)
    model_path = config.out_dir / "model.keras"
    if model_path.exists():
        raise FileExistsError(f"{model_path}: a model is already saved here; choose a new --out folder")
    result.model.save(model_path)
    (config.out_dir / "history.json").write_text(json.dumps(result.history, indent=1))
    (config.out_dir / "train_config.json").write_text(
        json.dumps(
            {
                **config.params(),
                "clipping": splits.clipping,
                "shards": [str(s) for s in splits.shards],
                "z_range": result.z_range,
                "precision_used": result.precision,
            },
            indent=1,
        )
    )
    log.info("saved %s", model_path)
    return model_path


def training_params(
    config: TrainConfig,
    splits: Splits,
    n_train: int,
    n_val: int,
    z_range: tuple[float, float],
    device: str,
    precision: str,
) -> dict[str, Any]:
    """The run parameters known before the first epoch (reported to the observers then)."""
    return {
        **config.params(),
        "precision_used": precision,
        "clipping": splits.clipping,
        "n_shards": len(splits.shards),
        "n_train": n_train,
        "n_val": n_val,
        "z_min": z_range[0],
        "z_max": z_range[1],
        "device": device,
    }


def _params(result: TrainResult, splits: Splits, config: TrainConfig) -> dict[str, Any]:
    known_at_start = training_params(
        config, splits, result.n_train, result.n_val, result.z_range, result.device, result.precision
    )
    return {**known_at_start, "epochs_run": len(result.history["loss"])}


def fit_seed_cnn(challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    """The registry's builder for the seed CNN challengers: MSE on redshift, on the challenger's clipping."""
    result = train(
        splits,
        config,
        name=challenger.name,
        build=lambda sample, z_range: build_seed_cnn(fit_input_scaling(sample, config.stretch), *z_range),
        loss="mse",
        metrics=("mae",),
    )
    return _point_trained(challenger, result, splits, config)


def fit_photoz_cnn(challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    """The registry's builder for `cnn-ebv`: cutouts and E(B-V) in (:func:`astrospect.models.cnn.build_photoz_cnn`),
    MSE on redshift, the same recipe as every CNN."""
    result = train(
        splits,
        config,
        name=challenger.name,
        build=lambda sample, z_range: build_photoz_cnn(
            fit_input_scaling(sample, config.stretch), fit_photometry_scaling(sample), *z_range
        ),
        loss="mse",
        metrics=("mae",),
    )
    return _point_trained(challenger, result, splits, config)


def _point_trained(
    challenger: Challenger, result: TrainResult, splits: Splits, config: TrainConfig
) -> Trained:
    model = result.model
    return Trained(
        challenger=challenger,
        predict=lambda cutouts: predict_redshift(model, cutouts.images, cutouts.ebv),
        params=_params(result, splits, config),
        n_train=result.n_train,
        n_val=result.n_val,
        history=result.history,
        run_metrics={"images_per_second": result.images_per_second},
        keras_model=model,
        input_example=result.input_example,
        model_path=save_model(result, splits, config),
    )


def fit_pdf_cnn(challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    """The registry's builder for the PDF CNN: `cnn-ebv`'s trunk with a softmax over DEFAULT_BINS, trained
    on cross-entropy against the binned redshift, then calibrated (a temperature and a shift) on the
    validation split so that its intervals cover what they claim (:mod:`astrospect.models.calibration`)."""
    bins = DEFAULT_BINS
    result = train(
        splits,
        config,
        name=challenger.name,
        build=lambda sample, _: build_pdf_cnn(
            fit_input_scaling(sample, config.stretch),
            bins,
            prior=bins.histogram(splits.train.redshift),
            photometry=fit_photometry_scaling(sample),
        ),
        loss="categorical_crossentropy",
        target=lambda z: encode_redshift_bins(z, bins),
    )
    return calibrated_pdf_trained(challenger, result, splits, config, bins)


def calibrated_pdf_trained(
    challenger: Challenger,
    result: TrainResult,
    splits: Splits,
    config: TrainConfig,
    bins: RedshiftBins,
    extra_params: dict[str, Any] | None = None,
) -> Trained:
    """A trained PDF network, calibrated (a temperature and a shift) on the validation split, as the registry
    records it: the one ending of every single-network PDF challenger (`pdf`, `pasquet`)."""
    from astrospect.models.calibration import calibrate_pdf_model

    model = result.model
    uncalibrated = keras.models.clone_model(model)  # kept to report the holdout before calibration
    uncalibrated.set_weights(model.get_weights())
    calibration = calibrate_pdf_model(model, iter_selected_cutouts(splits.val))
    return Trained(
        challenger=challenger,
        predict=None,  # its redshift is the PDFs' POINT_ESTIMATE, from the same model call
        params=_params(result, splits, config)
        | {"n_bins": bins.n, "z_bins_max": bins.edges[-1], "point_estimate": POINT_ESTIMATE}
        | (extra_params or {}),
        n_train=result.n_train,
        n_val=result.n_val,
        history=result.history,
        run_metrics={"images_per_second": result.images_per_second} | calibration,
        keras_model=model,
        input_example=result.input_example,
        model_path=save_model(result, splits, config),
        predict_pdf=lambda cutouts: predict_pdf(model, cutouts.images, cutouts.ebv, bins),
        uncalibrated_pdf=lambda cutouts: predict_pdf(uncalibrated, cutouts.images, cutouts.ebv, bins),
        bins=bins,
    )
