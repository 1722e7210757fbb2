"""S3 failing under ingest: listing, download and the shard store's conditional PUT, each throttled (503
SlowDown), reset mid-body or stalled beyond the read timeout, once (boto3's retries absorb it) or every time
(the step fails naming the bucket or object; nothing is recorded against the shard).

Why a fault proxy in front of moto's server: the faults then reach boto3 the way a network delivers them
(a TCP reset, a status line, silence), through urllib3 and botocore's and s3transfer's own retries, with the
retry settings the package really uses (``ASTROSPECT_S3_*``: 2 attempts and a 3 s read timeout here, so a
persistent fault fails within seconds). Nothing in astrospect is patched; the proxy is
tests/support/fault_proxy.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from astrospect.settings import load_settings
from tests.faults.conftest import GateState, Record, fault_free_state, gate_state, normalised, run_step
from tests.support.fault_proxy import Fault, FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.faults]

BUCKET, PREFIX, STORE = "landing", "incoming/", "s3://shard-store/"
READ_TIMEOUT_S = 3
LIST = r"^/landing\?.*list-type=2"
GET_B = r"^/landing/incoming/b-night\.h5"
PUT_STORE = r"^/shard-store/raw/"
CASES = {
    "s3-1-listing-503": (
        "503 SlowDown on every listing request",
        Fault("slowdown", "GET", LIST),
        "the landing zone s3://landing/incoming/ (listing it)",
    ),
    "s3-2-listing-stall": (
        f"listing stalls beyond the {READ_TIMEOUT_S} s read timeout, every attempt",
        Fault("stall", "GET", LIST, seconds=READ_TIMEOUT_S + 2),
        "the landing zone s3://landing/incoming/ (listing it)",
    ),
    "s3-3-download-reset": (
        "connection reset mid-body on every download of one object",
        Fault("reset", "GET", GET_B),
        "the landing zone's object s3://landing/incoming/b-night.h5",
    ),
    "s3-4-store-put-503": (
        "503 SlowDown on every conditional PUT (If-None-Match) to the shard store",
        Fault("slowdown", "PUT", PUT_STORE, header="If-None-Match"),
        "the shard store s3://shard-store/raw/",
    ),
}


@pytest.fixture(scope="module")
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(s3_endpoint) as running:
        yield running


@pytest.fixture(scope="module")
def reference(landing: list[Path], tmp_path_factory: pytest.TempPathFactory) -> GateState:
    # The same files from a folder, no store: the accepted set and the snapshot version depend only on them.
    return fault_free_state(landing[0].parent, tmp_path_factory.mktemp("fault-free") / "home")


def upload(s3: Any, landing: list[Path]) -> None:
    for path in landing:
        s3.upload_file(str(path), BUCKET, f"{PREFIX}{path.name}")


def store_keys(s3: Any, area: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket="shard-store", Prefix=area).get("Contents", [])
    return sorted(str(item["Key"]) for item in listed)


def environment(proxy: FaultProxy, home: Path) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": proxy.url,
        "ASTROSPECT_HOME": str(home),
        "ASTROSPECT_STORE": STORE,
        "ASTROSPECT_S3_MAX_ATTEMPTS": "2",
        "ASTROSPECT_S3_CONNECT_TIMEOUT_S": str(READ_TIMEOUT_S),
        "ASTROSPECT_S3_READ_TIMEOUT_S": str(READ_TIMEOUT_S),
    }


def converge(
    proxy: FaultProxy, home: Path, landing: list[Path], reference: GateState
) -> tuple[GateState, str, int]:
    """The fault cleared: ingest again (the step), then validate and snapshot; the state and its verdict."""
    env = environment(proxy, home)
    rerun = run_step(["ingest", "--source", f"s3://{BUCKET}/{PREFIX}"], env)
    assert rerun.exit_status == 0, rerun.message
    after = fault_free_state(landing[0].parent, home, env)  # ingest finds nothing new; validate, snapshot
    same = (
        after.accepted == reference.accepted
        and after.quarantined == reference.quarantined
        and after.snapshot == reference.snapshot
        and not after.raw
    )
    verdict = (
        "converges: the same accepted and quarantined sets and the same snapshot version as a fault-free run"
        if same
        else "DIFFERS from a fault-free run"
    )
    return after, verdict, rerun.exit_status


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_persistent_s3_fault_fails_ingest_and_the_rerun_converges(
    case: str,
    s3: Any,
    proxy: FaultProxy,
    landing: list[Path],
    reference: GateState,
    record: Record,
    tmp_path: Path,
) -> None:
    description, fault, resource = CASES[case]
    upload(s3, landing)
    home = tmp_path / "home"
    settings = load_settings().replace(home=home)
    proxy.inject(replace(fault, hits=0))
    try:
        run = run_step(["ingest", "--source", f"s3://{BUCKET}/{PREFIX}"], environment(proxy, home))
    finally:
        hits = sum(proxy.hits().values())
        proxy.clear()
    state = gate_state(settings)
    assert run.exit_status != 0, run.message
    assert run.message.startswith(f"EnvironmentFault: {resource}"), run.message
    assert hits >= 2  # boto3 retried before giving up
    assert state.quarantined == frozenset() and state.landing_quarantined == 0 and not state.accepted
    raw_keys = store_keys(s3, "raw/")
    if case == "s3-3-download-reset":  # the object before it is copied and recorded; it has no entry at all
        assert len(state.raw) == 1 and len(raw_keys) == 1
    else:
        assert state.raw == frozenset() and raw_keys == []

    after, verdict, status = converge(proxy, home, landing, reference)
    assert verdict.startswith("converges"), (after, reference)
    assert len(store_keys(s3, "raw/")) == len(landing)  # every shard once in the store, none twice
    record.add(
        case,
        fault=f"S3: {description}",
        step="ingest",
        exit_status=run.exit_status,
        message=normalised(run.message, home),
        ledger=state.ledger_text(len(landing)),
        store=f"shard store raw/: {len(raw_keys)} of {len(landing)} shards",
        rerun=f"exit {status}; {verdict}",
    )


def test_a_transient_s3_fault_is_retried_by_boto3_and_the_step_succeeds(
    s3: Any, proxy: FaultProxy, landing: list[Path], reference: GateState, record: Record, tmp_path: Path
) -> None:
    upload(s3, landing)
    home = tmp_path / "home"
    proxy.inject(
        Fault("slowdown", "GET", LIST, times=1),
        Fault("reset", "GET", GET_B, times=1),
        Fault("slowdown", "PUT", PUT_STORE, header="If-None-Match", times=1),
    )
    try:
        run = run_step(["ingest", "--source", f"s3://{BUCKET}/{PREFIX}"], environment(proxy, home))
        hits = proxy.hits()
    finally:
        proxy.clear()
    assert run.exit_status == 0, run.message
    assert all(count == 1 for count in hits.values()), hits  # each fault met once, then retried past
    after, verdict, status = converge(proxy, home, landing, reference)
    assert verdict.startswith("converges"), (after, reference)
    record.add(
        "s3-5-transient",
        fault="S3: one 503 on listing, one reset mid-body on a download, one 503 on a store PUT",
        step="ingest",
        exit_status=run.exit_status,
        message="(none: boto3's retries absorbed each fault)",
        ledger="every shard recorded, nothing quarantined but the broken file (after validate)",
        store=f"shard store raw/: {len(store_keys(s3, 'raw/'))} of {len(landing)} shards",
        rerun=f"exit {status} (nothing new); {verdict}",
    )
