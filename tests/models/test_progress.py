"""The training's observers (astrospect.models.progress): who hears of a training, in which order, and where."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from astrospect.models import progress

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self, name: str, heard: list[tuple[str, str, Any]]) -> None:
        self.name = name
        self.heard = heard

    def training_started(self, params: Mapping[str, Any], input_example: npt.NDArray[np.float32]) -> None:
        self.heard.append((self.name, "started", (dict(params), input_example.shape)))

    def epoch_ended(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.heard.append((self.name, "epoch", (epoch, dict(metrics))))


def test_observers_hear_in_the_order_they_were_set_and_only_inside_their_block() -> None:
    heard: list[tuple[str, str, Any]] = []
    progress.epoch_ended(1, {"loss": 1.0})  # nobody observes: nothing happens
    with progress.observing(Recorder("outer", heard)):
        progress.training_started({"epochs": 3}, np.zeros((2, 32, 32, 5), np.float32))
        with progress.observing(Recorder("inner", heard)):
            progress.epoch_ended(1, {"val_loss": 0.5})
        progress.epoch_ended(2, {"val_loss": 0.4})
    progress.epoch_ended(3, {"val_loss": 0.3})
    assert heard == [
        ("outer", "started", ({"epochs": 3}, (2, 32, 32, 5))),
        ("outer", "epoch", (1, {"val_loss": 0.5})),
        ("inner", "epoch", (1, {"val_loss": 0.5})),
        ("outer", "epoch", (2, {"val_loss": 0.4})),
    ]


def test_an_observer_set_in_one_thread_does_not_hear_another_threads_training() -> None:
    heard: list[tuple[str, str, Any]] = []
    with progress.observing(Recorder("main", heard)):
        other = threading.Thread(target=progress.epoch_ended, args=(1, {"loss": 1.0}))
        other.start()
        other.join()
    assert heard == []


def test_an_observer_that_raises_stops_the_report_and_leaves_no_observer_behind() -> None:
    class Broken(Recorder):
        def epoch_ended(self, epoch: int, metrics: Mapping[str, float]) -> None:
            raise ConnectionError("the tracking server stopped answering")

    heard: list[tuple[str, str, Any]] = []
    with (
        pytest.raises(ConnectionError),
        progress.observing(Broken("broken", heard)),
        progress.observing(Recorder("after", heard)),
    ):
        progress.epoch_ended(1, {"loss": 1.0})
    assert heard == []  # the one set after the broken observer never heard the epoch
    progress.epoch_ended(2, {"loss": 0.9})
    assert heard == []
