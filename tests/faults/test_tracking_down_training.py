"""The tracking server stopped during training's logging, promotion and deploy: each step fails naming the
server (an EnvironmentFault, which Airflow retries), leaves the registry and BentoML's store as they were,
and its rerun once the server is back reaches exactly the state of a run that never met the fault: one
FINISHED run and one registered version per session and challenger, the same champion, the same deployment.

Why a real MLflow server stopped with the project's own script (mlflow/server.sh), and started again on the
same home and port: "stopped" is a refused connection at the URL the step was given, and "back" is the same
registry at the same URL, as after an operator restarts it. The training case stops it from an epoch
observer (:mod:`astrospect.models.progress`), after the run's own observer logged the first epoch, so the
fault lands between two epochs' logging, where a real outage would. Promotion and deploy use a "reader"
model (tests/support/tracking.py) as the session's challenger: registered in seconds, no training.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from astrospect import nightly
from astrospect.data.store import sha256_file
from astrospect.faults import EnvironmentFault
from astrospect.models import progress
from astrospect.settings import Settings
from astrospect.tracking import registry, sessions, tags
from astrospect.tracking.server import client_for
from harness.ports import free_port
from tests.faults.conftest import Record, normalised
from tests.support.tracking import (
    EXACT_BAND,
    log_reader,
    mlflow_server,
    settings_for,
    stop_mlflow_server,
    write_reader_shards,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

STOPPED = "MLflow tracking server stopped"
CHALLENGER = "full"  # the seed CNN: a registered challenger


@dataclass(frozen=True)
class Server:
    """Where the test's MLflow server keeps its store and listens: the same after every restart."""

    home: Path
    port: int


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    return Server(tmp_path_factory.mktemp("mlflow-home"), free_port())


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny snapshot as the snapshot step returns it: two reader shards of 150 cutouts."""
    shards = write_reader_shards(tmp_path_factory.mktemp("shards"), n_per_shard=150)
    return {
        "version": "faults-v1",
        "shards": [str(path) for path in shards],
        "sha256": [sha256_file(path) for path in shards],
    }


@pytest.fixture(autouse=True)
def give_up_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's client retries a refused connection for about four minutes before it gives up; the fault
    under test is what comes after, so it gives up at once here."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def settings_in(home: Path, url: str, name: str) -> Settings:
    return settings_for(home, url).replace(registered_model_name=name, experiment_name=name)


def versions_of(settings: Settings, parent_run_id: str) -> list[str]:
    """The registered versions of the session's ``CHALLENGER``."""
    found = client_for(settings).search_model_versions(f"name = '{settings.registered_model_name}'")
    return sorted(
        str(v.version)
        for v in found
        if v.tags.get(tags.TAG_SESSION_RUN_ID) == parent_run_id
        and v.tags.get(tags.TAG_CHALLENGER) == CHALLENGER
    )


def aliases(settings: Settings) -> dict[str, str]:
    model = client_for(settings).get_registered_model(settings.registered_model_name)
    return {str(alias): str(version) for alias, version in model.aliases.items()}


def assert_names_the_server(error: EnvironmentFault, url: str) -> None:
    assert str(error).startswith(f"the MLflow tracking server {url}: "), str(error)


def in_store(settings: Settings, kind: str) -> list[str]:
    """BentoML's store of ``kind`` ("models" or "bentos"): the ``name/version`` folders it holds."""
    folder = settings.bentoml_home / kind
    return sorted(str(p.relative_to(folder)) for p in folder.glob("*/*") if p.is_dir())


class StopServerAfterEpoch:
    """A training observer that stops the tracking server when epoch ``at`` ends. Set outside the step, it
    is called before the run's own observer: the run has logged the epochs before ``at``, not ``at``."""

    def __init__(self, server: Server, at: int) -> None:
        self.server = server
        self.at = at
        self.stopped = False

    def training_started(self, params: Mapping[str, Any], input_example: npt.NDArray[np.float32]) -> None:
        pass

    def epoch_ended(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if epoch == self.at:
            stop_mlflow_server(self.server.home, self.server.port)
            self.stopped = True


def test_a_server_stopped_while_a_challenger_trains_fails_the_step_and_the_rerun_logs_it_once(
    server: Server, snapshot: dict[str, Any], record: Record, tmp_path: Path
) -> None:
    with mlflow_server(server.home, server.port) as url:
        settings = settings_in(tmp_path / "home", url, "faults-train")
        parent = nightly.start_session_step(snapshot, "night-train", settings)
        observer = StopServerAfterEpoch(server, at=2)
        with progress.observing(observer), pytest.raises(EnvironmentFault) as caught:
            nightly.train_step(CHALLENGER, parent, snapshot, 2, settings)
        assert observer.stopped
    assert_names_the_server(caught.value, url)
    assert "MlflowException" in str(caught.value) and "ConnectionError" in str(caught.value)

    with mlflow_server(server.home, server.port) as back:  # the server restarted; Airflow's retry
        assert back == url
        client = client_for(settings)
        session = client.get_run(parent)
        (stale,) = sessions.child_runs(client, session, "RUNNING", CHALLENGER)  # nobody could end it
        assert "sigma_mad" not in stale.data.metrics and versions_of(settings, parent) == []
        epochs_logged = [m.step for m in client.get_metric_history(stale.info.run_id, "val_loss")]
        assert epochs_logged == [1]  # the curve reached before the fault

        rerun = nightly.train_step(CHALLENGER, parent, snapshot, 2, settings)
        again = nightly.train_step(CHALLENGER, parent, snapshot, 2, settings)  # a second retry: reused
        (finished,) = sessions.child_runs(client, session, "FINISHED", CHALLENGER)
        (failed,) = sessions.child_runs(client, session, "FAILED", CHALLENGER)
        versions = versions_of(settings, parent)
    assert finished.info.run_id == rerun["run_id"] == again["run_id"] and again["reused"]
    assert versions == [rerun["model_version"]]
    assert failed.info.run_id == stale.info.run_id
    assert failed.data.tags[tags.TAG_SUPERSEDED_BY] == rerun["run_id"]
    record.add(
        "tracking-2-train",
        fault=f"{STOPPED} as the 2nd epoch ends, before the run logs it",
        step="train (nightly train_step, the seed CNN, 2 epochs)",
        exit_status="the task raises EnvironmentFault (Airflow: failed, retried)",
        message=normalised(f"EnvironmentFault: {caught.value}"),
        ledger="nothing: training records no verdict on data",
        store=(
            "registry: no version; the challenger's run left RUNNING (nobody could end it) with its curve to "
            f"epoch {max(epochs_logged)}"
        ),
        rerun=(
            f"server back: 1 FINISHED run and {len(versions)} registered version for the session and "
            "challenger; the stale run marked FAILED, superseded by it; a second retry reuses it"
        ),
    )


def test_a_server_stopped_before_promotion_fails_the_step_and_the_rerun_promotes_as_a_fault_free_run(
    server: Server, snapshot: dict[str, Any], record: Record, tmp_path: Path
) -> None:
    shards = [Path(s) for s in snapshot["shards"]]
    with mlflow_server(server.home, server.port) as url:
        settings = settings_in(tmp_path / "home", url, "faults-promote")
        parent = nightly.start_session_step(snapshot, "night-promote", settings)
        logged = log_reader(settings, parent, EXACT_BAND, CHALLENGER, shards)
        before = aliases(settings)
    assert registry.CHAMPION_ALIAS not in before and logged.model_version is not None  # the first night

    with pytest.raises(EnvironmentFault) as caught:
        nightly.promote_step(parent, snapshot, settings)
    assert_names_the_server(caught.value, url)

    with mlflow_server(server.home, server.port) as back:
        assert back == url
        assert aliases(settings) == before  # the failed step moved nothing
        assert "promotion.decision" not in client_for(settings).get_run(parent).data.tags
        decision = nightly.promote_step(parent, snapshot, settings)
        again = nightly.promote_step(parent, snapshot, settings)  # a second retry changes nothing
        after = aliases(settings)
        versions = versions_of(settings, parent)
    # What a fault-free run gives on the first night: the session's only version becomes champion.
    assert decision["promoted"] and decision["champion_after"] == logged.model_version
    assert after == {**before, registry.CHAMPION_ALIAS: logged.model_version}
    assert versions == [logged.model_version]
    assert again["champion_after"] == logged.model_version and not again["promoted"]
    record.add(
        "tracking-3-promote",
        fault=f"{STOPPED} before promotion",
        step="promote (nightly promote_step)",
        exit_status="the task raises EnvironmentFault (Airflow: failed, retried)",
        message=normalised(f"EnvironmentFault: {caught.value}"),
        ledger="nothing: promotion records no verdict on data",
        store="registry: aliases unchanged (no champion), no decision logged",
        rerun=(
            f"server back: the session's version becomes champion, as in a fault-free run; {len(versions)} "
            "version for the session and challenger; a second retry changes nothing"
        ),
    )


def test_a_server_stopped_before_deploy_fails_the_step_and_the_rerun_deploys_the_same_version(
    server: Server, snapshot: dict[str, Any], record: Record, tmp_path: Path
) -> None:
    shards = [Path(s) for s in snapshot["shards"]]
    with mlflow_server(server.home, server.port) as url:
        settings = settings_in(tmp_path / "home", url, "faults-deploy")
        parent = nightly.start_session_step(snapshot, "night-deploy", settings)
        logged = log_reader(settings, parent, EXACT_BAND, CHALLENGER, shards)
        champion = nightly.promote_step(parent, snapshot, settings)["champion_after"]
    assert champion == logged.model_version

    with pytest.raises(EnvironmentFault) as caught:
        nightly.deploy_step(champion, settings)
    assert_names_the_server(caught.value, url)
    stored, bentos = in_store(settings, "models"), in_store(settings, "bentos")
    assert stored == [] and bentos == []  # nothing imported, nothing half-written

    with mlflow_server(server.home, server.port) as back:
        assert back == url
        deployed = nightly.deploy_step(champion, settings)
    assert deployed["version"] == champion and deployed["run_id"] == logged.run_id
    assert not deployed["reused_model"] and not deployed["reused_bento"]
    assert len(in_store(settings, "models")) == 1 and len(in_store(settings, "bentos")) == 1
    record.add(
        "tracking-4-deploy",
        fault=f"{STOPPED} before deploy",
        step="deploy (nightly deploy_step)",
        exit_status="the task raises EnvironmentFault (Airflow: failed, retried)",
        message=normalised(f"EnvironmentFault: {caught.value}", settings.home),
        ledger="nothing: deploy records no verdict on data",
        store="BentoML store: no model, no bento",
        rerun="server back: the champion's version imported once and its bento built, as in a fault-free run",
    )
