"""The nightly pipeline's steps as plain functions: the Airflow DAG wires them, and tests call them directly
(tests/test_nightly_steps.py, tests/models/test_challenger_registry.py).

Each step takes only what it uses and returns small JSON-able values (paths or s3:// URIs, ids, versions),
never arrays, so Airflow's XCom carries them between processes and workers; a step that reads shards
fetches the ones in the shard store into its own machine's cache (:func:`astrospect.data.store.local_copies`).
Each is idempotent: re-running a step for the same run gives the same result and creates no duplicates.
A fault of the machine (a full disk, S3 or MLflow failing: :mod:`astrospect.faults`) fails the step with a
message naming the resource and records nothing against the data, so the retry picks up where it stopped;
the DAG's tasks after it do not run, and no night trains on part of its data.
"""

from __future__ import annotations

from typing import Any

from astrospect.models import registry as challengers
from astrospect.settings import Settings, get_logger, load_settings

log = get_logger(__name__)


def ingest_step(source: str | None = None, settings: Settings | None = None) -> dict[str, Any]:
    from astrospect.gate.ingest import ingest

    settings = settings or load_settings()
    result = ingest(source or settings.landing_source, settings)
    summary = result.summary()
    log.info("ingest: %d new shard(s), %d already seen", len(summary["new"]), summary["skipped"])
    return summary


def validate_step(settings: Settings | None = None) -> dict[str, Any]:
    from astrospect.gate.validate import validate_pending

    settings = settings or load_settings()
    result = validate_pending(settings)
    summary = result.summary()
    for item in summary["quarantined"]:
        log.warning("quarantined %s: %s (report: %s)", item["shard"], item["reason"], item.get("report"))
    log.info("validate: %d accepted, %d quarantined", len(summary["accepted"]), len(summary["quarantined"]))
    return summary


def snapshot_step(settings: Settings | None = None) -> dict[str, Any]:
    from astrospect.gate.snapshot import create_snapshot

    settings = settings or load_settings()
    snapshot = create_snapshot(settings)
    log.info("snapshot %s: %d shard(s), %d cutouts", snapshot.version, len(snapshot.shards), snapshot.n_rows)
    return snapshot.summary()


def drift_step(
    snapshot: dict[str, Any], airflow_run_id: str | None, settings: Settings | None = None
) -> dict[str, Any]:
    """Compare tonight's new shards (and the champion's predictions on them) with the champion's training
    snapshot; log the report to MLflow. Skipped, not failed, when there is no champion yet (the first night)
    or nothing new; failed (an :class:`~astrospect.faults.EnvironmentFault` naming the server, which Airflow
    retries) when the tracking server does not answer: a night's drift check never disappears as a skip."""
    from astrospect.drift.measure import drift_against
    from astrospect.drift.runs import log_drift

    settings = settings or load_settings()
    if not snapshot.get("shards"):
        return {"status": "skipped", "reason": "nothing has passed validation yet", "drifting": False}
    try:
        report, _, reference = drift_against(settings, newest=snapshot["version"])
    except LookupError as error:  # no champion yet (the first night), or it records no training snapshot
        log.info("drift: skipped: %s", error)
        return {"status": "skipped", "reason": str(error), "drifting": False}
    if report is None:
        reason = f"snapshot {snapshot['version'][:12]} holds nothing the champion's {reference.version[:12]} does not"
        log.info("drift: skipped: %s", reason)
        return {"status": "skipped", "reason": reason, "drifting": False}
    folder = settings.reports_dir / "drift" / f"{snapshot['version'][:12]}-vs-{reference.version[:12]}"
    html, _ = report.write(folder)
    run_id = log_drift(settings, report, folder, snapshot["version"], airflow_run_id)
    (log.warning if report.drifting else log.info)(
        "drift: %s: %d of %d features drifted (%s); action %s; report %s, MLflow run %s",
        "DRIFTING" if report.drifting else "no drift",
        len(report.drifted_features),
        len(report.features),
        ", ".join(report.drifted_features) or "none",
        report.action,
        html,
        run_id,
    )
    return {"status": "measured", **report.summary(), "report": str(html), "mlflow_run_id": run_id}


def should_train(
    snapshot: dict[str, Any],
    force: bool = False,
    drift: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> bool:
    """Train only when there is accepted data that no finished session has trained on, or when forced,
    or when the night drifts and ``ASTROSPECT_DRIFT_ACTION=retrain``."""
    settings = settings or load_settings()
    if not snapshot.get("shards"):
        log.info("nothing has passed validation yet: skipping training")
        return False
    if force:
        log.info("forced retrain of dataset %s", snapshot["version"])
        return True
    if drift and drift.get("drifting") and drift.get("action") == "retrain":
        log.warning(
            "tonight drifts and ASTROSPECT_DRIFT_ACTION=retrain: retraining on %s", snapshot["version"]
        )
        return True
    from astrospect.tracking.sessions import session_for_dataset

    trained = challengers.for_session(settings.challengers)
    existing = session_for_dataset(settings, snapshot["version"], trained)
    if existing is not None:
        log.info(
            "dataset %s was already trained by %s in MLflow run %s: nothing to do",
            snapshot["version"],
            ", ".join(c.name for c in trained),
            existing,
        )
        return False
    return True


def start_session_step(
    snapshot: dict[str, Any], airflow_run_id: str | None, settings: Settings | None = None
) -> str:
    from astrospect.drift.runs import adopt_drift_run
    from astrospect.tracking.sessions import start_session

    settings = settings or load_settings()
    parent = start_session(settings, snapshot["version"], snapshot["shards"], airflow_run_id=airflow_run_id)
    if airflow_run_id is not None:
        adopt_drift_run(
            settings, parent, airflow_run_id
        )  # tonight's drift report becomes the session's child
    return parent


def train_step(
    challenger_name: str,
    parent_run_id: str,
    snapshot: dict[str, Any],
    epochs: int,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Train, score and log one challenger in its child run, opened before the shards are fetched and
    kept open to the registered model, so MLflow shows the training as it runs
    (:func:`astrospect.tracking.runs.train_once`); a retried task finds the finished child and stops."""
    from astrospect.data.dataset import select_splits
    from astrospect.data.store import local_copies
    from astrospect.models.pipeline import ChallengerOutcome, run_challenger
    from astrospect.models.registry import TrainConfig
    from astrospect.tracking.runs import train_once
    from astrospect.tracking.server import server_guard

    settings = settings or load_settings()
    challenger = challengers.get(challenger_name)

    def produce() -> ChallengerOutcome:
        shards = local_copies(snapshot["shards"], snapshot["sha256"], settings)
        config = TrainConfig(
            out_dir=settings.models_dir / parent_run_id / challenger.name,
            epochs=epochs,
            seed=settings.seed,
            precision=settings.precision,
        )
        return run_challenger(challenger, select_splits(shards, challenger.clipping), config)

    with server_guard(settings.mlflow_tracking_uri):
        return train_once(settings, parent_run_id, challenger, produce, shards=snapshot["shards"]).summary()


def promote_step(
    parent_run_id: str, snapshot: dict[str, Any], settings: Settings | None = None
) -> dict[str, Any]:
    """Apply the promotion policy on the fixed holdout, then close the session with its compare-view link."""
    from astrospect.data.dataset import select_holdout
    from astrospect.data.store import local_copies
    from astrospect.promote import promote_session
    from astrospect.tracking.server import check_tracking_server, server_guard
    from astrospect.tracking.sessions import end_session

    settings = settings or load_settings()
    with server_guard(settings.mlflow_tracking_uri):
        check_tracking_server(settings.mlflow_tracking_uri)  # in milliseconds, before fetching the holdout
        holdout = select_holdout(local_copies(snapshot["shards"], snapshot["sha256"], settings))
        decision = promote_session(settings, parent_run_id, holdout).summary()
        decision["compare_url"] = end_session(parent_run_id, settings)
    log.info("compare the runs side by side: %s", decision["compare_url"])
    return decision


def deploy_step(champion_version: str, settings: Settings | None = None) -> dict[str, Any]:
    """Deploy the version promotion named champion (a version, not a re-read of the alias)."""
    from astrospect.deploy import deploy_version
    from astrospect.tracking.server import server_guard

    settings = settings or load_settings()
    with server_guard(settings.mlflow_tracking_uri):
        return deploy_version(settings, champion_version).summary()
