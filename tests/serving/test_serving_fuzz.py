"""Schemathesis against the served champion's own OpenAPI document (``/docs.json``): it keeps its contract.

Every operation the document lists (``predict``, ``predict_binary``, ``predict_pdf``, ``predict_pdf_binary``,
``predict_file``, ``metadata``, the health endpoints) gets generated requests, schema-conforming and not, in
every phase, a bounded number per operation, under every check (``--checks all``): no 5xx, every status and
error body as documented, every schema-valid request accepted and every invalid one refused. Two fixed
seeds, so a failure reproduces, against both kinds of champion: a point-estimate model and a PDF model.
From the point champion a schema-valid request for PDFs gets the documented 409 (the champion has none);
``schemathesis.toml`` says so for exactly those operations. Then the server must still answer a real
prediction. The session's served champions (``point_stack``, ``pdf_stack``), the ones the other serving
tests use: the fuzzing only reads from them.

The run is ``st run`` (Schemathesis' CLI): its pytest loader for a schema served by a fixture
(``schemathesis.pytest.from_fixture``) sets ``Function._nodeid``, which pytest 9.2 no longer has.
``schemathesis_hooks`` gives it valid binary bodies and upload files, which a JSON schema cannot describe.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from astrospect.pdf.bins import POINT_ESTIMATE, RedshiftPdfs
from tests.support.fixtures import SERVING_MAX_CUTOUTS
from tests.support.serving_stack import Stack

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 60  # per operation and phase
MAX_CUTOUTS = SERVING_MAX_CUTOUTS  # the served maximum: a small one keeps generated batches small
SEEDS = (777, 20261125)  # fixed seeds: the same cases on every run, so a failure reproduces
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# From a point-estimate champion, what a schema-valid request for PDFs gets: the documented 409 (predict_file
# answers its JSON with 200 and format=qp with 409).
POINT_CHAMPION_CONFIG = """
[[operations]]
include-path = "/predict_pdf"
checks.positive_data_acceptance.expected-statuses = ["409"]

[[operations]]
include-path = "/predict_pdf_binary"
checks.positive_data_acceptance.expected-statuses = ["409"]

[[operations]]
include-path = "/predict_file"
checks.positive_data_acceptance.expected-statuses = ["200", "409"]
"""


@pytest.fixture(scope="module", params=["point", "pdf"])
def stack(request: pytest.FixtureRequest) -> Stack:
    served: Stack = request.getfixturevalue(f"{request.param}_stack")
    assert served.env["ASTROSPECT_SERVING_MAX_CUTOUTS"] == str(MAX_CUTOUTS)  # what the hooks generate for
    return served


@pytest.mark.parametrize("seed", SEEDS)
def test_every_check_passes_for_every_generated_request(stack: Stack, tmp_path: Path, seed: int) -> None:
    schemathesis = Path(sys.executable).parent / "st"
    config = tmp_path / "schemathesis.toml"
    config.write_text(POINT_CHAMPION_CONFIG if stack.champion.bins is None else "")
    command = [
        str(schemathesis),
        f"--config-file={config}",
        "run",
        f"{stack.url}/docs.json",
        "--checks=all",
        "--phases=examples,coverage,fuzzing,stateful",
        f"--max-examples={MAX_EXAMPLES}",
        f"--seed={seed}",
        # A cutout is 5120 numbers by definition: Hypothesis' "examples too large" health check tripped on
        # predict_pdf's body (the body of predict, which passed under the same seed); what it guards is
        # generation efficiency, not the service.
        "--suppress-health-check=data_too_large",
        "--workers=1",
        "--request-timeout=60",
        "--no-color",
        "--report=junit",
        f"--report-dir={tmp_path}",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks",
        "PYTHONPATH": str(PROJECT_ROOT),
        "ASTROSPECT_SERVING_MAX_CUTOUTS": str(MAX_CUTOUTS),
    }
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    (tmp_path / "schemathesis.txt").write_text(done.stdout)  # the whole report, beside its JUnit file
    summary = done.stdout[-6000:]
    assert done.returncode == 0, summary
    assert "Tested: 10" in summary, summary  # the six POST routes and BentoML's four GETs
    assert "No issues found" in summary, summary  # 0 failures and 0 errors, every check


def test_server_still_predicts_after_fuzzing(stack: Stack) -> None:
    images = stack.champion.images[:1].reshape(1, -1).tolist()
    response = requests.post(
        f"{stack.url}/predict", json={"images": images, "layout": "channels-last"}, timeout=60
    )
    assert response.status_code == 200, response.text
    expected = stack.champion.expected[:1]
    if stack.champion.bins is not None:  # a PDF champion answers its PDF's median
        expected = RedshiftPdfs(expected, stack.champion.bins).point(POINT_ESTIMATE)
    assert response.json()["redshift"] == pytest.approx(expected.tolist(), rel=1e-5)
    assert requests.get(f"{stack.url}/livez", timeout=10).status_code == 200
