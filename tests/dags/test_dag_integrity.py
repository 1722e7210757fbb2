"""The DAG file is wiring only: it parses, has the expected graph, and imports nothing heavy.

What keeps parsing fast is checked by what it loads, not by a stopwatch: after parsing, in a fresh
interpreter with Airflow loaded as the dag-processor has it, none of HEAVY may be in ``sys.modules``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
HEAVY = (
    "tensorflow",
    "keras",
    "mlflow",
    "great_expectations",
    "bentoml",
    "galsim",
    "kcorrect",
    "sklearn",
    "h5py",
    # The scientific stack under them: not even the astrospect modules the DAG names may pull these in.
    "numpy",
    "pandas",
    "scipy",
    "matplotlib",
    "astropy",
    "boto3",
)

# Runs in a fresh interpreter so nothing this test session imported can hide a heavy import.
PROBE = """
import json, sys
import airflow.sdk  # the dag-processor has Airflow loaded before it parses a file
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(sys.argv[1])
dag = bag.dags.get("astrospect_nightly")
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "heavy": [m for m in sys.argv[2].split(",") if m in sys.modules],
    "graph": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} if dag else None,
    "queues": {t.task_id: t.queue for t in dag.tasks} if dag else None,
    "retries": {t.task_id: [t.retries, t.retry_exponential_backoff] for t in dag.tasks} if dag else None,
    "trigger_rules": {t.task_id: getattr(t.trigger_rule, "value", t.trigger_rule) for t in dag.tasks} if dag else None,
    "catchup": dag.catchup if dag else None,
    "max_active_runs": dag.max_active_runs if dag else None,
    "schedule": dag.timetable.expression if dag else None,
    "params": sorted(dag.params.keys()) if dag else None,
}))
"""


def parse_dags(env: dict[str, str]) -> dict:
    """Parse the DAG folder in a fresh interpreter with ``env``; what PROBE prints."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO / "dags"), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path_factory.mktemp("airflow_home"))}
    env.pop("ASTROSPECT_IO_RETRIES", None)  # the retry policy under test is the default one
    env.pop("ASTROSPECT_CHALLENGERS", None)  # the default session
    return parse_dags(env)


def test_dag_imports_without_errors(parsed: dict) -> None:
    assert parsed["errors"] == {}
    assert parsed["graph"] is not None


def test_no_heavy_module_is_imported_at_parse_time(parsed: dict) -> None:
    assert parsed["heavy"] == []


def test_task_graph(parsed: dict) -> None:
    """One training task per challenger of the default session; ordering-only edges carry no data."""
    training = [
        "train_baseline-knn-clipped",
        "train_baseline-knn-full",
        "train_baseline-local-linear",
        "train_baseline-nz-full",
        "train_clipped",
        "train_cnn-ebv",
        "train_full",
        "train_pdf",
        "train_rail-dnf",
    ]
    assert parsed["graph"] == {
        "ingest": ["validate"],
        "validate": ["snapshot"],
        "snapshot": ["anything_to_train", "drift", "promote", "start_session", *training],
        "drift": ["anything_to_train"],
        "anything_to_train": ["start_session"],
        "start_session": ["promote", *training],
        **{task: ["promote"] for task in training},
        "promote": ["deploy"],
        "deploy": [],
    }


def test_the_challengers_setting_chooses_the_training_tasks(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "ASTROSPECT_CHALLENGERS": "clipped,baseline-knn-clipped",
    }
    graph = parse_dags(env)["graph"]
    assert sorted(task for task in graph if task.startswith("train_")) == [
        "train_baseline-knn-clipped",
        "train_clipped",
    ]


def test_training_goes_to_the_gpu_queue_and_io_retries_back_off(parsed: dict) -> None:
    cnns = ("train_full", "train_clipped", "train_cnn-ebv", "train_pdf")
    assert {parsed["queues"][t] for t in cnns} == {"gpu"}
    assert parsed["queues"]["train_baseline-knn-full"] == "default"  # a k-NN needs no GPU
    assert {parsed["queues"][t] for t in parsed["queues"] if t not in cnns} == {"default"}
    for io_task in ("ingest", "validate", "snapshot", "drift", "start_session", "promote", "deploy"):
        retries, backoff = parsed["retries"][io_task]
        assert retries >= 2 and backoff > 1


def test_a_failed_step_stops_the_night(parsed: dict) -> None:
    """Issue 31: an environment fault fails ingest, validate or snapshot; nothing after it may run (no training
    on part of a night), which is Airflow's all_success rule on every task."""
    assert set(parsed["trigger_rules"].values()) == {"all_success"}
    graph = parsed["graph"]

    def downstream(task: str) -> set[str]:
        found, todo = set(), [task]
        while todo:
            for child in graph[todo.pop()]:
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found

    trains = {task for task in graph if task.startswith("train_")}
    for step in ("ingest", "validate", "snapshot"):
        assert trains <= downstream(step), f"training does not wait for {step}"


def test_schedule_and_run_policy(parsed: dict) -> None:
    assert parsed["catchup"] is False
    assert parsed["max_active_runs"] == 1
    assert parsed["schedule"] == "30 2 * * *"
    assert parsed["params"] == ["epochs", "force_retrain", "landing"]
