"""The scaled-out topology for real, natively on loopback (docs/how-to/scale-out.md).

One topology for the module: PostgreSQL (Airflow's and MLflow's databases), Redis (Celery's broker), an
S3 endpoint (moto: the landing zone and MLflow's artifacts), the MLflow server on Postgres + S3, Airflow 3
on the CeleryExecutor (api-server, scheduler, dag-processor, triggerer, a worker on ``default``, a worker
on ``gpu``) and, once a champion exists, the BentoML service. The real ``astrospect_nightly`` DAG is
triggered through Airflow's REST API. Then the fault test kills the ``gpu`` worker mid-training.

Sizes are tiny so the whole module takes a few minutes on 2 cores: 1,000 simulated galaxies, 3 epochs
(10 in the fault run, to leave time to kill the worker while it trains). Teardown proves that no process
of the topology survives; every service's log is kept when a test fails.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import requests

from harness.topology.airflow_api import AirflowApiError, AirflowClient, TaskRow
from harness.topology.cluster import (
    DATA_BUCKET,
    LANDING_BUCKET,
    MLFLOW_BUCKET,
    WORKER_HOMES,
    Topology,
    running_topology,
)
from harness.topology.processes import wait_until

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "astrospect_nightly"
TRAIN_TASKS = {"train_full", "train_clipped", "train_cnn-ebv", "train_pdf"}  # the CNNs: on the gpu queue
BASELINE_TASKS = {
    "train_baseline-knn-full",
    "train_baseline-knn-clipped",
    "train_baseline-nz-full",
    "train_baseline-local-linear",
    "train_rail-dnf",
}
MODEL_NAME = "astrospect-photoz-integration"
N_GALAXIES = 1000
SHARD_SIZE = 500
NIGHTLY_EPOCHS = 3
FAULT_EPOCHS = 10
RUN_TIMEOUT_S = 600

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]


def _print_table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    line = "  ".join(f"{{:<{width}}}" for width in widths)
    print(f"\n{title}\n" + line.format(*header) + "\n" + line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*(str(cell) for cell in row)))


def _print_services(topology: Topology, title: str) -> None:
    _print_table(title, ("service", "state", "pid", "ready after"), topology.status_rows())


def _print_tasks(rows: list[TaskRow], title: str) -> None:
    order = ["ingest", "validate", "snapshot", "drift", "anything_to_train", "start_session", "train_full",
             "train_clipped", "train_pdf", "train_baseline-knn-full", "train_baseline-knn-clipped",
             "train_baseline-nz-full", "train_baseline-local-linear", "train_rail-dnf", "promote", "deploy"]  # fmt: skip
    rows = sorted(rows, key=lambda row: order.index(row.task_id) if row.task_id in order else 99)
    table = [
        (row.task_id, row.state or "-", row.queue or "-", row.hostname or "-", str(row.try_number),
         f"{row.duration_s:.1f} s" if row.duration_s else "-")
        for row in rows
    ]  # fmt: skip
    _print_table(title, ("task", "state", "queue", "worker (hostname)", "try", "duration"), table)


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    assert (ROOT / "dags" / f"{DAG_ID}.py").exists(), "the nightly DAG is missing"
    started = time.monotonic()
    extra_env = {
        "ASTROSPECT_EPOCHS": str(NIGHTLY_EPOCHS),
        "ASTROSPECT_MODEL_NAME": MODEL_NAME,
        "ASTROSPECT_EXPERIMENT": "astrospect-integration",
        "ASTROSPECT_TRAIN_QUEUE": "gpu",
        # New Dags start unpaused, as in production: the scheduler makes its catch-up run at once.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }
    logs = ROOT / "test-artifacts" / "topology"  # every service's log and the task logs, kept for CI
    with running_topology(ROOT / "dags", extra_env=extra_env, keep_logs_in=logs) as running:
        _print_services(running, f"services up after {time.monotonic() - started:.0f} s")
        yield running
        _print_services(running, "services before teardown")
    print(f"\ntopology torn down, no process left; module took {time.monotonic() - started:.0f} s")


@pytest.fixture(scope="module")
def airflow(topology: Topology) -> AirflowClient:
    client = topology.airflow_client()
    wait_until(lambda: _dag_parsed(client), timeout_s=180, what=f"{DAG_ID} parsed by the dag-processor")
    assert client.import_errors() == [], client.import_errors()
    # Unpaused at creation, the Dag gets the scheduler's catch-up run for the last night at once. With an
    # empty landing zone it must short-circuit before training; shards are uploaded only after it.
    wait_until(lambda: bool(client.dag_runs(DAG_ID)), timeout_s=120, what="the scheduler's catch-up run")
    for run in client.dag_runs(DAG_ID):
        finished = client.wait_for_run(DAG_ID, run["dag_run_id"], RUN_TIMEOUT_S)
        states = {row.task_id: row.state for row in client.task_instances(DAG_ID, run["dag_run_id"])}
        print(
            f"\nscheduler's catch-up run {run['dag_run_id']}: {finished['state']}, training {states.get('train_full')}"
        )
        assert states["train_full"] == "skipped", states
    return client


def _dag_parsed(client: AirflowClient) -> bool:
    try:
        client.dag(DAG_ID)
    except AirflowApiError as error:
        if error.status == 404:  # until the dag-processor has parsed and serialized it
            return False
        raise
    return True


@pytest.fixture(scope="module")
def landing(topology: Topology, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Simulated shards in the S3 landing zone; returns {key: ETag} as uploaded."""
    from astrospect.simulate import synthesize

    started = time.monotonic()
    shards = synthesize(tmp_path_factory.mktemp("landing"), N_GALAXIES, seed=808, shard_size=SHARD_SIZE,
                        lrg_fraction=0.1, workers=1)  # fmt: skip
    s3 = topology.s3()
    for shard in shards:
        s3.upload_file(str(shard), LANDING_BUCKET, f"incoming/{shard.name}")
    print(f"\n{len(shards)} simulated shards ({N_GALAXIES} galaxies) in s3://{LANDING_BUCKET}/incoming/ "
          f"after {time.monotonic() - started:.0f} s")  # fmt: skip
    return _listing(topology, LANDING_BUCKET, "incoming/")


def _listing(topology: Topology, bucket: str, prefix: str = "") -> dict[str, str]:
    s3 = topology.s3()
    keys: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update({item["Key"]: item["ETag"] for item in page.get("Contents", [])})
    return keys


def _session_run_id(airflow: AirflowClient, run_id: str) -> str:
    value = airflow.xcom(DAG_ID, run_id, "start_session")
    if isinstance(value, str) and value.startswith('"'):
        value = json.loads(value)
    assert isinstance(value, str) and len(value) == 32, f"start_session returned {value!r}"
    return value


def _mlflow(topology: Topology) -> Any:
    from mlflow import MlflowClient

    url = topology.config.url("mlflow")
    return MlflowClient(tracking_uri=url, registry_uri=url)  # never the process-global registry


def _versions_of_session(mlflow: Any, session_run_id: str) -> dict[str, list[str]]:
    by_variant: dict[str, list[str]] = {}
    for version in mlflow.search_model_versions(f"name = '{MODEL_NAME}'"):
        if version.tags.get("session_run_id") == session_run_id:
            by_variant.setdefault(version.tags.get("challenger", "?"), []).append(str(version.version))
    return by_variant


def _attempts(mlflow: Any, session_run_id: str, challenger: str) -> list[Any]:
    """Every child run of ``challenger`` in the session, whatever its status, oldest first."""
    parent = mlflow.get_run(session_run_id)
    return list(
        mlflow.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{session_run_id}' and tags.challenger = '{challenger}'",
            order_by=["attributes.start_time ASC"],
        )
    )


def _finished_children(mlflow: Any, session_run_id: str) -> dict[str, list[str]]:
    """The session's FINISHED CNN child runs by challenger (baselines and failed attempts left out)."""
    from astrospect.tracking import tags

    parent = mlflow.get_run(session_run_id)
    runs = mlflow.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{session_run_id}' and attributes.status = 'FINISHED'",
    )
    by_variant: dict[str, list[str]] = {}
    for run in runs:
        if run.data.tags.get(tags.TAG_ROLE) == tags.ROLE_CNN:
            by_variant.setdefault(run.data.tags[tags.TAG_CHALLENGER], []).append(run.info.run_id)
    return by_variant


def _check_queues_and_workers(rows: list[TaskRow]) -> None:
    for row in rows:
        if row.state != "success":
            continue
        expected_queue = "gpu" if row.task_id in TRAIN_TASKS else "default"
        assert row.queue == expected_queue, f"{row.task_id} ran from queue {row.queue}"
        assert row.hostname == f"worker-{expected_queue}", f"{row.task_id} ran on {row.hostname}"


def test_nightly_run_through_the_rest_api_on_celery_queues(
    topology: Topology, airflow: AirflowClient, landing: dict[str, str], tmp_path: Path
) -> None:
    started = time.monotonic()
    run_id = f"integration-nightly-{int(time.time())}"
    airflow.trigger(DAG_ID, run_id, {"epochs": NIGHTLY_EPOCHS})
    run = airflow.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT_S)
    rows = airflow.task_instances(DAG_ID, run_id)
    _print_tasks(rows, f"DAG run {run_id}: {run['state']} after {time.monotonic() - started:.0f} s")
    assert run["state"] == "success", _failures(topology, run_id, rows)
    states = {row.task_id: row.state for row in rows}
    assert all(state == "success" for state in states.values()), states
    assert set(states) >= TRAIN_TASKS | BASELINE_TASKS, sorted(states)  # one task per session challenger
    _check_queues_and_workers(rows)
    assert {row.hostname for row in rows} == {"worker-default", "worker-gpu"}

    # MLflow on Postgres + S3: one session, one finished child and one model version per variant.
    mlflow = _mlflow(topology)
    session = _session_run_id(airflow, run_id)
    children = _finished_children(mlflow, session)
    assert {variant: len(ids) for variant, ids in children.items()} == {
        "full": 1,
        "clipped": 1,
        "cnn-ebv": 1,
        "pdf": 1,
    }
    for variant, (child_id,) in children.items():
        metrics = mlflow.get_run(child_id).data.metrics
        assert math.isfinite(metrics["mae"]) and 0 < metrics["mae"] < 1, (variant, metrics.get("mae"))
        assert any(key.startswith("system/") for key in metrics), f"{variant}: no system metrics"
    versions = _versions_of_session(mlflow, session)
    assert {variant: len(numbers) for variant, numbers in versions.items()} == {
        "full": 1,
        "clipped": 1,
        "cnn-ebv": 1,
        "pdf": 1,
    }
    champion = mlflow.get_model_version_by_alias(MODEL_NAME, "champion")
    assert str(champion.version) in {number for numbers in versions.values() for number in numbers}

    artifacts = _listing(topology, MLFLOW_BUCKET)
    for variant, (child_id,) in children.items():
        assert any(child_id in key and key.endswith(".png") for key in artifacts), (
            f"{variant}: no plots in S3"
        )
    assert sum(key.endswith("/MLmodel") for key in artifacts) >= 2, "registered models' files not in S3"
    assert _listing(topology, LANDING_BUCKET, "incoming/") == landing, "the landing zone changed"
    _check_shard_store(topology, airflow, run_id, landing)
    _print_table(
        "MLflow (Postgres + S3)",
        ("what", "value"),
        [("session run", session), *[(f"child {v}", ids[0]) for v, ids in children.items()],
         ("champion", f"{MODEL_NAME} v{champion.version} (run {champion.run_id})"),
         ("objects in s3://" + MLFLOW_BUCKET, str(len(artifacts)))],
    )  # fmt: skip

    # The champion over HTTP: the bento that the deploy task built, served by `astrospect serve`.
    serving = topology.start_serving([str(ROOT / ".venv" / "bin" / "astrospect"), "serve"])
    url = topology.config.url("bentoml")
    metadata = requests.post(f"{url}/metadata", json={}, timeout=30).json()
    assert metadata["model_version"] == str(champion.version), metadata
    with h5py.File(_landing_shard(topology, min(landing), tmp_path), "r") as shard:
        images = shard["images"][:4].astype(np.float32)
        truth = shard["specz_redshift"][:4]
    answer = requests.post(  # the binary path: the shard's band-first cutouts as they are, 32x32 or 64x64
        f"{url}/predict_binary",
        data=images.astype("<f4").tobytes(),
        headers={
            "content-type": "application/octet-stream",
            "Cutout-Shape": ",".join(map(str, images.shape)),
        },
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    redshift = np.asarray(answer.json()["redshift"])
    assert (
        redshift.shape == (4,)
        and np.all(np.isfinite(redshift))
        and np.all((redshift > -0.1) & (redshift < 1.0))
    )
    print(f"\nchampion v{champion.version} served at {url}: z_pred {np.round(redshift, 3)} vs z_spec {np.round(truth, 3)}"
          f" (ready after {serving.ready_after_s:.0f} s)")  # fmt: skip
    _print_services(topology, "services after the nightly run")


def _check_shard_store(
    topology: Topology, airflow: AirflowClient, run_id: str, landing: dict[str, str]
) -> None:
    """The shards live in S3, and the gpu worker trained from its own verified copies of them: no folder
    is shared between the workers."""
    snapshot = airflow.xcom(DAG_ID, run_id, "snapshot")
    if isinstance(snapshot, str):
        snapshot = json.loads(snapshot)
    store = _listing(topology, DATA_BUCKET)
    raw = sorted(key for key in store if key.startswith("raw/"))
    assert len(raw) == len(landing), f"{len(landing)} landed shards but {len(raw)} in the store's raw/"
    assert sorted(snapshot["shards"]) == [f"s3://{DATA_BUCKET}/{key}" for key in raw], snapshot["shards"]
    assert f"snapshots/{snapshot['version']}.json" in store and "snapshots/LATEST" in store, sorted(store)
    gpu_home = topology.config.root / WORKER_HOMES["worker-gpu"]
    cached = sorted(path.name for path in (gpu_home / "cache").iterdir())
    assert cached == sorted(f"{sha}.h5" for sha in snapshot["sha256"]), cached
    for folder in ("raw", "accepted", "quarantine", "snapshots", "ledger.sqlite"):
        assert not (gpu_home / folder).exists(), f"the gpu worker has {folder}: it should only read S3"
    _print_table(
        f"shard store s3://{DATA_BUCKET}/ (the gpu worker's own copies in {gpu_home.name}/cache)",
        ("what", "value"),
        [("raw shards", str(len(raw))), ("snapshot", snapshot["version"][:12]),
         ("cached on worker-gpu", str(len(cached)))],
    )  # fmt: skip


def _failures(topology: Topology, run_id: str, rows: list[TaskRow]) -> str:
    """The error lines of each failed task's last attempt, so a failed run says why."""
    lines = []
    for row in rows:
        if row.state != "failed":
            continue
        log_text = _task_log(topology, run_id, row.task_id, max(row.try_number, 1))
        errors = []
        for entry in _log_entries(log_text):
            if entry.get("level") in {"error", "critical"}:
                details = entry.get("error_detail") or [{}]
                last = details[-1] if isinstance(details, list) and details else {}
                reason = f"{last.get('exc_type', '')}: {str(last.get('exc_value', ''))[:300]}"
                errors.append(f"{entry.get('event')} {reason}")
        lines.append(f"{row.task_id} (try {row.try_number}): " + " | ".join(errors[-2:]))
    return "\n".join(lines) or "no failed task"


def _log_entries(text: str) -> list[dict[str, Any]]:
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _landing_shard(topology: Topology, key: str, folder: Path) -> Path:
    path = folder / Path(key).name
    topology.s3().download_file(LANDING_BUCKET, key, str(path))
    return path


def _task_log(topology: Topology, run_id: str, task_id: str, attempt: int) -> str:
    path = (topology.config.root / "airflow" / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
            / f"task_id={task_id}" / f"attempt={attempt}.log")  # fmt: skip
    return path.read_text(errors="replace") if path.exists() else ""


def test_gpu_worker_killed_mid_training_is_retried_without_duplicates(
    topology: Topology, airflow: AirflowClient, landing: dict[str, str]
) -> None:
    mlflow = _mlflow(topology)
    versions_before = {str(v.version) for v in mlflow.search_model_versions(f"name = '{MODEL_NAME}'")}
    artifacts_before = _listing(topology, MLFLOW_BUCKET)
    store_before = _listing(topology, DATA_BUCKET)
    assert versions_before and artifacts_before, "runs after the nightly test, on its MLflow state"
    run_id = f"integration-fault-{int(time.time())}"
    airflow.trigger(DAG_ID, run_id, {"epochs": FAULT_EPOCHS, "force_retrain": True})

    # Wait until a training task is inside its epochs on the gpu worker, then kill that worker outright.
    victim_task: dict[str, str] = {}

    def training_in_progress() -> bool:
        for row in airflow.task_instances(DAG_ID, run_id):
            running = row.task_id in TRAIN_TASKS and row.state == "running" and row.try_number == 1
            if running and "epoch 1/" in _task_log(topology, run_id, row.task_id, 1):
                victim_task["task_id"] = row.task_id
                return True
        return False

    wait_until(
        training_in_progress, timeout_s=RUN_TIMEOUT_S, what="a training task's first epoch", interval_s=0.5
    )
    task_id = victim_task["task_id"]
    killed = topology.services["worker-gpu"].kill_hard()
    state_at_kill = {row.task_id: row.state for row in airflow.task_instances(DAG_ID, run_id)}[task_id]
    print(f"\nkilled worker-gpu (pids {killed}) while {task_id} was {state_at_kill} in its training epochs")
    assert state_at_kill == "running"
    # What compose's `restart: unless-stopped` does: a new worker on the same queue, same node name.
    topology.restart_worker("worker-gpu")

    run = airflow.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT_S)
    rows = airflow.task_instances(DAG_ID, run_id)
    _print_tasks(rows, f"DAG run {run_id} (gpu worker killed during {task_id}): {run['state']}")
    tries = airflow.task_tries(DAG_ID, run_id, task_id)
    _print_table(f"tries of {task_id}", ("try", "state", "worker (hostname)"),
                 [(str(t["try_number"]), str(t["state"]), str(t["hostname"])) for t in tries])  # fmt: skip
    assert run["state"] == "success", _failures(topology, run_id, rows)
    _check_queues_and_workers(rows)
    by_try = {int(t["try_number"]): t for t in tries}
    assert by_try[1]["state"] == "failed" and by_try[1]["hostname"] == "worker-gpu", by_try[1]
    assert max(by_try) >= 2 and by_try[max(by_try)]["state"] == "success", tries

    # No duplicate: one finished child and one new registered version per variant for this session.
    session = _session_run_id(airflow, run_id)
    children = _finished_children(mlflow, session)
    assert {variant: len(ids) for variant, ids in children.items()} == {
        "full": 1,
        "clipped": 1,
        "cnn-ebv": 1,
        "pdf": 1,
    }
    versions = _versions_of_session(mlflow, session)
    assert {variant: len(numbers) for variant, numbers in versions.items()} == {
        "full": 1,
        "clipped": 1,
        "cnn-ebv": 1,
        "pdf": 1,
    }
    versions_after = {str(v.version) for v in mlflow.search_model_versions(f"name = '{MODEL_NAME}'")}
    assert versions_after - versions_before == {n for numbers in versions.values() for n in numbers}

    # The killed try's run is kept, FAILED, with the epochs it finished; the retry's run is the finished one.
    from astrospect.tracking import tags

    attempts = _attempts(mlflow, session, task_id.removeprefix("train_"))
    killed_run, retry_run = attempts[0], attempts[-1]
    print(f"\nruns of {task_id}: " + ", ".join(f"{r.info.run_id[:8]} {r.info.status}" for r in attempts))
    assert [r.info.status for r in attempts] == ["FAILED"] * (len(attempts) - 1) + ["FINISHED"], attempts
    assert [retry_run.info.run_id] == children[task_id.removeprefix("train_")]
    assert "left RUNNING" in killed_run.data.tags[tags.TAG_ERROR]
    assert killed_run.data.tags[tags.TAG_SUPERSEDED_BY] == attempts[1].info.run_id
    epochs_done = [m.step for m in mlflow.get_metric_history(killed_run.info.run_id, "val_loss")]
    assert epochs_done and epochs_done == list(range(1, len(epochs_done) + 1)), epochs_done
    assert len(epochs_done) < FAULT_EPOCHS

    # Nothing lost or overwritten in S3: every object from before is still there with the same content.
    artifacts_after = _listing(topology, MLFLOW_BUCKET)
    changed = {key for key, etag in artifacts_before.items() if artifacts_after.get(key) != etag}
    assert changed == set(), f"objects lost or overwritten in s3://{MLFLOW_BUCKET}: {sorted(changed)[:5]}"
    assert _listing(topology, LANDING_BUCKET, "incoming/") == landing, "the landing zone changed"
    assert _listing(topology, DATA_BUCKET) == store_before, f"s3://{DATA_BUCKET} changed during the fault run"
    print(f"\nafter the fault: versions {sorted(versions_after - versions_before, key=int)} new, "
          f"{len(artifacts_after) - len(artifacts_before)} new objects in s3://{MLFLOW_BUCKET}, none lost")  # fmt: skip
