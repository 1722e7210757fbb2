"""The stores of the scaled-out topology, from Debian's packages and the venv: PostgreSQL, Redis, S3 (moto).

PostgreSQL refuses to run as root, so on a root CI machine the cluster belongs to an unprivileged
account: Debian's ``postgres`` when the package created it, else a system user made with ``useradd``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from harness.ports import free_port
from harness.topology.processes import ManagedProcess, ServiceError, port_open

PG_BIN = Path(os.environ.get("ASTROSPECT_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_FALLBACK_USER = "astrospect-pg"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def postgres_account() -> str:
    """The OS account that owns the cluster: ourselves unless root, else ``postgres`` or a new system user."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    for name in ("postgres", PG_FALLBACK_USER):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_FALLBACK_USER],
        check=True,
    )
    return PG_FALLBACK_USER


@dataclass(frozen=True)
class Database:
    name: str
    user: str
    password: str

    def sqlalchemy_url(self, port: int, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{port}/{self.name}"


def init_postgres(root: Path, superuser_password: str, databases: list[Database]) -> tuple[Path, str]:
    """initdb a throwaway cluster under ``root`` (owned by the postgres account); return (data dir, account)."""
    if not (PG_BIN / "initdb").exists():
        raise ServiceError(f"{PG_BIN / 'initdb'}: not found; install Debian's postgresql package (15)")
    account = postgres_account()
    root.mkdir(parents=True, exist_ok=True)
    entry = pwd.getpwnam(account)
    os.chown(root, entry.pw_uid, entry.pw_gid)
    os.chmod(root, 0o700)
    password_file = root / "superuser.pw"
    password_file.write_text(superuser_password + "\n")
    os.chown(password_file, entry.pw_uid, entry.pw_gid)
    data_dir = root / "data"
    subprocess.run(
        [
            str(PG_BIN / "initdb"),
            "--pgdata", str(data_dir),
            "--username", "postgres",
            "--pwfile", str(password_file),
            "--auth-local", "trust",  # the unix socket lives in a 0700 directory of the account
            "--auth-host", "scram-sha-256",  # every TCP client needs its password
            "--encoding", "UTF8",
            "--no-instructions",
        ],
        check=True,
        user=account,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    password_file.unlink()
    return data_dir, account


def postgres_process(
    data_dir: Path, account: str, port: int, log_dir: Path, topology_id: str
) -> ManagedProcess:
    socket_dir = data_dir.parent
    return ManagedProcess(
        name="postgres",
        argv=[
            str(PG_BIN / "postgres"),
            "-D", str(data_dir),
            "-p", str(port),
            "-k", str(socket_dir),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "max_connections=200",  # scheduler, api-server, two workers, MLflow: each keeps a pool
            "-c", "fsync=off",  # a throwaway cluster: durability is not what this run tests
            "-c", "full_page_writes=off",
        ],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
        log_path=log_dir / "postgres.log",
        topology_id=topology_id,
        health=lambda: _pg_isready(socket_dir, port),
        stop_signal=signal.SIGINT,  # "fast" shutdown: roll back open transactions, exit now
        user=account,
    )  # fmt: skip


def _pg_isready(socket_dir: Path, port: int) -> bool:
    done = subprocess.run(
        [str(PG_BIN / "pg_isready"), "-q", "-h", str(socket_dir), "-p", str(port), "-U", "postgres"],
        check=False,
    )
    return done.returncode == 0


def create_databases(data_dir: Path, port: int, databases: list[Database]) -> None:
    """One role and one database per application (Airflow's metadata, MLflow's tracking store)."""
    for database in databases:
        sql = (
            f"CREATE ROLE \"{database.user}\" LOGIN PASSWORD '{database.password}';\n"
            f'CREATE DATABASE "{database.name}" OWNER "{database.user}";\n'
        )
        subprocess.run(
            [str(PG_BIN / "psql"), "-v", "ON_ERROR_STOP=1", "-q", "-h", str(data_dir.parent), "-p", str(port),
             "-U", "postgres", "-d", "postgres"],
            input=sql.encode(),
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip


def redis_process(
    port: int, password: str, work_dir: Path, log_dir: Path, topology_id: str
) -> ManagedProcess:
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / "redis.conf"  # the password goes in a file, not on a command line `ps` shows
    config.write_text(
        f'bind 127.0.0.1\nport {port}\nrequirepass {password}\nsave ""\nappendonly no\ndir {work_dir}\n'
        "protected-mode yes\n"
    )
    config.chmod(0o600)
    return ManagedProcess(
        name="redis",
        argv=[REDIS_SERVER, str(config)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        log_path=log_dir / "redis.log",
        topology_id=topology_id,
        health=lambda: _redis_ping(port, password),
    )


def _redis_ping(port: int, password: str) -> bool:
    import redis  # installed with Celery's redis transport

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=1).ping())
    except redis.exceptions.ConnectionError:
        return False


def s3_process(port: int, log_dir: Path, topology_id: str) -> ManagedProcess:
    """moto in server mode: a real HTTP S3 endpoint on loopback, in memory."""
    moto_server = Path(sys.executable).parent / "moto_server"
    return ManagedProcess(
        name="s3",
        argv=[str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        log_path=log_dir / "s3.log",
        topology_id=topology_id,
        health=lambda: port_open(port),
    )


def s3_client(endpoint_url: str, access_key: str, secret_key: str, region: str) -> Any:  # botocore S3 client
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
    )


__all__ = [
    "Database",
    "create_databases",
    "free_port",
    "init_postgres",
    "postgres_process",
    "redis_process",
    "s3_client",
    "s3_process",
]
