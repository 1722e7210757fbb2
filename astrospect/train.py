"""Train the seed CNN on one clipping: the seed's recipe, streamed from shards, on a GPU when there is one.

:func:`fit_seed_cnn` is the builder the challenger registry names for the seed CNN challengers.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import numpy.typing as npt

from astrospect.challengers import Trained
from astrospect.data.dataset import Splits, make_tf_dataset, sample_images
from astrospect.model import Stretch, build_seed_cnn, count_trainable_params, fit_input_scaling
from astrospect.predict import predict_redshift
from astrospect.settings import get_logger

if TYPE_CHECKING:
    from astrospect.challengers import Challenger

log = get_logger(__name__)
SCALING_SAMPLE = 4096  # training cutouts used to fit the pixel scaling
INPUT_EXAMPLE_SIZE = 4


@dataclass
class TrainConfig:
    """The training hyperparameters of a session; logged as the CNN runs' parameters."""

    out_dir: Path  # a new folder per challenger: model.keras, history.json, train_config.json, plots/
    epochs: int = 100
    batch_size: int = 156
    patience: int = 10
    learning_rate: float = 1e-3
    seed: int = 42
    stretch: Stretch = "asinh"
    augment: bool = True  # random rotations/flips of training cutouts
    shuffle_buffer: int = 8192

    def params(self) -> dict[str, Any]:
        """Flat, loggable parameters (the output folder is local to one machine, so not one of them)."""
        values = asdict(self)
        values.pop("out_dir")
        return values


@dataclass
class TrainResult:
    model: keras.Model
    model_path: Path
    history: dict[str, list[float]]
    n_train: int
    n_val: int
    images_per_second: float
    input_example: npt.NDArray[np.float32]
    z_range: tuple[float, float]
    device: str = "cpu"


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


def fit_seed_cnn(challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    """The registry's builder for the seed CNN challengers: :func:`train` on the challenger's clipping."""
    result = train(splits, config, name=challenger.name)
    model = result.model
    return Trained(
        challenger=challenger,
        predict=lambda images: predict_redshift(model, images),
        params={
            **config.params(),
            "clipping": splits.clipping,
            "n_shards": len(splits.shards),
            "n_train": result.n_train,
            "n_val": result.n_val,
            "epochs_run": len(result.history["loss"]),
            "z_min": result.z_range[0],
            "z_max": result.z_range[1],
            "device": result.device,
        },
        n_train=result.n_train,
        n_val=result.n_val,
        history=result.history,
        run_metrics={"images_per_second": result.images_per_second},
        keras_model=model,
        input_example=result.input_example,
        model_path=result.model_path,
    )


def train(splits: Splits, config: TrainConfig, name: str = "seed CNN") -> TrainResult:
    """Fit the seed CNN on ``splits`` and save it (scalings inside) to ``out_dir/model.keras``."""
    keras.utils.set_random_seed(config.seed)
    device = configure_device()
    train_rows, val_rows = splits.train, splits.val
    if len(train_rows) == 0 or len(val_rows) == 0:
        raise ValueError(
            f"{name} ({splits.clipping}): {len(train_rows)} training and {len(val_rows)} validation cutouts "
            f"in {len(splits.shards)} shard(s); need at least one of each"
        )
    log.info(
        "training %s on %s: %d train, %d val cutouts from %d shards",
        name,
        device,
        len(train_rows),
        len(val_rows),
        len(splits.shards),
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
            {
                **config.params(),
                "clipping": splits.clipping,
                "shards": [str(s) for s in splits.shards],
                "z_range": z_range,
            },
            indent=1,
        )
    )
    rate = float(np.median(throughput.rates)) if throughput.rates else 0.0
    log.info("saved %s (%d epochs, median %.0f images/s)", model_path, len(history["loss"]), rate)
    return TrainResult(
        model=model,
        model_path=model_path,
        history=history,
        n_train=len(train_rows),
        n_val=len(val_rows),
        images_per_second=rate,
        input_example=sample[:INPUT_EXAMPLE_SIZE],
        z_range=z_range,
        device=device,
    )
