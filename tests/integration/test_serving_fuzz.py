"""Schemathesis against the served champion's own OpenAPI document (``/docs.json``): it keeps its contract.

Every operation the document lists (``predict``, ``predict_binary``, ``predict_file``, ``metadata``, the health
endpoints) gets generated requests, schema-conforming and not, in every phase, a bounded number per
operation, under every check (``--checks all``): no 5xx, every status and error body as documented, every
schema-valid request accepted and every invalid one refused. Two fixed seeds, so a failure reproduces.
Then the server must still answer a real prediction. One stack for the module, as in ``test_serving.py``.

The run is ``st run`` (Schemathesis' CLI): its pytest loader for a schema served by a fixture
(``schemathesis.pytest.from_fixture``) sets ``Function._nodeid``, which pytest 9.2 no longer has.
``schemathesis_hooks`` gives it valid binary bodies and upload files, which a JSON schema cannot describe.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.integration.serving_stack import Stack, served_champion

MAX_EXAMPLES = 60  # per operation and phase
MAX_CUTOUTS = 4  # a small declared maximum keeps generated batches small
SEEDS = (777, 20261125)  # fixed seeds: the same cases on every run, so a failure reproduces
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("serving-fuzz")
    # One worker: the fuzzer sends one request at a time, and a second model copy would only slow start-up.
    with served_champion(
        home, ASTROSPECT_SERVING_MAX_CUTOUTS=str(MAX_CUTOUTS), ASTROSPECT_SERVING_WORKERS="1"
    ) as served:
        yield served


@pytest.mark.parametrize("seed", SEEDS)
def test_every_check_passes_for_every_generated_request(stack: Stack, tmp_path: Path, seed: int) -> None:
    schemathesis = Path(sys.executable).parent / "st"
    command = [
        str(schemathesis),
        "run",
        f"{stack.url}/docs.json",
        "--checks=all",
        "--phases=examples,coverage,fuzzing,stateful",
        f"--max-examples={MAX_EXAMPLES}",
        f"--seed={seed}",
        "--workers=1",
        "--request-timeout=60",
        "--no-color",
        "--report=junit",
        f"--report-dir={tmp_path}",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
        "PYTHONPATH": str(PROJECT_ROOT),
        "ASTROSPECT_SERVING_MAX_CUTOUTS": str(MAX_CUTOUTS),
    }
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    summary = done.stdout[-6000:]
    assert done.returncode == 0, summary
    assert "Tested: 8" in summary, summary  # the four POST routes and BentoML's four GETs
    assert "No issues found" in summary, summary  # 0 failures and 0 errors, every check


def test_server_still_predicts_after_fuzzing(stack: Stack) -> None:
    images = stack.champion.images[:1].reshape(1, -1).tolist()
    response = requests.post(
        f"{stack.url}/predict", json={"images": images, "layout": "channels-last"}, timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.json()["redshift"] == pytest.approx(stack.champion.expected[:1].tolist(), rel=1e-5)
    assert requests.get(f"{stack.url}/livez", timeout=10).status_code == 200
