"""`astrospect drift` with a champion: a real MLflow registry names the reference and is the watched model.

The champion is the serving tests' tiny seed CNN, its run tagged with the dataset version of a snapshot the
real gate made (ingest, GE validation, snapshot) from simulated shards; a seeing-degraded night follows.
``astrospect drift`` with no ``--against`` must compare that night with the champion's own snapshot and
its predicted N(z) on both, through the registry's model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from astrospect.cli import app
from astrospect.settings import Settings
from astrospect.simulate import synthesize
from astrospect.simulate.conditions import ObservingConditions
from tests.support.serving_stack import register_seed_champion

pytestmark = pytest.mark.integration

MODEL_NAME = "drift-champion-test"


def test_drift_against_the_champions_training_snapshot(
    mlflow_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from astrospect.gate.ingest import ingest
    from astrospect.gate.snapshot import create_snapshot
    from astrospect.gate.validate import validate_pending
    from astrospect.settings import load_settings
    from astrospect.tracking.tags import TAG_DATASET_VERSION

    home = tmp_path / "home"
    monkeypatch.setenv("ASTROSPECT_HOME", str(home))
    reference_shards = synthesize(
        tmp_path / "reference", 600, 31, shard_size=300, lrg_fraction=0.05, workers=1
    )
    night = synthesize(
        tmp_path / "night",
        400,
        32,
        shard_size=400,
        workers=1,
        night=ObservingConditions(seeing_fwhm_arcsec=1.7),
    )
    # The session's MLflow server; the champion's registered model and the experiment are this test's own.
    registry = mlflow_url
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry)
    monkeypatch.setenv("ASTROSPECT_MODEL_NAME", MODEL_NAME)
    monkeypatch.setenv("ASTROSPECT_EXPERIMENT", MODEL_NAME)
    settings = load_settings()
    ingest(str(reference_shards[0].parent), settings)
    validate_pending(settings)
    trained_on = create_snapshot(settings)
    champion = register_seed_champion(registry, tmp_path, MODEL_NAME)
    mlflow.MlflowClient(registry).set_tag(champion.run_id, TAG_DATASET_VERSION, trained_on.version)
    ingest(str(night[0].parent), settings)
    validate_pending(settings)
    tonight = create_snapshot(settings)

    result = CliRunner().invoke(app, ["drift"])
    nightly_drift_is_logged_and_adopted(settings, tonight.summary())
    assert result.exit_code == 0, result.output
    assert "DRIFTING" in result.output and "z_pred" in result.output
    folder = settings.reports_dir / "drift" / f"{tonight.version[:12]}-vs-{trained_on.version[:12]}"
    stored = json.loads((folder / "drift.json").read_text())
    assert stored["summary"]["reference_version"] == trained_on.version
    assert stored["summary"]["model_version"] == f"{MODEL_NAME}-v{champion.version}-{champion.run_id[:12]}"
    assert stored["summary"]["n_reference"] == 600 and stored["summary"]["n_tonight"] == 400
    assert stored["summary"]["tonight_shards"] == [
        path.name for path in tonight.shard_paths if "s32" in path.name
    ]
    assert "peak_fraction_r" in stored["summary"]["drifted_features"]
    cached = sorted(path.name for path in settings.drift_cache_dir.iterdir())
    assert len(cached) == 2 and cached[0].startswith(trained_on.version)


def nightly_drift_is_logged_and_adopted(settings: Settings, snapshot: dict) -> None:
    """The DAG's drift step on the same night: a run in MLflow with the report, adopted by the session."""
    from mlflow import MlflowClient

    from astrospect import nightly
    from astrospect.tracking.tags import ROLE_DRIFT, TAG_DRIFTING, TAG_PARENT, TAG_ROLE

    airflow_run_id = "manual__2026-12-01T02:30:00+00:00"
    verdict = nightly.drift_step(snapshot, airflow_run_id, settings)
    assert verdict["status"] == "measured" and verdict["drifting"] is True
    client = MlflowClient(settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    run = client.get_run(verdict["mlflow_run_id"])
    assert run.data.tags[TAG_ROLE] == ROLE_DRIFT and run.data.tags[TAG_DRIFTING] == "true"
    assert run.data.metrics["drift/drifting"] == 1.0
    assert {a.path for a in client.list_artifacts(run.info.run_id, "drift")} == {
        "drift/drift.html",
        "drift/drift.json",
    }
    # A retried task finds the night's run instead of logging a second one.
    assert nightly.drift_step(snapshot, airflow_run_id, settings)["mlflow_run_id"] == run.info.run_id

    # The night's training session adopts the report as its child; challengers' lists leave it out.
    from astrospect.tracking.sessions import session_children

    parent = nightly.start_session_step(snapshot, airflow_run_id, settings)
    assert client.get_run(run.info.run_id).data.tags[TAG_PARENT] == parent
    assert session_children(settings, parent) == []
