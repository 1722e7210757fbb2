"""The MLflow client, and a probe that fails in milliseconds when no server answers."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from astrospect.faults import EnvironmentFault
from astrospect.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

_PROBE_TIMEOUT_S = 5.0


class TrackingServerError(RuntimeError):
    """The tracking URI is malformed or no MLflow server answers there. Raised before any training starts."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = uri
        self.reason = reason
        super().__init__(
            f"MLflow tracking URI {uri!r}: {reason}. Set MLFLOW_TRACKING_URI to a running server "
            "(for the embedded one: `make mlflow-up`, then http://127.0.0.1:5000)."
        )


def check_tracking_server(uri: str) -> None:
    """Raise :class:`TrackingServerError` unless ``uri`` is an http(s) URL where an MLflow server answers.

    MLflow's own client retries an unreachable server for about four minutes (measured: 246 s) before it
    gives up; this probe answers in milliseconds. Starting a session and the promote/report commands call
    it first, so nothing trains against a server that is not there.
    """
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        raise TrackingServerError(
            uri, f"expected an http:// or https:// server URL, got scheme {parsed.scheme!r}"
        )
    try:
        port = parsed.port
    except ValueError as error:
        raise TrackingServerError(uri, f"malformed port ({error})") from error
    if not parsed.hostname:
        raise TrackingServerError(uri, "no host name in the URL")
    probe = f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        with urllib.request.urlopen(probe, timeout=_PROBE_TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        raise TrackingServerError(
            uri, f"the server at {parsed.hostname}:{port} answered HTTP {error.code} to an MLflow API call"
        ) from error
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingServerError(uri, f"unreachable ({reason})") from error
    try:
        json.loads(body or b"{}")
    except json.JSONDecodeError as error:
        raise TrackingServerError(uri, "the server answered, but not with MLflow's JSON API") from error


def client_for(settings: Settings) -> MlflowClient:
    """Point MLflow (fluent API and client) at the settings' server and return a client."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    return mlflow.MlflowClient(
        tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri
    )


@contextmanager
def server_guard(uri: str) -> Iterator[None]:
    """Turn "no MLflow server answers at ``uri``" raised inside into an
    :class:`~astrospect.faults.EnvironmentFault` naming the server, so a training, promotion or deploy step
    fails like every step whose resource failed (Airflow retries it).

    Caught: :class:`TrackingServerError` (the probe), and MLflow's client giving up on a request that got no
    answer (its ``MlflowException`` raised from a ``requests`` connection error or timeout, after its own
    retries). An answer the server did give (a missing run, a refused alias: a ``RestException``) and bugs go
    through as they are.
    """
    from mlflow.exceptions import MlflowException, RestException

    try:
        yield
    except TrackingServerError as error:
        raise EnvironmentFault(f"the MLflow tracking server {uri}", error) from error
    except MlflowException as error:
        if isinstance(error, RestException) or not _no_answer(error):
            raise
        raise EnvironmentFault(f"the MLflow tracking server {uri}", error) from error


def _no_answer(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from or during) is a request that got no HTTP answer."""
    import requests

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
