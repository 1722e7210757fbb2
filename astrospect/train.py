"""Train the seed CNN on one variant: the seed's recipe, streamed from shards, on a GPU when there is one."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import numpy.typing as npt

from astrospect.data.dataset import Variant, make_tf_dataset, sample_images, select_rows
from astrospect.data.splits import Split
from astrospect.model import Stretch, build_seed_cnn, count_trainable_params, fit_input_scaling
from astrospect.settings import get_logger

log = get_logger(__name__)
SCALING_SAMPLE = 4096  # training cutouts used to fit the pixel scaling
INPUT_EXAMPLE_SIZE = 4


@dataclass
class TrainConfig:
    """Everything that defines a training run; logged as the run's parameters."""

    variant: Variant
    shards: list[Path]
    out_dir: Path
    epochs: int = 100
    batch_size: int = 156
    patience: int = 10
    learning_rate: float = 1e-3
    seed: int = 42
    stretch: Stretch = "asinh"
    augment: bool = True  # random rotations/flips of training cutouts
    shuffle_buffer: int = 8192
    train_fraction: float = 0.8
    val_fraction: float = 0.1
    dataset_version: str | None = None

    def params(self) -> dict[str, Any]:
        """Flat, loggable parameters (shard paths are logged as the dataset input instead)."""
        values = asdict(self)
        values.pop("shards")
        values.pop("out_dir")
        values["n_shards"] = len(self.shards)
        return values


@dataclass
class TrainResult:
    model: keras.Model
    model_path: Path
    history: dict[str, list[float]]
    config: TrainConfig
    n_train: int
    n_val: int
    images_per_second: float
    input_example: npt.NDArray[np.float32]
    z_range: tuple[float, float]
    epochs_run: int = 0
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)


class ThroughputLogger(keras.callbacks.Callback):
    """One log line per epoch: losses and images/s (Keras' own bar is off so Airflow logs stay readable)."""

    def __init__(self, n_train: int, epochs: int) -> None:
        super().__init__()
        self.n_train = n_train
        self.epochs = epochs
        self.rates: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        seconds = time.perf_counter() - self._start
        self.rates.append(self.n_train / seconds)
        logs = logs or {}
        log.info(
            "epoch %d/%d  loss %.5f  val_loss %.5f  val_mae %.4f  %.0f images/s  %.1fs",
            epoch + 1,
            self.epochs,
            logs.get("loss", float("nan")),
            logs.get("val_loss", float("nan")),
            logs.get("val_mae", float("nan")),
            self.rates[-1],
            seconds,
        )


def configure_device() -> str:
    """GPU with mixed precision when TensorFlow sees one, CPU otherwise; same code path."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        keras.mixed_precision.set_global_policy("mixed_float16")
        return f"gpu x{len(gpus)}"
    keras.mixed_precision.set_global_policy("float32")
    return "cpu"


def train(config: TrainConfig) -> TrainResult:
    """Fit the seed CNN on ``config.variant`` and save it (scalings inside) to ``out_dir/model.keras``."""
    keras.utils.set_random_seed(config.seed)
    device = configure_device()
    train_rows = select_rows(
        config.shards, Split.TRAIN, config.variant, config.train_fraction, config.val_fraction
    )
    val_rows = select_rows(
        config.shards, Split.VAL, config.variant, config.train_fraction, config.val_fraction
    )
    if len(train_rows) == 0 or len(val_rows) == 0:
        raise ValueError(
            f"variant {config.variant}: {len(train_rows)} training and {len(val_rows)} validation cutouts "
            f"in {len(config.shards)} shard(s); need at least one of each"
        )
    log.info(
        "training %s on %s: %d train, %d val cutouts from %d shards",
        config.variant,
        device,
        len(train_rows),
        len(val_rows),
        len(config.shards),
    )
    sample = sample_images(train_rows, SCALING_SAMPLE)
    scaling = fit_input_scaling(sample, config.stretch)
    z_range = (float(train_rows.redshift.min()), float(train_rows.redshift.max()))
    model = build_seed_cnn(scaling, *z_range)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse", metrics=["mae"])
    log.info("seed CNN: %d trainable parameters", count_trainable_params(model))

    throughput = ThroughputLogger(len(train_rows), config.epochs)
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.patience, restore_best_weights=True
        ),
        throughput,
    ]
    fit = model.fit(
        make_tf_dataset(
            train_rows,
            config.batch_size,
            shuffle=True,
            seed=config.seed,
            shuffle_buffer=config.shuffle_buffer,
            augment=config.augment,
        ),
        validation_data=make_tf_dataset(val_rows, config.batch_size, shuffle=False, seed=config.seed),
        epochs=config.epochs,
        callbacks=callbacks,
        shuffle=False,  # tf.data shuffles, seeded, per epoch
        verbose=0,
    )
    history = {name: [float(v) for v in values] for name, values in fit.history.items()}

    config.out_dir.mkdir(parents=True, exist_ok=True)
    model_path = config.out_dir / "model.keras"
    if model_path.exists():
        raise FileExistsError(f"{model_path}: a model is already saved here; choose a new --out folder")
    model.save(model_path)
    (config.out_dir / "history.json").write_text(json.dumps(history, indent=1))
    (config.out_dir / "train_config.json").write_text(
        json.dumps(
            {**config.params(), "shards": [str(s) for s in config.shards], "z_range": z_range}, indent=1
        )
    )
    rate = float(np.median(throughput.rates)) if throughput.rates else 0.0
    log.info("saved %s (%d epochs, median %.0f images/s)", model_path, len(history["loss"]), rate)
    return TrainResult(
        model=model,
        model_path=model_path,
        history=history,
        config=config,
        n_train=len(train_rows),
        n_val=len(val_rows),
        images_per_second=rate,
        input_example=sample[:INPUT_EXAMPLE_SIZE],
        z_range=z_range,
        epochs_run=len(history["loss"]),
        device=device,
    )
