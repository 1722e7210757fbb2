"""astrospect_nightly: ingest → validate → snapshot → drift → train every challenger → promote → deploy.

Wiring only: every task calls one function of ``astrospect.nightly`` and passes small values (paths, ids,
versions). One training task per challenger of the session, read from the challenger registry
(``astrospect.models.registry``, the set chosen by ``ASTROSPECT_CHALLENGERS``). No TensorFlow, MLflow or Great
Expectations import happens when the scheduler parses this file.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, chain, dag, get_current_context, task

from astrospect.models import registry as challengers
from astrospect.settings import load_settings

ACCEPTED_DATA = Asset("astrospect-accepted-shards", uri="file:///astrospect/accepted")
# Tonight's drift verdict: the event's extra says whether the night drifts, and which features did.
DATA_DRIFT = Asset("astrospect-data-drift", uri="file:///astrospect/drift")
# What each asset event carries in its extra, for the runs and people that watch the assets.
SNAPSHOT_EVENT = ("version", "n_shards", "n_rows", "new")
DRIFT_EVENT = ("status", "drifting", "share_drifted", "drifted_features", "reference_version", "report")
SETTINGS = load_settings()  # the scheduler's environment, read once at parse time
TRAIN_QUEUE = SETTINGS.train_queue
# Retries with exponential back-off for tasks that touch storage or servers (a flaky S3 or MLflow). A fault
# of the machine fails the step and records nothing against the data (astrospect.faults), so the retry takes
# up what is still pending; every task's trigger rule is all_success, so no task after a failed ingest,
# validate or snapshot runs, and no night trains on part of its data.
IO_RETRIES: dict[str, Any] = {
    "retries": SETTINGS.io_retries,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}


@dag(
    dag_id="astrospect_nightly",
    schedule="30 2 * * *",  # 02:30 every night, after the survey's data transfer
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "astrospect", "retries": 1, "retry_delay": timedelta(minutes=1)},
    params={
        "epochs": Param(
            SETTINGS.epochs,  # ASTROSPECT_EPOCHS
            type="integer",
            minimum=1,
            description="Training epochs: the length of every CNN's learning-rate schedule",
        ),
        "force_retrain": Param(
            False, type="boolean", description="Train even if this dataset version was trained before"
        ),
        "landing": Param(
            None,
            type=["null", "string"],
            description="Override the landing zone (s3://bucket/prefix/ or a folder)",
        ),
    },
    tags=["astrospect", "photo-z"],
    doc_md=__doc__,
)
def astrospect_nightly() -> None:
    @task(**IO_RETRIES)
    def ingest(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from astrospect.nightly import ingest_step

        return ingest_step((params or {}).get("landing"))

    @task(**IO_RETRIES)
    def validate() -> dict[str, Any]:
        from astrospect.nightly import validate_step

        return validate_step()

    @task(outlets=[ACCEPTED_DATA], **IO_RETRIES)
    def snapshot() -> dict[str, Any]:
        from astrospect.nightly import snapshot_step

        dataset = snapshot_step()
        extra = {key: dataset[key] for key in SNAPSHOT_EVENT}
        get_current_context()["outlet_events"][ACCEPTED_DATA].extra = extra
        return dataset

    @task(outlets=[DATA_DRIFT], **IO_RETRIES)
    def drift(dataset: dict[str, Any]) -> dict[str, Any]:
        from astrospect.nightly import drift_step

        context = get_current_context()
        verdict = drift_step(dataset, airflow_run_id=context["run_id"])
        context["outlet_events"][DATA_DRIFT].extra = {k: verdict[k] for k in DRIFT_EVENT if k in verdict}
        return verdict

    @task.short_circuit
    def anything_to_train(
        dataset: dict[str, Any], drifted: dict[str, Any], params: dict[str, Any] | None = None
    ) -> bool:
        from astrospect.nightly import should_train

        return should_train(dataset, force=bool((params or {}).get("force_retrain")), drift=drifted)

    @task(**IO_RETRIES)
    def start_session(dataset: dict[str, Any]) -> str:
        from astrospect.nightly import start_session_step

        return start_session_step(dataset, airflow_run_id=get_current_context()["run_id"])

    @task(retries=2, retry_delay=timedelta(seconds=30))
    def train(
        challenger: str, parent_run_id: str, dataset: dict[str, Any], params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        from astrospect.nightly import train_step

        return train_step(challenger, parent_run_id, dataset, epochs=int((params or {})["epochs"]))

    @task(multiple_outputs=True, **IO_RETRIES)
    def promote(parent_run_id: str, dataset: dict[str, Any]) -> dict[str, Any]:
        from astrospect.nightly import promote_step

        return promote_step(parent_run_id, dataset)

    @task(**IO_RETRIES)
    def deploy(champion_version: str) -> dict[str, Any]:
        from astrospect.nightly import deploy_step

        return deploy_step(champion_version)

    dataset = snapshot()
    chain(ingest(), validate(), dataset)
    parent = start_session(dataset)
    anything_to_train(dataset, drift(dataset)) >> parent
    trained = [
        # CNNs go to the `gpu` queue; baselines need no GPU and run on the default queue.
        train.override(
            task_id=f"train_{challenger.name}", **({} if challenger.baseline else {"queue": TRAIN_QUEUE})
        )(challenger.name, parent, dataset)
        for challenger in challengers.for_session(SETTINGS.challengers)
    ]
    promotion = promote(parent, dataset)
    trained >> promotion  # promotion reads what training logged in MLflow, not the tasks' return values
    deploy(promotion["champion_after"])


astrospect_nightly()
