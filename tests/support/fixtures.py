"""Shared fixtures of the integration tests, a plugin of tests/conftest.py (imports inside the fixtures, so the
fast tests do not pay for moto or requests): a real S3 endpoint on loopback (moto's server, reached over HTTP
by boto3), Debian's Chromium driven headless by Playwright, and the parts of a served champion (each serving
module provides its own ``stack``: point or PDF champion, its limits)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import requests

    from tests.support.serving_stack import Champion, Stack

BUCKETS = ("landing", "shard-store")  # the landing zone and the shard store (astrospect.data.store)


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
