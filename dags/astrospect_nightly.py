"""astrospect_nightly: ingest → validate → snapshot → train full ∥ clipped → promote → deploy.

Wiring only: every task calls one function of ``astrospect.nightly`` and passes small values (paths, ids,
versions). No TensorFlow, MLflow or Great Expectations import happens when the scheduler parses this file.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task

ACCEPTED_DATA = Asset("astrospect-accepted-shards", uri="file:///astrospect/accepted")
TRAIN_QUEUE = os.environ.get("ASTROSPECT_TRAIN_QUEUE", "gpu")
# Retries with exponential back-off for tasks that touch storage or servers (a flaky S3 or MLflow).
IO_RETRIES: dict[str, Any] = {
    "retries": int(os.environ.get("ASTROSPECT_IO_RETRIES", "3")),
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
            int(os.environ.get("ASTROSPECT_EPOCHS", "100")),
            type="integer",
            minimum=1,
            description="Maximum training epochs",
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

    @task
    def validate(ingested: dict[str, Any]) -> dict[str, Any]:
        from astrospect.nightly import validate_step

        return validate_step()

    @task(outlets=[ACCEPTED_DATA], **IO_RETRIES)
    def snapshot(validated: dict[str, Any]) -> dict[str, Any]:
        from astrospect.nightly import snapshot_step

        return snapshot_step()

    @task.short_circuit
    def anything_to_train(dataset: dict[str, Any], params: dict[str, Any] | None = None) -> bool:
        from astrospect.nightly import should_train

        return should_train(dataset, force=bool((params or {}).get("force_retrain")))

    @task(**IO_RETRIES)
    def start_session(dataset: dict[str, Any]) -> str:
        from astrospect.nightly import start_session_step

        return start_session_step(dataset, airflow_run_id=get_current_context()["run_id"])

    @task(queue=TRAIN_QUEUE, retries=2, retry_delay=timedelta(seconds=30))
    def train(
        variant: str, parent_run_id: str, dataset: dict[str, Any], params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        from astrospect.nightly import train_step

        return train_step(variant, parent_run_id, dataset, epochs=int((params or {})["epochs"]))

    @task(**IO_RETRIES)
    def promote(parent_run_id: str, dataset: dict[str, Any], trained: list[dict[str, Any]]) -> dict[str, Any]:
        from astrospect.nightly import promote_step

        return promote_step(parent_run_id, dataset)

    @task(**IO_RETRIES)
    def deploy(promotion: dict[str, Any]) -> dict[str, Any]:
        from astrospect.nightly import deploy_step

        return deploy_step(promotion)

    dataset = snapshot(validate(ingest()))
    gate = anything_to_train(dataset)
    parent = start_session(dataset)
    gate >> parent
    full = train.override(task_id="train_full")("full", parent, dataset)
    clipped = train.override(task_id="train_clipped")("clipped", parent, dataset)
    deploy(promote(parent, dataset, [full, clipped]))


astrospect_nightly()
