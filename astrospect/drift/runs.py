"""Tonight's drift report as an MLflow run: its metrics, the HTML report and the JSON, a child of the night's
training session when the night trains (docs/explanation/architecture.md, "Drift")."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from astrospect.drift.report import DriftReport
from astrospect.settings import Settings, get_logger
from astrospect.tracking.runs import _METRICS_PER_BATCH, _log_params
from astrospect.tracking.server import client_for
from astrospect.tracking.sessions import context_tags
from astrospect.tracking.tags import (
    ROLE_DRIFT,
    TAG_AIRFLOW_RUN_ID,
    TAG_DRIFTING,
    TAG_NOTE,
    TAG_PARENT,
    TAG_ROLE,
    quoted,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

log = get_logger(__name__)


def log_drift(
    settings: Settings, report: DriftReport, folder: Path, dataset_version: str, airflow_run_id: str | None
) -> str:
    """Log tonight's drift report as a run: its metrics, the HTML report and the JSON; returns the run id.

    A retried task finds the night's finished drift run (by Airflow run id) and logs nothing again. The
    training session, if the night trains, adopts the run as its child (:func:`adopt_drift_run`).
    """
    import mlflow
    from mlflow.entities import Metric

    from astrospect.tracking.sessions import ensure_experiment

    client = client_for(settings)
    experiment_id = ensure_experiment(settings)
    if airflow_run_id is not None:
        found = _drift_runs(client, experiment_id, airflow_run_id)
        if found:
            log.info(
                "drift for Airflow run %s already logged in run %s", airflow_run_id, found[0].info.run_id
            )
            return str(found[0].info.run_id)
    tags = context_tags(dataset_version, airflow_run_id) | {
        TAG_ROLE: ROLE_DRIFT,
        TAG_DRIFTING: str(report.drifting).lower(),
        TAG_NOTE: (
            f"Drift of {report.n_tonight} new cutouts against snapshot {report.reference_version[:12]}: "
            f"{'DRIFTING' if report.drifting else 'no drift'} ({len(report.drifted_features)} of "
            f"{len(report.features)} features: {', '.join(report.drifted_features) or 'none'}). "
            "Open drift/drift.html in Artifacts."
        ),
    }
    run = client.create_run(experiment_id, run_name=f"drift {dataset_version[:12]}", tags=tags)
    run_id = str(run.info.run_id)
    mlflow.set_experiment(experiment_id=experiment_id)
    with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
        _log_params(
            client,
            run_id,
            {
                "reference_version": report.reference_version,
                "model_version": report.model_version,
                "alpha": report.alpha,
                "share_threshold": report.share_threshold,
                "action": report.action,
                "n_tonight_shards": len(report.tonight_shards),
            },
        )
        now = int(time.time() * 1000)
        metrics = [Metric(name, value, now, 0) for name, value in report.metrics().items()]
        for start in range(0, len(metrics), _METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metrics[start : start + _METRICS_PER_BATCH])
        for path in sorted(folder.iterdir()):
            client.log_artifact(run_id, str(path), "drift")
    return run_id


def adopt_drift_run(settings: Settings, parent_run_id: str, airflow_run_id: str) -> None:
    """Make the night's drift run (if any) a child of the night's training session."""
    client = client_for(settings)
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    for run in _drift_runs(client, experiment_id, airflow_run_id):
        if run.data.tags.get(TAG_PARENT) != parent_run_id:
            client.set_tag(run.info.run_id, TAG_PARENT, parent_run_id)


def _drift_runs(client: MlflowClient, experiment_id: str, airflow_run_id: str) -> list[Run]:
    return list(
        client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`{TAG_ROLE}` = '{ROLE_DRIFT}' and tags.{TAG_AIRFLOW_RUN_ID} = '{quoted(airflow_run_id)}' "
                "and attributes.status = 'FINISHED'"
            ),
        )
    )
