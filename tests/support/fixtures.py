"""Shared fixtures of the integration tests, a plugin of tests/conftest.py (imports inside the fixtures, so the
fast tests do not pay for moto, requests or MLflow). What is expensive is started once per test session and
shared; tests/conftest.py lists these fixtures and what each gives.

Each serving module names its ``stack`` (``point_stack``, ``pdf_stack`` or a module's own), and ``server``,
``champion`` take it from there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import requests

    from tests.support.serving_stack import Champion, Stack

BUCKETS = ("landing", "shard-store")  # the landing zone and the shard store (astrospect.data.store)
# The shared served champions' limits (ASTROSPECT_SERVING_*): small, so "too many" and "too large" stay small.
SERVING_MAX_CUTOUTS = 8
SERVING_MAX_BODY_MB = 2
SERVING_LIMITS = {
    "ASTROSPECT_SERVING_MAX_CUTOUTS": str(SERVING_MAX_CUTOUTS),
    "ASTROSPECT_SERVING_MAX_BODY_MB": str(SERVING_MAX_BODY_MB),
}


@pytest.fixture(scope="session")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's one real ``mlflow server`` (mlflow/server.sh: SQLite + local artifacts, loopback), its URL.

    Shared: a test keeps to experiment and registered-model names of its own (no other test uses them), so
    what it counts or promotes is only its own. A test that stops its server (tests/faults) starts its own.
    """
    from tests.support.tracking import mlflow_server

    with mlflow_server(tmp_path_factory.mktemp("shared-mlflow")) as url:
        yield url


@pytest.fixture(scope="session")
def point_stack(mlflow_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A served point-estimate champion (a tiny untrained seed CNN, registered as ``serving-point`` on
    ``mlflow_url``), deployed and served by ``astrospect serve`` with ``SERVING_LIMITS``; for the serving
    tests and the fuzzing alike, which only read from it."""
    from tests.support.serving_stack import served_champion

    home = tmp_path_factory.mktemp("point-stack")
    with served_champion(
        home, tracking_uri=mlflow_url, model_name="serving-point", **SERVING_LIMITS
    ) as stack:
        yield stack


@pytest.fixture(scope="session")
def pdf_stack(mlflow_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A served PDF champion (a tiny PDF CNN calibrated far from the identity, registered as ``serving-pdf``
    on ``mlflow_url``), deployed and served with ``SERVING_LIMITS``, like ``point_stack``."""
    from tests.support.serving_stack import served_champion

    home = tmp_path_factory.mktemp("pdf-stack")
    with served_champion(
        home, pdf=True, tracking_uri=mlflow_url, model_name="serving-pdf", **SERVING_LIMITS
    ) as stack:
        yield stack


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Fresh, empty buckets; the standard AWS environment points every boto3 client at the loopback server."""
    import boto3

    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3")
    for bucket in client.list_buckets()["Buckets"]:
        for item in client.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            client.delete_object(Bucket=bucket["Name"], Key=item["Key"])  # test buckets, not user data
        client.delete_bucket(Bucket=bucket["Name"])
    for bucket in BUCKETS:
        client.create_bucket(Bucket=bucket)
    return client


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from harness.browser import CHROMIUM, chromium

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def server(stack: Stack) -> str:
    return stack.url


@pytest.fixture(scope="module")
def champion(stack: Stack) -> Champion:
    return stack.champion


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    import requests

    with requests.Session() as session:
        yield session
