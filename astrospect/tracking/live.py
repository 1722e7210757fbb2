"""A challenger's run while it trains: open from the first epoch to the registered model.

:func:`live_run` makes the run the process's active MLflow run for as long as the challenger trains, scores
and is logged, with MLflow's system metrics sampled throughout (every ``settings.system_metrics_interval_s``
seconds: CPU, memory, disk, network, and the GPU's utilisation and memory where pynvml finds one). The
training loop reports to it (:mod:`astrospect.models.progress`): the parameters and input example before the
first epoch, and each epoch's curves as it ends, with the time it ended, so MLflow's charts fill while the
training runs. The run ends FINISHED, or FAILED with the curve it had reached and the error (tag
``astrospect.error``, a note, ``error/traceback.txt``).

Per-epoch curves are Keras' names with training ones prefixed (``loss`` -> ``train_loss``, ``val_loss``
stays), plus ``train_images_per_second`` and ``train_learning_rate``; step = epoch, 1-based. MLflow's own
Keras callback (``mlflow.keras.callback.MlflowCallback``) was not used: it logs Keras' raw names at 0-based
steps, asynchronously, a second ``validation_*`` copy of the validation metrics, and no images/s or learning
rate, so its curves would not line up with the runs and studies logged before it.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from astrospect.models import progress
from astrospect.settings import Settings, get_logger
from astrospect.tracking.tags import TAG_ERROR, TAG_NOTE

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = get_logger(__name__)
INPUT_EXAMPLE_ARTIFACT = "input_example/cutouts.json"
TRACEBACK_ARTIFACT = "error/traceback.txt"
_MAX_TAG_CHARS = 5000  # MLflow keeps tag values up to 8,000 characters; the traceback artifact has it all


def curve_name(history_key: str) -> str:
    """Keras' ``loss``/``mae`` are training curves; named so they never collide with the holdout ``mae``."""
    return history_key if history_key.startswith("val_") else f"train_{history_key}"


class LiveRun:
    """The run as the training's observer (:class:`astrospect.models.progress.TrainingObserver`)."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.logged_points: set[tuple[str, int]] = set()  # (metric, step) already on the run
        self.epochs = 0

    def training_started(self, params: Mapping[str, Any], input_example: npt.NDArray[np.float32]) -> None:
        from mlflow.entities import Param

        entries = [Param(str(k), "None" if v is None else str(v)) for k, v in params.items()]
        self.client.log_batch(self.run_id, params=entries)
        example = np.asarray(input_example, dtype=np.float32)
        self.client.log_dict(
            self.run_id,
            {
                "description": "raw ugriz training cutouts, nanomaggies, (N, 32, 32, 5)",
                "shape": list(example.shape),
                "cutouts": example.tolist(),
            },
            INPUT_EXAMPLE_ARTIFACT,
        )

    def epoch_ended(self, epoch: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        points = [Metric(curve_name(key), float(value), now, epoch) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=points)
        self.logged_points |= {(point.key, epoch) for point in points}
        self.epochs = max(self.epochs, epoch)


@contextmanager
def live_run(settings: Settings, client: MlflowClient, experiment_id: str, run_id: str) -> Iterator[LiveRun]:
    """The block runs with ``run_id`` active (system metrics sampled) and observing the training; the run
    ends FINISHED when the block does, FAILED with the error recorded when it raises."""
    import mlflow

    # The fluent API refuses to resume a run outside the process's active experiment, which may be
    # whatever an earlier caller in this process chose: make it this run's experiment.
    mlflow.set_experiment(experiment_id=experiment_id)
    mlflow.set_system_metrics_sampling_interval(settings.system_metrics_interval_s)
    live = LiveRun(client, run_id)
    with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None, log_system_metrics=True):
        try:
            with progress.observing(live):
                yield live
        except (
            BaseException
        ) as error:  # recorded, then raised on: the run ends FAILED (mlflow.start_run's exit)
            record_failure(client, run_id, error, live.epochs)
            raise


def record_failure(client: MlflowClient, run_id: str, error: BaseException, epochs: int) -> None:
    """The error as a tag, a note on the run's page and the traceback as an artifact.

    When the server itself is what failed, this cannot reach it either: it says so in the log and leaves the
    original error to propagate (a retry finds the run RUNNING and marks it).
    """
    from mlflow.exceptions import MlflowException

    message = f"{type(error).__name__}: {error}"
    try:
        client.set_tag(run_id, TAG_ERROR, message[:_MAX_TAG_CHARS])
        client.set_tag(
            run_id,
            TAG_NOTE,
            f"This training failed after {epochs} epoch(s): `{message[:_MAX_TAG_CHARS]}`. "
            f"The traceback is in the artifact `{TRACEBACK_ARTIFACT}`.",
        )
        client.log_text(run_id, "".join(traceback.format_exception(error)), TRACEBACK_ARTIFACT)
    except (MlflowException, OSError) as unrecorded:
        log.error("could not record in MLflow why run %s failed (%s): %s", run_id, message, unrecorded)
    log.error("run %s failed after %d epoch(s): %s", run_id, epochs, message)
