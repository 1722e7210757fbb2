"""A small client for Airflow 3's public REST API (``/api/v2``), authenticated the documented way.

The simple auth manager issues a JWT at ``POST /auth/token`` for a username and password; every later call
sends it as ``Authorization: Bearer``. Only what the topology needs: trigger a Dag run, follow it, list
its task instances (state, queue, hostname, try number).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

from astrospect.settings import get_logger

log = get_logger(__name__)

FINISHED_RUN_STATES = {"success", "failed"}


class AirflowApiError(RuntimeError):
    """A REST call that failed: the message names the method, the URL, the status and Airflow's answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    state: str | None
    queue: str | None
    hostname: str | None
    try_number: int
    duration_s: float | None


class AirflowClient:
    def __init__(self, base_url: str, username: str, password: str, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        token = self._call(
            "POST", "/auth/token", json={"username": username, "password": password}, auth=False
        )
        self.session.headers["Authorization"] = f"Bearer {token['access_token']}"

    def _call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        url = f"{self.base_url}{path}"
        response = self.session.request(method, url, timeout=self.timeout_s, **kwargs)
        if response.status_code >= 400:
            raise AirflowApiError(
                f"{method} {url}: HTTP {response.status_code}: {response.text[:500]}", response.status_code
            )
        return response.json()

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/api/v2/monitor/health")
        return result

    def dag(self, dag_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/api/v2/dags/{dag_id}")
        return result

    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def import_errors(self) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = self._call("GET", "/api/v2/importErrors")["import_errors"]
        return errors

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/v2/dags/{dag_id}/dagRuns``: a manual run now (no logical date, as Airflow 3 allows)."""
        run: dict[str, Any] = self._call(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": None, "conf": conf},
        )
        log.info("triggered %s run %s (state %s)", dag_id, run["dag_run_id"], run["state"])
        return run

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        return run

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskRow]:
        body = self._call(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}
        )
        return [
            TaskRow(
                task_id=item["task_id"],
                state=item["state"],
                queue=item["queue"],
                hostname=item["hostname"] or None,
                try_number=int(item["try_number"]),
                duration_s=item["duration"],
            )
            for item in body["task_instances"]
        ]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """A task's XCom value (what a TaskFlow task returned, by default)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self._call("GET", path)["value"]

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"]
        return runs

    def task_tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every try of one task (``/tries``), so a retry shows which worker ran each attempt."""
        body = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
        tries: list[dict[str, Any]] = body["task_instances"]
        return tries

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float, poll_s: float = 3.0) -> dict[str, Any]:
        """Poll until the run succeeds or fails; log each change of the task states on the way."""
        started = time.monotonic()
        last_states: dict[str, str | None] = {}
        while True:
            run = self.dag_run(dag_id, run_id)
            states = {row.task_id: row.state for row in self.task_instances(dag_id, run_id)}
            if states != last_states:
                elapsed = time.monotonic() - started
                log.info(
                    "%5.0f s  run %s: %s",
                    elapsed,
                    run["state"],
                    ", ".join(f"{k}={v}" for k, v in sorted(states.items())),
                )
                last_states = states
            if run["state"] in FINISHED_RUN_STATES:
                return run
            if time.monotonic() - started > timeout_s:
                raise AirflowApiError(
                    f"{dag_id} run {run_id}: still {run['state']} after {timeout_s:.0f} s; tasks {states}"
                )
            time.sleep(poll_s)
