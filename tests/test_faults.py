"""The fault taxonomy (astrospect/faults.py): which recorded reasons are the machine's, what guard() turns
into an environment fault and what it lets through, and the docs' fault table against the suite's record."""

from __future__ import annotations

import errno

import pytest

from astrospect.faults import DataFault, EnvironmentFault, guard, is_environment_reason
from astrospect.settings import PROJECT_ROOT
from harness import faults_table

pytestmark = pytest.mark.unit

ENVIRONMENT_REASONS = [
    "OSError: [Errno 28] No space left on device",  # what issue 31 found recorded as five quarantines
    "PermissionError: [Errno 13] Permission denied: '/data/raw/.incoming/x.part'",
    "OSError: [Errno 5] Input/output error",
    'EndpointConnectionError: Could not connect to the endpoint URL: "http://minio:9000/landing"',
    'ReadTimeoutError: Read timeout on endpoint URL: "http://minio:9000/landing/a.h5"',
    "ClientError: An error occurred (SlowDown) when calling the GetObject operation: Please reduce",
    "ClientError: An error occurred (InternalError) when calling the PutObject operation: try again",
    "RetriesExceededError: Max Retries Exceeded",
    "MemoryError: ",
    "judged_by_the_gate: observed MemoryError: ",
    "judged_by_the_gate: observed ValueError: a table this suite cannot take",
]
DATA_REASONS = [
    "FileNotFoundError: [Errno 2] No such file or directory: '/landing/a.h5'",  # vanished from the landing zone
    "FileExistsError: /data/raw/a.0123456789ab.h5: exists with different content; refusing to overwrite",
    "ClientError: An error occurred (404) when calling the HeadObject operation: Not Found",
    "ClientError: An error occurred (NoSuchKey) when calling the GetObject operation: gone",
    "OSError: s3://landing/a.h5: copied 10 bytes but the listing said 20: changed while copying?",
    "structure: field 'specz_redshift': expected real numbers, got dtype |S6",
    "expect_column_values_to_be_between(redshift): 3 row(s); colour calibration: r +0.15 mag",
    "",
    None,
]


@pytest.mark.parametrize("reason", ENVIRONMENT_REASONS)
def test_reasons_an_earlier_version_recorded_for_the_machine_are_not_verdicts(reason: str) -> None:
    assert is_environment_reason(reason)


@pytest.mark.parametrize("reason", DATA_REASONS)
def test_reasons_that_name_the_data_stay_verdicts(reason: str | None) -> None:
    assert not is_environment_reason(reason)


def test_guard_names_the_resource_of_an_environment_error() -> None:
    with pytest.raises(EnvironmentFault) as caught, guard("the raw store /data/raw"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert str(caught.value).startswith(
        "the raw store /data/raw: OSError: [Errno 28] No space left on device"
    )
    assert caught.value.resource == "the raw store /data/raw"
    assert isinstance(caught.value.__cause__, OSError)


def test_guard_lets_data_faults_bugs_and_named_faults_through() -> None:
    with pytest.raises(DataFault), guard("outer"):
        raise DataFault("s3://landing/a.h5", "vanished")
    with pytest.raises(TypeError), guard("outer"):  # a bug is not wrapped: its own traceback fails the step
        raise TypeError("unsupported operand")
    with pytest.raises(EnvironmentFault) as caught, guard("outer"), guard("inner"):
        raise MemoryError
    assert caught.value.resource == "inner"  # the innermost guard names the resource


def test_the_docs_fault_table_shows_what_the_suite_recorded() -> None:
    outcomes = faults_table.load()
    assert outcomes, f"{faults_table.RESULTS}: no recorded outcomes (run `make test-faults`)"
    assert "<!-- results: faults -->" in (PROJECT_ROOT / "docs" / "reference" / "faults.md").read_text()
    steps = {outcome["step"].split()[0] for outcome in outcomes}
    assert {"ingest", "validate", "snapshot", "drift"} <= steps
