"""The tracking server stopped during the nightly drift step: the step fails naming the server (Airflow
retries it), where it used to return "skipped" and the night's drift check disappeared. The first night, with
a server that answers and no champion yet, stays a skip; so does the retry once the server is back.

Why a real MLflow server, started and stopped with the project's own script (mlflow/server.sh): "stopped"
then means exactly what an operator sees, a refused connection at the URL the step was given, and "no
champion" means a registry that answered without one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from astrospect.faults import EnvironmentFault
from astrospect.settings import load_settings
from tests.faults.conftest import Record, fault_free_state, normalised, run_step
from tests.support.tracking import mlflow_server

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_a_stopped_tracking_server_fails_the_drift_step_and_no_champion_stays_a_skip(
    landing: list[Path], record: Record, tmp_path: Path
) -> None:
    from astrospect.nightly import drift_step, snapshot_step

    home = tmp_path / "home"
    fault_free_state(landing[0].parent, home)
    settings = load_settings().replace(home=home)
    dataset = snapshot_step(settings)
    mlflow_home = tmp_path / "mlflow-home"

    with mlflow_server(mlflow_home) as url:  # the first night: the registry answers, with no champion
        first = drift_step(dataset, "night-1", settings.replace(mlflow_tracking_uri=url))
    assert first["status"] == "skipped" and "no alias 'champion'" in first["reason"]

    # The server is stopped: the same step, the same URL.
    stopped = settings.replace(mlflow_tracking_uri=url)
    with pytest.raises(EnvironmentFault) as caught:
        drift_step(dataset, "night-2", stopped)
    assert str(caught.value).startswith(f"the MLflow tracking server {url}: TrackingServerError:")
    assert "unreachable" in str(caught.value)
    cli = run_step(["drift"], {"ASTROSPECT_HOME": str(home), "MLFLOW_TRACKING_URI": url})
    assert cli.exit_status != 0 and cli.message.startswith(
        f"EnvironmentFault: the MLflow tracking server {url}"
    )
    assert not (home / "reports" / "drift").exists()  # nothing was measured or written for the night

    with mlflow_server(mlflow_home) as back:  # Airflow's retry, the server back (on a new port)
        retried = drift_step(dataset, "night-2", settings.replace(mlflow_tracking_uri=back))
    assert retried == first
    record.add(
        "tracking-1-drift",
        fault="MLflow tracking server stopped",
        step="drift (nightly drift_step; `astrospect drift`)",
        exit_status=cli.exit_status,
        message=normalised(cli.message, home),
        ledger="nothing: the drift step records no verdict on data",
        store="no drift report, no MLflow run",
        rerun="server back: skipped, no champion yet (the first night), as a fault-free run",
    )
