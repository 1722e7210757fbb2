"""The nightly DAG's gate steps, called directly as plain functions (no Airflow, no server).

The training, promotion and deploy steps need an MLflow server: tests/models/test_challenger_registry.py
calls them directly the same way, and tests/dags/test_nightly_dag.py runs them through the real DAG.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from astrospect import nightly
from astrospect.data.shards import write_shard
from astrospect.settings import Settings, load_settings
from astrospect.simulate import synthesize

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("landing")
    good = synthesize(folder, n=300, seed=21, shard_size=150)
    with h5py.File(good[0]) as handle:
        images = handle["images"][()]
        objid = handle["objid"][()] + 10**12
        labels = handle["specz_redshift"][()], handle["specz_redshift_err"][()]
    images[::5, 1, 8:12, 8:12] = np.nan  # NaN pixels: the gate must quarantine this one
    write_shard(folder / "bad-pixels.h5", images, objid, *labels)
    return folder


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("home")
    # Nothing here may reach a server: an unused port makes any attempt fail loudly instead of hanging.
    return load_settings().replace(home=home, mlflow_tracking_uri="http://127.0.0.1:9")


def test_gate_steps_ingest_validate_and_snapshot(landing: Path, settings: Settings) -> None:
    ingested = nightly.ingest_step(str(landing), settings)
    assert len(ingested["new"]) == 3

    validated = nightly.validate_step(settings)
    assert len(validated["accepted"]) == 2
    assert [item["shard"].split(".")[0] for item in validated["quarantined"]] == ["bad-pixels"]

    snapshot = nightly.snapshot_step(settings)
    assert snapshot["n_shards"] == 2 and snapshot["n_rows"] == 300
    good = sorted(path.stem for path in landing.glob("sim-*.h5"))
    assert sorted(Path(s).name.split(".")[0] for s in snapshot["shards"]) == good
    assert len(snapshot["sha256"]) == 2

    # Each step is idempotent: a second night with nothing new changes nothing.
    assert nightly.ingest_step(str(landing), settings)["new"] == []
    assert nightly.validate_step(settings)["accepted"] == []
    again = nightly.snapshot_step(settings)
    assert again["version"] == snapshot["version"] and again["new"] is False


def test_nothing_accepted_means_nothing_to_train_without_asking_mlflow(settings: Settings) -> None:
    assert nightly.should_train({"version": "empty", "shards": []}, settings=settings) is False
