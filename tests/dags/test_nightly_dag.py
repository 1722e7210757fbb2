"""The real DAG, end to end, with ``airflow dags test`` on SQLite against a real MLflow server.

Three nights on one landing zone: the first trains on the good shards and quarantines a bad one, the
second (same data) short-circuits, the third (new shards arrived) trains again.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from mlflow import MlflowClient

from astrospect.data.shards import write_shard
from astrospect.models import registry as challengers
from astrospect.simulate import synthesize
from astrospect.tracking.tags import ROLE_SESSION, TAG_CHALLENGER, TAG_ROLE
from tests.support.tracking import mlflow_server

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = REPO / ".venv" / "bin" / "airflow"
MODEL_NAME = "astrospect-photoz"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("astrospect_home")


@pytest.fixture(scope="module")
def tracking_url(home: Path) -> Iterator[str]:
    with mlflow_server(home) as url:
        yield url


@pytest.fixture(scope="module")
def airflow_env(home: Path, tracking_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "ASTROSPECT_HOME": str(home),
        "MLFLOW_TRACKING_URI": tracking_url,
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "ASTROSPECT_IO_RETRIES": "0",  # a failure should fail the test now, not after minutes of back-off
        "ASTROSPECT_EPOCHS": "2",
    }
    subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


def write_nan_shard(good: Path, out: Path) -> Path:
    """A copy of a good shard with new objids and NaN pixels: it must be quarantined, never trained on."""
    with h5py.File(good) as handle:
        images = handle["images"][()]
        objid = handle["objid"][()] + 10**12
        redshift, error = handle["specz_redshift"][()], handle["specz_redshift_err"][()]
    images[::7, 2, 10:14, 10:14] = np.nan
    return write_shard(out, images, objid, redshift, error)


def dags_test(env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(AIRFLOW), "dags", "test", "astrospect_nightly", "--conf", json.dumps({"epochs": 2})],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "DagRun Finished" in output and "state=success" in output.replace("state:success", "state=success")
    return output


def sessions(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name(MODEL_NAME)
    assert experiment is not None
    return client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{TAG_ROLE}` = '{ROLE_SESSION}'"
    )


def children(client: MlflowClient, parent_run_id: str) -> dict[str, list[str]]:
    experiment = client.get_experiment_by_name(MODEL_NAME)
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )
    by_variant: dict[str, list[str]] = {}
    for run in runs:
        by_variant.setdefault(run.data.tags[TAG_CHALLENGER], []).append(run.info.run_name)
    return by_variant


def test_three_nights(home: Path, airflow_env: dict[str, str], tracking_url: str) -> None:
    landing = home / "landing"
    good = synthesize(landing, n=600, seed=11, shard_size=200, lrg_fraction=0.05)
    bad = write_nan_shard(good[0], landing / "night1-bad-pixels.h5")
    client = MlflowClient(tracking_url, registry_uri=tracking_url)  # never the process-global registry

    # Night 1: three good shards accepted, the bad one quarantined and named; every challenger trained.
    night1 = dags_test(airflow_env)
    assert len(list((home / "accepted").glob("*.h5"))) == 3
    quarantined = list((home / "quarantine").glob("*.h5"))
    assert [p.name.split(".")[0] for p in quarantined] == [bad.stem]
    assert f"quarantined {bad.stem}" in night1
    assert len(sessions(client)) == 1
    parent = sessions(client)[0].info.run_id
    assert sessions(client)[0].info.status == "FINISHED"  # promote closes the session
    assert "compare-runs?runs=" in night1
    kinds = children(client, parent)
    assert kinds == {name: [name] for name in challengers.DEFAULT_SESSION}
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert champion.run_id in {
        run.info.run_id for run in client.search_runs([sessions(client)[0].info.experiment_id])
    }
    assert len(client.search_model_versions(f"name = '{MODEL_NAME}'")) == 4  # full, clipped, cnn-ebv, pdf
    assert "deployed astrospect-photoz version" in night1
    assert all(p.exists() for p in good) and bad.exists()  # the landing zone is never emptied

    # Night 2: nothing new: the run ends cleanly without training, nothing new in MLflow.
    night2 = dags_test(airflow_env)
    assert "already trained" in night2
    assert "training full" not in night2
    assert len(sessions(client)) == 1
    assert len(client.search_model_versions(f"name = '{MODEL_NAME}'")) == 4

    # Night 3: new shards arrived: a new session trains on the grown snapshot and applies the policy.
    synthesize(landing, n=300, seed=12, shard_size=300, lrg_fraction=0.05)
    night3 = dags_test(airflow_env)
    assert "training full" in night3 and "training clipped" in night3
    assert len(sessions(client)) == 2
    assert len(list((home / "accepted").glob("*.h5"))) == 4
    assert len(client.search_model_versions(f"name = '{MODEL_NAME}'")) == 8
    assert ("promoted v" in night3) or ("kept champion v" in night3)
    # The new shards were judged for drift against the champion's training snapshot, and the report is
    # the new session's child run (night 1 had no champion yet: its drift step was skipped).
    assert "drift: skipped" in night1 and ("drift: DRIFTING" in night3 or "drift: no drift" in night3)
    newest = max(sessions(client), key=lambda run: run.info.start_time)
    experiment_id = newest.info.experiment_id
    (drift_run,) = client.search_runs([experiment_id], filter_string=f"tags.`{TAG_ROLE}` = 'drift'")
    assert drift_run.data.tags["mlflow.parentRunId"] == newest.info.run_id
    assert "drift/drift.html" in {a.path for a in client.list_artifacts(drift_run.info.run_id, "drift")}
    assert client.get_model_version_by_alias(MODEL_NAME, "champion") is not None
