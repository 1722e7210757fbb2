"""Schemathesis against the served champion's own OpenAPI document (``/docs.json``): no 5xx, ever.

Every operation BentoML publishes (``predict``, ``predict_file``, ``metadata``, the health endpoints) gets
generated requests, schema-conforming and not, a bounded number per operation; then the server must
still answer a real prediction. One stack for the module, as in ``test_serving.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.integration.serving_stack import Stack, served_champion

MAX_EXAMPLES = 40  # per operation and phase: bounds the run to well under a minute on 2 cores
MAX_CUTOUTS = 4  # a small declared maximum keeps generated batches small


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("serving-fuzz")
    with served_champion(home, ASTROSPECT_SERVING_MAX_CUTOUTS=str(MAX_CUTOUTS)) as served:
        yield served


@pytest.fixture(scope="module")
def served_schema(stack: Stack) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_url(f"{stack.url}/docs.json", timeout=30)


schema = schemathesis.pytest.from_fixture("served_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_for_any_generated_request(case: Case) -> None:
    response = case.call(timeout=60)
    # 2xx bodies must also match the document; 4xx are the service refusing bad input, as it should.
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])


def test_server_still_predicts_after_fuzzing(stack: Stack) -> None:
    images = stack.champion.images[:1].tolist()
    response = requests.post(f"{stack.url}/predict", json={"images": images}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["redshift"] == pytest.approx(stack.champion.expected[:1].tolist(), rel=1e-5)
    assert requests.get(f"{stack.url}/livez", timeout=10).status_code == 200
