"""Schemathesis against the served champion's own OpenAPI document (``/docs.json``): no 5xx, ever.

Every operation BentoML publishes (``predict``, ``predict_file``, ``metadata``, the health endpoints) gets
generated requests, schema-conforming and not, in the coverage and fuzzing phases, a bounded number per
operation; then the server must still answer a real prediction. One stack for the module, as in
``test_serving.py``.

The run is ``st run`` (Schemathesis' CLI): its pytest loader for a schema served by a fixture
(``schemathesis.pytest.from_fixture``) sets ``Function._nodeid``, which pytest 9.2 no longer has.
The check is ``not_a_server_error``; ``response_schema_conformance`` is left out because BentoML 1.4.40's
own document declares a string ``detail`` for 400 responses while its validation errors send a list.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.integration.serving_stack import Stack, served_champion

MAX_EXAMPLES = 60  # per operation and phase: ~300 requests, about 15 s on 2 cores
MAX_CUTOUTS = 4  # a small declared maximum keeps generated batches small
SEED = 20261125  # a fixed seed: the same cases on every run, so a failure reproduces


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("serving-fuzz")
    # One worker: the fuzzer sends one request at a time, and a second model copy would only slow start-up.
    with served_champion(
        home, ASTROSPECT_SERVING_MAX_CUTOUTS=str(MAX_CUTOUTS), ASTROSPECT_SERVING_WORKERS="1"
    ) as served:
        yield served


def test_no_server_error_for_any_generated_request(stack: Stack, tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).parent / "st"
    command = [
        str(schemathesis),
        "run",
        f"{stack.url}/docs.json",
        "--checks=not_a_server_error",
        "--phases=examples,coverage,fuzzing",
        f"--max-examples={MAX_EXAMPLES}",
        f"--seed={SEED}",
        "--workers=1",
        "--request-timeout=60",
        "--no-color",
        "--report=junit",
        f"--report-dir={tmp_path}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    summary = done.stdout[-6000:]
    assert done.returncode == 0, summary
    assert "Tested: 7" in summary, summary  # predict, predict_file, metadata and BentoML's four GETs
    assert " passed" in summary and "failure" not in summary, summary


def test_server_still_predicts_after_fuzzing(stack: Stack) -> None:
    images = stack.champion.images[:1].tolist()
    response = requests.post(f"{stack.url}/predict", json={"images": images}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["redshift"] == pytest.approx(stack.champion.expected[:1].tolist(), rel=1e-5)
    assert requests.get(f"{stack.url}/livez", timeout=10).status_code == 200
