"""Who watches a training while it runs: the training loop reports to the observers of its context.

:func:`astrospect.models.train.train` reports twice: once its parameters and input example are known (before
the first epoch), and at the end of every epoch. Whoever wants to watch wraps the training in
:func:`observing`: the tracking layer does, to log a challenger's MLflow run while it trains
(:func:`astrospect.tracking.runs.train_once`). The models layer stays free of MLflow, and builders keep their
``(challenger, splits, config)`` signature. A context variable, not a global: observers set in one thread
(a test that trains in a thread, say) do not leak into another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt


class TrainingObserver(Protocol):
    """What a training reports. An observer that raises fails the training (a tracking server that stops
    answering mid-training fails the step loudly instead of training unseen)."""

    def training_started(self, params: Mapping[str, Any], input_example: npt.NDArray[np.float32]) -> None:
        """Before the first epoch: the parameters known by then and a few raw training cutouts."""

    def epoch_ended(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """After each epoch (1-based, as the log lines count): Keras' logs (``loss``, ``val_loss``, ...),
        ``images_per_second`` and the ``learning_rate`` the schedule has reached."""


_OBSERVERS: ContextVar[tuple[TrainingObserver, ...]] = ContextVar("training_observers", default=())


@contextmanager
def observing(observer: TrainingObserver) -> Iterator[None]:
    """Report the trainings run inside this block to ``observer`` too (after the observers already set)."""
    token = _OBSERVERS.set((*_OBSERVERS.get(), observer))
    try:
        yield
    finally:
        _OBSERVERS.reset(token)


@contextmanager
def relayed(wrap: Callable[[TrainingObserver], TrainingObserver]) -> Iterator[None]:
    """Inside this block the observers already set hear the training through ``wrap``: several trainings
    that make one model (an ensemble's members) report to its one run under their own names."""
    token = _OBSERVERS.set(tuple(wrap(observer) for observer in _OBSERVERS.get()))
    try:
        yield
    finally:
        _OBSERVERS.reset(token)


def training_started(params: Mapping[str, Any], input_example: npt.NDArray[np.float32]) -> None:
    for observer in _OBSERVERS.get():
        observer.training_started(params, input_example)


def epoch_ended(epoch: int, metrics: Mapping[str, float]) -> None:
    for observer in _OBSERVERS.get():
        observer.epoch_ended(epoch, metrics)
