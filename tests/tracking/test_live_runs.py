"""A challenger's MLflow run while it trains, against a real ``mlflow server`` on loopback.

The seed CNN (`full`) trains a few epochs on tiny reader shards through the real pipeline
(``run_challenger`` inside ``train_once``, as the nightly training task calls them). An :class:`EpochGate`,
one more observer of the training (:mod:`astrospect.models.progress`), holds the training at the end of an
epoch, after the run's own observer has logged it, so the test reads the run mid-training without racing
it; or it raises there, as a bad batch or a broken callback would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from mlflow import MlflowClient

from astrospect.models import progress
from astrospect.models import registry as challengers
from astrospect.models.pipeline import ChallengerOutcome
from astrospect.settings import Settings
from astrospect.tracking import registry, runs, sessions, tags
from astrospect.tracking.live import INPUT_EXAMPLE_ARTIFACT, TRACEBACK_ARTIFACT
from astrospect.tracking.server import client_for
from harness.topology.processes import wait_until
from tests.support.tracking import settings_for, write_reader_shards

pytestmark = pytest.mark.integration

EPOCHS = 4
HELD_AT = 2  # the epoch at whose end the gate holds (or fails) the training


class EpochGate:
    """An observer that, at the end of epoch ``at``, raises ``error`` or else waits until released."""

    def __init__(self, at: int, error: Exception | None = None) -> None:
        self.at = at
        self.error = error
        self.reached = threading.Event()
        self.released = threading.Event()
        self.released_ms = 0

    def training_started(self, params: Mapping[str, Any], input_example: npt.NDArray[np.float32]) -> None:
        pass

    def epoch_ended(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if epoch != self.at:
            return
        if self.error is not None:
            raise self.error
        self.reached.set()
        if not self.released.wait(600):
            raise TimeoutError(f"the test never released the training held at epoch {epoch}")

    def release(self) -> None:
        self.released_ms = int(time.time() * 1000)
        self.released.set()


@pytest.fixture(scope="module")
def settings(mlflow_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # The session's server, names of this module's own. Sampled every half second: a training of a few
    # seconds gets several points.
    return settings_for(
        tmp_path_factory.mktemp("home"), mlflow_url, "live-test", system_metrics_interval_s=0.5
    )


@pytest.fixture(scope="module")
def client(settings: Settings) -> MlflowClient:
    return client_for(settings)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_reader_shards(tmp_path_factory.mktemp("shards"), n_per_shard=200)


def training(
    shards: list[Path], out: Path, epochs: int, gate: EpochGate | None = None, challenger: str = "full"
) -> Callable[[], ChallengerOutcome]:
    """What the nightly training task's ``produce`` does, with ``gate`` watching the epochs too."""
    from contextlib import nullcontext

    from astrospect.data.dataset import select_splits
    from astrospect.models.pipeline import run_challenger
    from astrospect.models.registry import TrainConfig

    chosen = challengers.get(challenger)

    def produce() -> ChallengerOutcome:
        config = TrainConfig(out_dir=out, epochs=epochs, batch_size=64, patience=epochs)
        with progress.observing(gate) if gate is not None else nullcontext():
            return run_challenger(chosen, select_splits(shards, chosen.clipping), config)

    return produce


def curve(client: MlflowClient, run_id: str, name: str) -> list[Any]:
    return sorted(client.get_metric_history(run_id, name), key=lambda m: m.step)


def test_the_run_is_running_with_its_curve_while_it_trains_and_lasts_as_long_as_the_training(
    settings: Settings, client: MlflowClient, shards: list[Path], tmp_path: Path
) -> None:
    parent = sessions.start_session(settings, "live-v1", shards)
    gate = EpochGate(HELD_AT)
    timing: dict[str, float] = {}

    def train_step() -> runs.LoggedRun:
        timing["start"] = time.time()
        try:
            return runs.train_once(
                settings, parent, challengers.get("full"), training(shards, tmp_path, EPOCHS, gate), shards
            )
        finally:
            timing["end"] = time.time()

    with ThreadPoolExecutor(1) as pool:
        trainer = pool.submit(train_step)
        while not gate.reached.wait(0.5):
            assert not trainer.done(), trainer.exception()

        # Mid-training: the run is RUNNING with its parameters, dataset, input example and the epochs so far.
        (running,) = sessions.child_runs(client, client.get_run(parent), "RUNNING", "full")
        run_id = running.info.run_id
        assert running.data.params["n_train"] == str(len(training_rows(shards)))
        assert running.data.params["epochs"] == str(EPOCHS) and "epochs_run" not in running.data.params
        assert running.inputs.dataset_inputs[0].dataset.name == "astrospect-live-v1"
        assert INPUT_EXAMPLE_ARTIFACT in {a.path for a in client.list_artifacts(run_id, "input_example")}
        for name in ("val_loss", "train_loss", "val_mae", "train_images_per_second", "train_learning_rate"):
            assert [m.step for m in curve(client, run_id, name)] == list(range(1, HELD_AT + 1)), name
        assert "sigma_mad" not in running.data.metrics  # the holdout comes after the last epoch
        wait_until(
            lambda: any(key.startswith("system/") for key in client.get_run(run_id).data.metrics),
            timeout_s=60,
            what="system metrics on the running training run",
        )
        assert client.get_run(run_id).info.status == "RUNNING"
        gate.release()
        logged = trainer.result(timeout=600)

    run = client.get_run(run_id)
    assert logged.run_id == run_id and run.info.status == "FINISHED"
    assert "system/cpu_utilization_percentage" in run.data.metrics
    assert run.data.params["epochs_run"] == str(EPOCHS)

    # Each epoch's point was logged when that epoch ended: in order, the held ones before the release and
    # the others after it, all before the holdout evaluation that follows training.
    val_loss = curve(client, run_id, "val_loss")
    assert [m.step for m in val_loss] == list(range(1, EPOCHS + 1))
    stamps = [m.timestamp for m in val_loss]
    assert stamps == sorted(stamps) and len(set(stamps)) == EPOCHS
    assert stamps[HELD_AT - 1] <= gate.released_ms < stamps[HELD_AT]
    (holdout_point,) = client.get_metric_history(run_id, "sigma_mad")
    assert stamps[-1] <= holdout_point.timestamp
    assert run.info.start_time <= stamps[0]

    # The run lasts as long as the training step that made it.
    step_seconds = timing["end"] - timing["start"]
    assert (run.info.end_time - run.info.start_time) / 1000 >= 0.9 * step_seconds

    # Evaluated and registered from this same run.
    assert logged.model_version is not None
    assert registry.get_version(settings, logged.model_version).run_id == run_id
    assert run.data.tags[tags.TAG_MODEL_VERSION] == logged.model_version


def training_rows(shards: list[Path]) -> Any:
    from astrospect.data.dataset import select_splits

    return select_splits(shards, "full").train


def test_a_training_that_dies_leaves_a_failed_run_with_its_curve_and_the_retry_replaces_it(
    settings: Settings, client: MlflowClient, shards: list[Path], tmp_path: Path
) -> None:
    parent = sessions.start_session(settings, "live-v2", shards)
    full = challengers.get("full")
    gate = EpochGate(HELD_AT, error=RuntimeError("a corrupt batch at epoch 2"))
    n_versions = len(client.search_model_versions("name = 'live-test'"))

    with pytest.raises(RuntimeError, match="a corrupt batch at epoch 2"):
        runs.train_once(settings, parent, full, training(shards, tmp_path / "a", EPOCHS, gate), shards)

    (failed,) = sessions.child_runs(client, client.get_run(parent), "FAILED", "full")
    failed_id = failed.info.run_id
    assert [m.step for m in curve(client, failed_id, "val_loss")] == list(range(1, HELD_AT + 1))
    assert failed.data.tags[tags.TAG_ERROR] == "RuntimeError: a corrupt batch at epoch 2"
    assert "failed after 2 epoch(s)" in failed.data.tags[tags.TAG_NOTE]
    traceback_text = Path(client.download_artifacts(failed_id, TRACEBACK_ARTIFACT)).read_text()
    assert "RuntimeError: a corrupt batch at epoch 2" in traceback_text and "epoch_ended" in traceback_text
    assert tags.TAG_MODEL_VERSION not in failed.data.tags and "sigma_mad" not in failed.data.metrics
    assert len(client.search_model_versions("name = 'live-test'")) == n_versions

    # The retried task: a fresh run trains to the end; the failed one is kept, pointing at it.
    retried = runs.train_once(settings, parent, full, training(shards, tmp_path / "b", 2), shards)
    assert retried.run_id != failed_id and not retried.reused
    assert client.get_run(retried.run_id).info.status == "FINISHED"
    kept = client.get_run(failed_id)
    assert kept.info.status == "FAILED" and kept.data.tags[tags.TAG_SUPERSEDED_BY] == retried.run_id
    assert [m.step for m in curve(client, failed_id, "val_loss")] == list(range(1, HELD_AT + 1))
    assert [child.run_id for child in sessions.session_children(settings, parent)] == [retried.run_id]


def test_a_baseline_trains_inside_its_run_too(
    settings: Settings, client: MlflowClient, shards: list[Path], tmp_path: Path
) -> None:
    parent = sessions.start_session(settings, "live-v3", shards)
    name = "baseline-knn-full"
    seen: list[str] = []
    fit = training(shards, tmp_path, 1, challenger=name)

    def produce() -> ChallengerOutcome:
        (running,) = sessions.child_runs(client, client.get_run(parent), "RUNNING", name)
        seen.append(running.info.run_id)
        return fit()

    logged = runs.train_once(settings, parent, challengers.get(name), produce, shards)
    run = client.get_run(logged.run_id)
    assert seen == [logged.run_id] and run.info.status == "FINISHED"
    assert {"sigma_mad", "crps"} <= set(run.data.metrics) and logged.model_version is None
