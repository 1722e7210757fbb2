"""The scaled-out topology, natively on loopback: what ``docker/compose.yaml`` runs, without Docker.

PostgreSQL (one database for Airflow, one for MLflow), Redis (Celery's broker), an S3 endpoint (moto)
holding the landing zone, the shard store (raw shards, snapshot manifests, quarantine reports) and MLflow's
artifacts, the MLflow server on Postgres + S3,
Airflow 3 on the CeleryExecutor (api-server, scheduler, dag-processor, triggerer, a worker on the
``default`` queue and one on ``gpu``), and the BentoML service once a champion exists.

Every service is configured only through environment variables, the same names ``.env.example`` lists
for the containers. :meth:`Topology.client_environment` is what a client (the test, a person's shell)
exports to talk to it.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet

from astrospect.settings import PROJECT_ROOT, get_logger
from harness.ports import free_port
from harness.topology import stores
from harness.topology.airflow_api import AirflowClient
from harness.topology.processes import ManagedProcess, ServiceError, processes_with_marker

log = get_logger(__name__)

LANDING_BUCKET = "astrospect-landing"
MLFLOW_BUCKET = "astrospect-mlflow"
DATA_BUCKET = "astrospect-data"  # the shard store (astrospect.data.store)
AIRFLOW_ADMIN = "admin"
WORKER_QUEUES = {"worker-default": "default", "worker-gpu": "gpu"}
# Each worker's own disk. The gpu worker shares no folder with the rest: it reads its shards from the shard
# store in S3, as a GPU machine elsewhere would. The default worker's is the clients' (the gate's ledger,
# and the bento that `astrospect serve` runs).
WORKER_HOMES = {"worker-default": "astrospect-home", "worker-gpu": "worker-gpu-home"}
AIRFLOW_STARTUP_TIMEOUT_S = 240.0  # on 2 busy cores each Airflow component imports for 10-40 s


def _venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@dataclass
class TopologyConfig:
    """Ports and secrets of one topology: fresh random secrets, free loopback ports."""

    root: Path
    dags_folder: Path
    ports: dict[str, int]
    postgres_superuser_password: str
    airflow_db: stores.Database
    mlflow_db: stores.Database
    redis_password: str
    s3_access_key: str
    s3_secret_key: str
    airflow_admin_password: str
    fernet_key: str
    api_secret_key: str
    jwt_secret: str
    region: str = "us-east-1"
    # Short timeouts so the fault test sees a dead worker's task retried within a minute, not five.
    task_heartbeat_timeout_s: int = 30
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fresh(
        cls, root: Path, dags_folder: Path, extra_env: Mapping[str, str] | None = None
    ) -> TopologyConfig:
        names = ["postgres", "redis", "s3", "mlflow", "airflow_api", "bentoml", "worker_default_logs",
                 "worker_gpu_logs", "triggerer_logs"]  # fmt: skip
        return cls(
            root=root,
            dags_folder=dags_folder,
            ports={name: free_port() for name in names},
            postgres_superuser_password=secrets.token_urlsafe(16),
            airflow_db=stores.Database("airflow", "airflow", secrets.token_urlsafe(16)),
            mlflow_db=stores.Database("mlflow", "mlflow", secrets.token_urlsafe(16)),
            redis_password=secrets.token_urlsafe(16),
            s3_access_key=secrets.token_hex(8),
            s3_secret_key=secrets.token_urlsafe(24),
            airflow_admin_password=secrets.token_urlsafe(12),
            fernet_key=Fernet.generate_key().decode(),
            api_secret_key=secrets.token_urlsafe(24),
            jwt_secret=secrets.token_urlsafe(32),
            extra_env=dict(extra_env or {}),
        )

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"


class Topology:
    """Start with :meth:`start` (or use :func:`running_topology`), stop with :meth:`stop`; never leaks."""

    def __init__(self, config: TopologyConfig) -> None:
        self.config = config
        self.id = uuid.uuid4().hex
        self.log_dir = config.root / "logs"
        self.services: dict[str, ManagedProcess] = {}
        self.timings_s: dict[str, float] = {}

    # ---- environment: the one place the topology's configuration is written down ----

    def client_environment(self) -> dict[str, str]:
        """What every AstroSpect process and client exports here; ``.env.example`` has the same names."""
        c = self.config
        return {
            "MLFLOW_TRACKING_URI": c.url("mlflow"),
            "AWS_ENDPOINT_URL": c.url("s3"),
            "AWS_ACCESS_KEY_ID": c.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": c.s3_secret_key,
            "AWS_DEFAULT_REGION": c.region,
            "ASTROSPECT_HOME": str(c.root / "astrospect-home"),
            "ASTROSPECT_LANDING": f"s3://{LANDING_BUCKET}/incoming/",
            "ASTROSPECT_STORE": f"s3://{DATA_BUCKET}/",
            "ASTROSPECT_SERVING_HOST": "127.0.0.1",
            "ASTROSPECT_SERVING_PORT": str(c.ports["bentoml"]),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            **c.extra_env,
        }

    def _base_environment(self) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")
        inherited = {name: os.environ[name] for name in keep if name in os.environ}
        return {**inherited, "HOME": str(self.config.root / "home"), "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(PROJECT_ROOT), **self.client_environment()}  # fmt: skip

    def airflow_environment(self) -> dict[str, str]:
        """Airflow's whole configuration as ``AIRFLOW__SECTION__KEY`` variables: no airflow.cfg edits."""
        c = self.config
        db_url = c.airflow_db.sqlalchemy_url(c.ports["postgres"])
        return {
            **self._base_environment(),
            "AIRFLOW_HOME": str(c.root / "airflow"),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(c.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": c.fernet_key,
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "harness.topology.hostname.node_name",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(c.root / "airflow" / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{c.url('airflow_api')}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://:{c.redis_password}@127.0.0.1:{c.ports['redis']}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+"
            + c.airflow_db.sqlalchemy_url(c.ports["postgres"], "postgresql"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",  # one task at a time per worker on 2 cores
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(c.ports["airflow_api"]),
            "AIRFLOW__API__BASE_URL": c.url("airflow_api"),
            "AIRFLOW__API__SECRET_KEY": c.api_secret_key,
            "AIRFLOW__API_AUTH__JWT_SECRET": c.jwt_secret,
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(c.ports["triggerer_logs"]),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(c.task_heartbeat_timeout_s),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        }

    def mlflow_environment(self) -> dict[str, str]:
        c = self.config
        return {
            **self._base_environment(),
            # In the environment, not on the command line, where `ps` would show the password.
            "MLFLOW_BACKEND_STORE_URI": c.mlflow_db.sqlalchemy_url(c.ports["postgres"]),
            "MLFLOW_S3_ENDPOINT_URL": c.url("s3"),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no background job runner: nothing uses it
        }

    # ---- lifecycle ----

    def _add(self, process: ManagedProcess, timeout_s: float) -> ManagedProcess:
        self.services[process.name] = process
        process.start()
        process.wait_healthy(timeout_s)
        return process

    def start(self) -> None:
        started = time.monotonic()
        for sub in ("logs", "home", "airflow", *WORKER_HOMES.values()):
            (self.config.root / sub).mkdir(parents=True, exist_ok=True)
        self._start_stores()
        self._start_mlflow()
        self._start_airflow()
        self.timings_s["startup"] = time.monotonic() - started
        log.info("topology up in %.0f s", self.timings_s["startup"])

    def _start_stores(self) -> None:
        c = self.config
        databases = [c.airflow_db, c.mlflow_db]
        data_dir, account = stores.init_postgres(
            c.root / "postgres", c.postgres_superuser_password, databases
        )
        self._add(stores.postgres_process(data_dir, account, c.ports["postgres"], self.log_dir, self.id), 60)
        stores.create_databases(data_dir, c.ports["postgres"], databases)
        self._add(
            stores.redis_process(c.ports["redis"], c.redis_password, c.root / "redis", self.log_dir, self.id),
            30,
        )
        self._add(stores.s3_process(c.ports["s3"], self.log_dir, self.id), 60)
        s3 = self.s3()
        for bucket in (LANDING_BUCKET, MLFLOW_BUCKET, DATA_BUCKET):
            s3.create_bucket(Bucket=bucket)

    def s3(self) -> Any:
        c = self.config
        return stores.s3_client(c.url("s3"), c.s3_access_key, c.s3_secret_key, c.region)

    def _start_mlflow(self) -> None:
        c = self.config
        url = c.url("mlflow")
        self._add(
            ManagedProcess(
                name="mlflow",
                argv=[
                    _venv_bin("mlflow"), "server",
                    "--artifacts-destination", f"s3://{MLFLOW_BUCKET}/artifacts",
                    "--serve-artifacts",
                    "--host", "127.0.0.1", "--port", str(c.ports["mlflow"]),
                    "--workers", "1",
                ],
                env=self.mlflow_environment(),
                log_path=self.log_dir / "mlflow.log",
                topology_id=self.id,
                health=lambda: _http_ok(f"{url}/health"),
            ),
            timeout_s=180,
        )  # fmt: skip

    def _airflow(self, name: str, *args: str, extra_env: Mapping[str, str] | None = None) -> ManagedProcess:
        return ManagedProcess(
            name=name,
            argv=[_venv_bin("airflow"), *args],
            env={**self.airflow_environment(), "ASTROSPECT_NODE_NAME": name, **(extra_env or {})},
            log_path=self.log_dir / f"{name}.log",
            topology_id=self.id,
        )

    def _start_airflow(self) -> None:
        c = self.config
        passwords = c.root / "airflow" / "passwords.json"
        passwords.write_text(json.dumps({AIRFLOW_ADMIN: c.airflow_admin_password}))
        passwords.chmod(0o600)
        migrate_started = time.monotonic()
        subprocess.run(
            [_venv_bin("airflow"), "db", "migrate"],
            env=self.airflow_environment(),
            check=True,
            stdout=(self.log_dir / "airflow-db-migrate.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.timings_s["airflow_db_migrate"] = time.monotonic() - migrate_started
        api_url = c.url("airflow_api")
        api = self._airflow("api-server", "api-server", "--workers", "1")
        api.health = lambda: _http_ok(f"{api_url}/api/v2/monitor/health")
        components = [api]
        # The scheduler, dag-processor and triggerer heartbeat into the metadata DB; the api-server's
        # public /monitor/health reports each one's latest heartbeat, which is their health check.
        for name, part in (
            ("scheduler", "scheduler"),
            ("dag-processor", "dag_processor"),
            ("triggerer", "triggerer"),
        ):
            process = self._airflow(name, name)
            process.health = functools.partial(_airflow_part_healthy, api_url, part)
            components.append(process)
        components += [self.worker_process(name) for name in WORKER_QUEUES]
        for process in components:  # start all, then wait: they import in parallel
            self.services[process.name] = process
            process.start()
        for process in components:
            process.wait_healthy(AIRFLOW_STARTUP_TIMEOUT_S)

    def worker_process(self, name: str) -> ManagedProcess:
        """A Celery worker consuming one queue; its node name is what task instances record as hostname."""
        queue = WORKER_QUEUES[name]
        logs_port = self.config.ports[f"{name.replace('-', '_')}_logs"]
        process = self._airflow(
            name,
            "celery", "worker", "--queues", queue, "--celery-hostname", f"{name}@%h", "--concurrency", "1",
            extra_env={
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(logs_port),
                "ASTROSPECT_HOME": str(self.config.root / WORKER_HOMES[name]),
            },
        )  # fmt: skip
        broker = self.airflow_environment()["AIRFLOW__CELERY__BROKER_URL"]
        process.health = lambda: _celery_worker_answers(broker, name)
        return process

    def restart_worker(self, name: str) -> ManagedProcess:
        """What ``restart: unless-stopped`` does in compose: a fresh worker under the same name."""
        old = self.services[name]
        if old.running():
            raise ServiceError(f"{name} is still running (pid {old.pid}); kill it before restarting")
        process = self.worker_process(name)
        process.seen_pids |= old.seen_pids
        self.services[name] = process
        process.start()
        process.wait_healthy(AIRFLOW_STARTUP_TIMEOUT_S)
        return process

    def airflow_client(self) -> AirflowClient:
        return AirflowClient(
            self.config.url("airflow_api"), AIRFLOW_ADMIN, self.config.airflow_admin_password
        )

    def start_serving(
        self, argv: list[str], health_path: str = "/readyz", timeout_s: float = 180
    ) -> ManagedProcess:
        """The BentoML service, started with the command the serving module provides."""
        url = self.config.url("bentoml")
        return self._add(
            ManagedProcess(
                name="bentoml",
                argv=argv,
                env=self._base_environment(),
                log_path=self.log_dir / "bentoml.log",
                topology_id=self.id,
                health=lambda: _http_ok(f"{url}{health_path}"),
                cwd=PROJECT_ROOT,
            ),
            timeout_s=timeout_s,
        )

    def status_rows(self) -> list[tuple[str, str, str, str]]:
        """(service, state, pid, ready after) for every service, for the status table."""
        rows = []
        for name, process in self.services.items():
            ready = f"{process.ready_after_s:.1f} s" if process.ready_after_s is not None else "-"
            rows.append((name, process.state(), str(process.pid), ready))
        return rows

    def stop(self) -> list[int]:
        """Stop in reverse start order, then prove no process of this topology is alive; return leftovers."""
        for process in reversed(list(self.services.values())):
            try:
                process.stop()
            except ServiceError as error:  # keep stopping the others; the leftover check reports it
                log.error("stopping %s: %s", process.name, error)
        leftovers = processes_with_marker(self.id)
        for process in self.services.values():
            leftovers += process.descendants()
        return sorted(set(leftovers))


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _airflow_part_healthy(api_url: str, part: str) -> bool:
    try:
        response = requests.get(f"{api_url}/api/v2/monitor/health", timeout=2)
    except requests.RequestException:
        return False
    return response.status_code == 200 and response.json().get(part, {}).get("status") == "healthy"


def _celery_worker_answers(broker_url: str, name: str) -> bool:
    """A Celery ``ping`` to this worker over the broker: it answers only once it consumes its queue."""
    from celery import Celery

    app = Celery(broker=broker_url)
    try:
        replies = app.control.ping(destination=[f"{name}@{_hostname()}"], timeout=1.0)
    finally:
        app.close()
    return bool(replies)


def _hostname() -> str:
    import socket

    return socket.gethostname()


@contextmanager
def running_topology(
    dags_folder: Path,
    root: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    keep_logs_in: Path | None = None,
) -> Iterator[Topology]:
    """Start the whole topology, yield it, and always tear it down; fails if any process survives.

    ``keep_logs_in``: copy every service's log and Airflow's task logs there at teardown (CI artifacts).
    """
    own_root = root is None
    root = root or Path(tempfile.mkdtemp(prefix="astrospect-topology-"))
    root.chmod(0o755)  # the postgres account must reach its cluster directory inside
    topology = Topology(TopologyConfig.fresh(root, dags_folder, extra_env))
    try:
        topology.start()
        yield topology
    finally:
        leftovers = topology.stop()
        if keep_logs_in is not None:
            kept = keep_logs_in / time.strftime(f"%Y%m%dT%H%M%S-{topology.id[:8]}")
            for source, target in (
                (root / "logs", kept / "services"),
                (root / "airflow" / "logs", kept / "airflow"),
            ):
                if source.exists():
                    shutil.copytree(source, target)
            log.info("logs kept in %s", kept)
        if own_root:
            shutil.rmtree(root, ignore_errors=True)
        if leftovers:
            raise ServiceError(f"processes left behind after teardown: {leftovers}")
        log.info("topology %s torn down, no process left", topology.id)
