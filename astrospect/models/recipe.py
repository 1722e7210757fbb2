"""The training recipe's parts (docs/explanation/architecture.md, "Training"): the optimizer and its
learning-rate schedule, smoothed early stopping, and the per-epoch report to the training's observers.
:func:`astrospect.models.train.train` puts them together.
"""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np

from astrospect.models import progress
from astrospect.models.registry import TrainConfig
from astrospect.settings import get_logger

log = get_logger(__name__)


class EpochReport(keras.callbacks.Callback):
    """Each epoch's end: its images/s and learning rate with Keras' logs to the training's observers
    (:mod:`astrospect.models.progress`), then one log line (Keras' own bar is off so Airflow logs stay
    readable). Observers first, so that once the line is in the task log the epoch is in MLflow too."""

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
        # The schedule's rate at the optimizer's current step: the one the next epoch starts with.
        learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        progress.epoch_ended(
            epoch + 1,
            {
                **{key: float(value) for key, value in logs.items()},
                "images_per_second": self.rates[-1],
                "learning_rate": learning_rate,
            },
        )
        log.info(
            "epoch %d/%d  loss %.5f  val_loss %.5f  %.0f images/s  lr %.2e  %.1fs",
            epoch + 1,
            self.epochs,
            logs.get("loss", float("nan")),
            logs.get("val_loss", float("nan")),
            self.rates[-1],
            learning_rate,
            seconds,
        )


LR_FLOOR = 0.01  # the schedule starts the warm-up and ends the cosine at 1% of the peak learning rate


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """AdamW on a linear warm-up then cosine schedule, gradients clipped by global norm: the recipe."""
    warmup_steps = config.warmup * steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate * LR_FLOOR,
        decay_steps=max(1, (config.epochs - config.warmup) * steps_per_epoch),
        alpha=LR_FLOOR,
        warmup_target=config.learning_rate,
        warmup_steps=warmup_steps,
    )
    ema_momentum = config.ema_momentum_for(steps_per_epoch)
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=config.weight_decay,
        clipnorm=config.clipnorm,
        use_ema=ema_momentum is not None,
        ema_momentum=0.99 if ema_momentum is None else ema_momentum,  # Keras wants a number either way
    )
    # Decay shrinks weights towards zero: right for kernels, wrong for biases and batch-norm shifts/scales.
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


class SmoothedEarlyStopping(keras.callbacks.Callback):
    """Stop when the median validation loss of the last ``smoothing`` epochs has not improved for
    ``patience`` epochs after the warm-up; then restore the weights of the epoch with the lowest validation
    loss after the warm-up. A single spike moves a running median by at most one rank, so it cannot end
    training (Keras' EarlyStopping watches the raw loss)."""

    def __init__(self, patience: int, smoothing: int, warmup_epochs: int) -> None:
        super().__init__()
        self.patience = patience
        self.smoothing = max(1, smoothing)
        self.warmup_epochs = warmup_epochs
        self.losses: list[float] = []
        self.best_smoothed = float("inf")
        self.since_best = 0
        self.best_loss = float("inf")
        self.best_epoch = -1
        self.best_weights: list[Any] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        loss = float((logs or {}).get("val_loss", float("nan")))
        self.losses.append(loss)
        if epoch < self.warmup_epochs or not np.isfinite(loss):
            return
        if loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, epoch
            self.best_weights = self.model.get_weights()
        smoothed = float(np.median(self.losses[max(self.warmup_epochs, epoch + 1 - self.smoothing) :]))
        if smoothed < self.best_smoothed:
            self.best_smoothed, self.since_best = smoothed, 0
        else:
            self.since_best += 1
            if self.since_best >= self.patience:
                self.model.stop_training = True
                log.info(
                    "early stop at epoch %d: smoothed val_loss flat for %d epochs", epoch + 1, self.patience
                )

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            log.info("restored the weights of epoch %d (val_loss %.5f)", self.best_epoch + 1, self.best_loss)
