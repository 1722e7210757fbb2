"""Shared fixtures, and each test's kind.

Test folders mirror the package (tests/gate/ tests astrospect/gate/, ...). A test's kind is a marker that its
module sets once, ``pytestmark = pytest.mark.<kind>`` (with any other marks in a list): ``unit`` (pure
functions, fast), ``data`` (shards, simulator, expectations), ``model`` (model behaviour) or ``integration``
(real servers, end to end; ``make test-fast`` leaves these out). Collection fails for a test with no kind or
with two.

What is expensive is started once per test session and shared (tests/support/fixtures.py, a plugin of this
file; ask for a fixture by its name):

- ``mlflow_url``: the URL of the session's one real ``mlflow server`` (mlflow/server.sh, SQLite + local
  artifacts, loopback). Every test that only needs a server uses it, under experiment and registered-model
  names no other test uses (``tests.support.tracking.settings_for(home, mlflow_url, name)``). Tests that stop
  their server on purpose (tests/faults) start their own with ``tests.support.tracking.mlflow_server``.
- ``point_stack`` and ``pdf_stack``: a served champion each (``tests.support.serving_stack.Stack``: the
  server's URL, the registry's, the ``Champion`` with what the MLflow model answers for its cutouts, what
  ``astrospect deploy`` printed, the environment). A tiny seed CNN registered as ``serving-point``, a tiny
  calibrated PDF CNN as ``serving-pdf``, both on ``mlflow_url``, deployed and served by ``astrospect serve``
  with ``SERVING_LIMITS`` (at most ``SERVING_MAX_CUTOUTS`` cutouts a request, ``SERVING_MAX_BODY_MB``).
  Tests only read from them (a second ``astrospect deploy`` of the same champion reuses what is stored).
- ``s3_endpoint`` (moto's server on loopback; ``s3`` gives fresh, empty buckets per test), ``browser``
  (headless Chromium, per module), ``http`` (a requests session, per module).
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
KINDS = ("unit", "data", "model", "integration")
pytest_plugins = ("tests.support.fixtures",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    wrong = []
    for item in items:
        kinds = sorted({mark.name for mark in item.iter_markers() if mark.name in KINDS})
        if len(kinds) != 1:
            wrong.append(f"{item.nodeid}: kinds {kinds}")
    if wrong:
        raise pytest.UsageError(
            "every test needs exactly one kind, `pytestmark = pytest.mark.<kind>` in its module, one of "
            f"{', '.join(KINDS)}:\n  " + "\n  ".join(wrong)
        )
