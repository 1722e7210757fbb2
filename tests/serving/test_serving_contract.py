"""The service's OpenAPI document states what it does: error bodies, status codes, strict request schemas.

Built from the real service definition (no model is loaded: BentoML writes the document from the types).
Each test is one of the contract failures Schemathesis found in BentoML's own document (issue 15): ST108
(400 bodies carry ``detail`` as a list, documented as a string), ST202 (``{"images": [[]]}`` schema-valid
yet refused) and ST103 (415, 413 and 503 undocumented).
"""

from __future__ import annotations

import json
from typing import Any, cast

import jsonschema
import pytest

from astrospect.serving.contract import ROUTES, SHAPE_HEADER, openapi_document, unwrap_error_body
from astrospect.serving.service import PhotoZ

pytestmark = pytest.mark.unit

DOCUMENT = openapi_document(cast(Any, PhotoZ).openapi_spec.asdict(), ROUTES)
API_ROUTES = [
    "/predict",
    "/predict_binary",
    "/predict_pdf",
    "/predict_pdf_binary",
    "/predict_file",
    "/metadata",
]


def resolved(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the document's components, for jsonschema to follow its $refs."""
    return {**schema, "components": DOCUMENT["components"]}


def error_schema(path: str, status: int) -> dict[str, Any]:
    response = DOCUMENT["paths"][path]["post"]["responses"][str(status)]
    return resolved(response["content"]["application/json"]["schema"])


# Bodies as the service sends them (BentoML's validation error; a BentoMLException, once unwrapped; the guard's).
VALIDATION_ERROR = {
    "error": "1 validation error for Input",
    "detail": [{"type": "too_short", "loc": ["images", 0], "msg": "List should have at least 5120 items"}],
}
UNWRAPPED = json.loads(unwrap_error_body(b'[{"error": "expected an HDF5 shard"}]') or b"null")
GUARD_ERROR = {"error": "request body too large: expected at most 10 bytes, got 11 bytes"}


@pytest.mark.parametrize("path", API_ROUTES)
@pytest.mark.parametrize(
    "body", [VALIDATION_ERROR, UNWRAPPED, GUARD_ERROR], ids=["validation", "bentoml", "guard"]
)
def test_every_error_body_the_service_sends_matches_the_document(path: str, body: dict[str, Any]) -> None:
    for status in DOCUMENT["paths"][path]["post"]["responses"]:
        if status != "200":
            jsonschema.validate(body, error_schema(path, int(status)))


def test_bentomls_list_form_would_not_match() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"error": "x"}], error_schema("/predict", 400))


def test_every_api_route_has_its_row_in_the_contract() -> None:
    assert set(ROUTES) == {api.route for api in cast(Any, PhotoZ).apis.values()}


@pytest.mark.parametrize(
    ("path", "statuses"),
    [
        ("/predict", {"200", "400", "413", "415", "500", "503"}),
        ("/predict_binary", {"200", "400", "413", "415", "500", "503"}),
        ("/predict_pdf", {"200", "400", "409", "413", "415", "500", "503"}),
        ("/predict_pdf_binary", {"200", "400", "409", "413", "415", "500", "503"}),
        ("/predict_file", {"200", "400", "409", "413", "415", "500", "503"}),
        ("/metadata", {"200", "400", "413", "415", "500"}),
    ],
)
def test_every_status_a_route_can_answer_is_documented(path: str, statuses: set[str]) -> None:
    assert set(DOCUMENT["paths"][path]["post"]["responses"]) == statuses


def test_readyz_documents_its_503() -> None:
    assert "503" in DOCUMENT["paths"]["/readyz"]["get"]["responses"]


def test_an_empty_cutout_is_not_schema_valid() -> None:
    schema = resolved(
        DOCUMENT["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    )
    for invalid in ({"images": [[]], "layout": "channels-last"}, {"images": [], "layout": "band-first"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(invalid, schema)
    jsonschema.validate({"images": [[0.5] * 5120], "layout": "band-first"}, schema)


@pytest.mark.parametrize("path", ["/predict_binary", "/predict_pdf_binary"])
def test_the_binary_routes_document_their_body_and_shape_header(path: str) -> None:
    operation = DOCUMENT["paths"][path]["post"]
    assert list(operation["requestBody"]["content"]) == ["application/octet-stream"]
    assert operation["requestBody"]["content"]["application/octet-stream"]["schema"]["format"] == "binary"
    (header,) = operation["parameters"]
    assert (header["name"], header["in"], header["required"]) == (SHAPE_HEADER, "header", True)


def test_the_upload_names_its_file_types() -> None:
    content = DOCUMENT["paths"]["/predict_file"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert content["encoding"]["file"]["contentType"] == "application/x-hdf5, application/x-npy"


def test_bentomls_generic_error_components_are_gone() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    assert {"InvalidArgument", "NotFound", "InternalServerError"}.isdisjoint(schemas)
    assert "#/components/schemas/InvalidArgument" not in json.dumps(DOCUMENT)


def answer_schema(path: str, media_type: str = "application/json") -> dict[str, Any]:
    return resolved(DOCUMENT["paths"][path]["post"]["responses"]["200"]["content"][media_type]["schema"])


SUMMARY = {
    "mean": 0.2,
    "median": 0.19,
    "mode": 0.18,
    "interval_68": [0.17, 0.21],
    "interval_95": [0.15, 0.24],
}
IDENTITY = {"model_name": "astrospect-photoz", "model_version": "3", "run_id": "abc"}


def test_a_point_models_null_summary_and_a_pdf_models_summary_both_match_the_document() -> None:
    """BentoML's inlined answer schema keeps only the first branch of an anyOf: null would not match."""
    for answer in (None, [SUMMARY]):
        jsonschema.validate(
            {**IDENTITY, "redshift": [0.19], "pdf_summary": answer}, answer_schema("/predict")
        )
    with pytest.raises(jsonschema.ValidationError):  # always present, null or not
        jsonschema.validate({**IDENTITY, "redshift": [0.19]}, answer_schema("/predict"))
    bad = {**SUMMARY, "interval_68": [0.17]}
    with pytest.raises(jsonschema.ValidationError):  # an interval is two numbers
        jsonschema.validate({**IDENTITY, "redshift": [0.19], "pdf_summary": [bad]}, answer_schema("/predict"))
    row = {"index": 0, "objid": None, "redshift": 0.19}
    for summary in (None, SUMMARY):
        answer = {**IDENTITY, "file_format": "npy", "n": 1, "rows": [{**row, "pdf_summary": summary}]}
        jsonschema.validate(answer, answer_schema("/predict_file"))


def test_the_pdf_answer_holds_bin_edges_probabilities_and_summaries() -> None:
    schema = answer_schema("/predict_pdf")
    assert set(schema["components"]["schemas"]["PdfPredictionIODescriptor"]["required"]) >= {
        "bin_edges",
        "probabilities",
        "redshift",
        "pdf_summary",
    }
    answer = {
        **IDENTITY,
        "bin_edges": [0.0, 0.1, 0.2],
        "probabilities": [[0.25, 0.75]],
        "redshift": [0.1333],
        "pdf_summary": [SUMMARY],
    }
    jsonschema.validate(answer, schema)
    assert answer_schema("/predict_pdf_binary") == schema


def test_predict_file_chooses_json_or_a_qp_file_and_documents_both() -> None:
    body = DOCUMENT["paths"]["/predict_file"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["properties"]["format"]["enum"] == ["json", "qp"]
    assert body["schema"]["properties"]["format"]["default"] == "json"
    answers = DOCUMENT["paths"]["/predict_file"]["post"]["responses"]["200"]["content"]
    assert set(answers) == {"application/json", "application/x-hdf5"}
    assert answers["application/x-hdf5"]["schema"]["format"] == "binary"


def test_409_says_the_champion_has_no_pdfs() -> None:
    conflict = DOCUMENT["paths"]["/predict_pdf"]["post"]["responses"]["409"]
    assert "point-estimate model" in conflict["description"]
    for path in ("/predict", "/predict_binary", "/metadata"):  # these answer whatever the champion
        assert "409" not in DOCUMENT["paths"][path]["post"]["responses"]
