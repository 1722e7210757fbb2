"""server_guard: a tracking server that gives no answer is an environment fault naming it; an answer it gave
(a missing run, a refused request) and bugs are not.

The "no answer" case is MLflow's real client against a loopback port where nothing listens, with its retries
turned off so it gives up at once (tests/faults/test_tracking_down_training.py stops a real server mid-step).
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException, RestException

from astrospect.faults import EnvironmentFault
from astrospect.tracking.server import TrackingServerError, check_tracking_server, server_guard
from harness.ports import free_port

pytestmark = pytest.mark.unit


@pytest.fixture
def nobody_listens(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return f"http://127.0.0.1:{free_port()}"


def test_a_request_that_gets_no_answer_is_an_environment_fault_naming_the_server(nobody_listens: str) -> None:
    client = MlflowClient(tracking_uri=nobody_listens)
    with pytest.raises(EnvironmentFault) as caught, server_guard(nobody_listens):
        client.get_run("0" * 32)
    assert str(caught.value).startswith(f"the MLflow tracking server {nobody_listens}: MlflowException: ")
    assert isinstance(caught.value.__cause__, MlflowException)


def test_the_probe_failing_is_an_environment_fault_naming_the_server(nobody_listens: str) -> None:
    unreachable = r"TrackingServerError: .*unreachable"
    with pytest.raises(EnvironmentFault, match=unreachable) as caught, server_guard(nobody_listens):
        check_tracking_server(nobody_listens)
    assert isinstance(caught.value.__cause__, TrackingServerError)


def test_an_answer_the_server_gave_and_other_errors_go_through_as_they_are() -> None:
    url = "http://127.0.0.1:5000"
    answered = RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run 'x' not found"})
    with pytest.raises(RestException, match="not found"), server_guard(url):
        raise answered
    with pytest.raises(MlflowException, match="invalid alias"), server_guard(url):
        raise MlflowException("invalid alias")
    with pytest.raises(KeyError), server_guard(url):
        raise KeyError("a bug")
