"""The served champion over HTTP: a real MLflow registry, `astrospect deploy`, a real `bentoml serve`.

The session's point stack (``point_stack``, shared with the fuzzing; it only reads from it): the
predictions must equal the MLflow model's for the same cutouts in both layouts, as JSON, as binary float32
(identical to JSON) and from file uploads, every kind of bad input on every path must get its documented
4xx with one error body saying what was expected while the server keeps answering, and a bounded
concurrent load on both request paths must get no error and every client its own answers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import requests
import yaml

from astrospect.data.shards import read_shard, write_shard
from astrospect.serving.contract import SHAPE_HEADER
from astrospect.settings import PROJECT_ROOT
from tests.support.fixtures import SERVING_MAX_BODY_MB, SERVING_MAX_CUTOUTS
from tests.support.serving_stack import DATASET_VERSION, Champion, Stack, run_deploy

pytestmark = pytest.mark.integration

MAX_CUTOUTS = (
    SERVING_MAX_CUTOUTS  # ASTROSPECT_SERVING_MAX_CUTOUTS for this server: small, so "too many" stays small
)
MAX_BODY_MB = SERVING_MAX_BODY_MB  # ASTROSPECT_SERVING_MAX_BODY_MB: a 3 MB body must be refused
BENTO_NAME = yaml.safe_load((PROJECT_ROOT / "bentofile.yaml").read_text())["name"]
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}  # batch composition may change float summation order


@pytest.fixture(scope="module")
def stack(point_stack: Stack) -> Stack:
    return point_stack


@pytest.fixture(scope="module")
def deployed(stack: Stack) -> dict[str, Any]:
    return stack.deployed


def predict(
    http: requests.Session, server: str, images: np.ndarray, layout: str = "channels-last"
) -> requests.Response:
    """The JSON path: one flat array per cutout."""
    body = {"images": images.reshape(len(images), -1).tolist(), "layout": layout}
    return http.post(f"{server}/predict", json=body, timeout=60)


def predict_binary(
    http: requests.Session, server: str, images: np.ndarray, shape: str | None = None
) -> requests.Response:
    """The binary path: raw little-endian float32, the shape in a header."""
    headers = {"content-type": "application/octet-stream"}
    headers[SHAPE_HEADER] = shape if shape is not None else ",".join(str(axis) for axis in images.shape)
    return http.post(
        f"{server}/predict_binary", data=np.asarray(images).tobytes(), headers=headers, timeout=60
    )


def upload(http: requests.Session, server: str, content: bytes, name: str) -> requests.Response:
    return http.post(f"{server}/predict_file", files={"file": (name, content)}, timeout=60)


def band_first(images: np.ndarray) -> np.ndarray:
    return np.transpose(images, (0, 3, 1, 2))


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


# --- deploy ------------------------------------------------------------------------------------------


def test_deploy_imports_the_champion_with_its_provenance(
    deployed: dict[str, Any], champion: Champion
) -> None:
    assert deployed["registered_model"] == champion.model_name
    assert deployed["version"] == champion.version
    assert deployed["run_id"] == champion.run_id
    assert deployed["dataset_version"] == DATASET_VERSION
    assert deployed["bento_model"] == f"{champion.model_name}:v{champion.version}-{champion.run_id[:12]}"
    assert deployed["bento"].startswith(f"{BENTO_NAME}:")  # the project's bento, whatever the model's name
    assert deployed["metrics"] == pytest.approx(champion.metrics)
    assert not deployed["reused_model"]
    assert not deployed["reused_bento"]


def test_deploy_again_reuses_what_is_stored(stack: Stack) -> None:
    again = run_deploy(stack.env)
    assert again["bento_model"] == stack.deployed["bento_model"]
    assert again["bento"] == stack.deployed["bento"]
    assert again["reused_model"]
    assert again["reused_bento"]


# --- health and metadata -----------------------------------------------------------------------------


def test_ready_and_live(http: requests.Session, server: str) -> None:
    assert http.get(f"{server}/readyz", timeout=10).status_code == 200
    assert http.get(f"{server}/livez", timeout=10).status_code == 200


def test_metadata_names_the_deployed_champion(
    http: requests.Session, server: str, champion: Champion, deployed: dict[str, Any]
) -> None:
    metadata = http.post(f"{server}/metadata", json={}, timeout=10).json()
    assert metadata["model_name"] == champion.model_name
    assert metadata["model_version"] == champion.version
    assert metadata["run_id"] == champion.run_id
    assert metadata["dataset_version"] == DATASET_VERSION
    assert metadata["bento_model"] == deployed["bento_model"]
    assert metadata["metrics"] == pytest.approx(champion.metrics)
    assert metadata["max_cutouts_per_request"] == MAX_CUTOUTS
    assert metadata["max_body_bytes"] == MAX_BODY_MB * 1024 * 1024
    assert metadata["pdf_bins"] is None  # a point-estimate champion


# --- predictions -------------------------------------------------------------------------------------


def _identity(body: dict[str, Any]) -> tuple[str, str, str]:
    return body["model_name"], body["model_version"], body["run_id"]


@pytest.mark.parametrize("layout", ["channels-last", "band-first"])
def test_predict_equals_the_mlflow_model(
    http: requests.Session, server: str, champion: Champion, layout: str
) -> None:
    images = champion.images[:MAX_CUTOUTS]
    response = predict(http, server, band_first(images) if layout == "band-first" else images, layout)
    assert response.status_code == 200, response.text
    body = response.json()
    assert _identity(body) == (champion.model_name, champion.version, champion.run_id)
    np.testing.assert_allclose(body["redshift"], champion.expected[:MAX_CUTOUTS], **TOLERANCE)
    assert body["pdf_summary"] is None  # always present, null from a point-estimate champion


@pytest.mark.parametrize("layout", ["channels-last", "band-first", "64x64 band-first", "64x64 channels-last"])
def test_predict_binary_equals_the_json_path_and_the_mlflow_model(
    http: requests.Session, server: str, champion: Champion, layout: str
) -> None:
    images = champion.images[:MAX_CUTOUTS]
    as_json = predict(http, server, images)
    sent = band_first(images) if "band-first" in layout else images
    if layout.startswith("64x64"):  # centre-cropped back to the same 32x32 cutouts
        pad = (
            ((0, 0), (0, 0), (16, 16), (16, 16))
            if "band-first" in layout
            else ((0, 0), (16, 16), (16, 16), (0, 0))
        )
        sent = np.pad(sent, pad)
    as_binary = predict_binary(http, server, np.ascontiguousarray(sent, dtype="<f4"))
    assert as_binary.status_code == 200, as_binary.text
    assert as_binary.headers["content-type"] == "application/json"
    assert _identity(as_binary.json()) == (champion.model_name, champion.version, champion.run_id)
    # The same cutouts in the same batch size: the same model call, bit for bit.
    assert as_binary.json()["redshift"] == as_json.json()["redshift"]
    np.testing.assert_allclose(as_binary.json()["redshift"], champion.expected[:MAX_CUTOUTS], **TOLERANCE)


def test_a_champion_without_the_ebv_input_ignores_ebv(
    http: requests.Session, server: str, champion: Champion
) -> None:
    images = champion.images[:3]
    body = {"images": images.reshape(3, -1).tolist(), "layout": "channels-last", "ebv": [0.05, None, 0.4]}
    response = http.post(f"{server}/predict", json=body, timeout=60)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["redshift"], champion.expected[:3], **TOLERANCE)


def test_predict_file_hdf5_shard(http: requests.Session, server: str, champion: Champion) -> None:
    response = upload(http, server, champion.shard.read_bytes(), "cutouts.h5")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["file_format"] == "hdf5"
    assert body["n"] == len(champion.images)
    assert [row["objid"] for row in body["rows"]] == read_shard(champion.shard).objid.tolist()
    assert [row["index"] for row in body["rows"]] == list(range(len(champion.images)))
    np.testing.assert_allclose([row["redshift"] for row in body["rows"]], champion.expected, **TOLERANCE)
    assert all(row["pdf_summary"] is None for row in body["rows"])


def test_predict_file_shard_without_labels(
    http: requests.Session, server: str, champion: Champion, tmp_path: Path
) -> None:
    shard = write_shard(tmp_path / "unlabelled.h5", band_first(champion.images[:5]), np.arange(5) + 42)
    response = upload(http, server, shard.read_bytes(), "unlabelled.h5")
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert [row["objid"] for row in rows] == [42, 43, 44, 45, 46]
    np.testing.assert_allclose([row["redshift"] for row in rows], champion.expected[:5], **TOLERANCE)


@pytest.mark.parametrize("layout", ["channels-last", "band-first"])
def test_predict_file_npy(http: requests.Session, server: str, champion: Champion, layout: str) -> None:
    images = champion.images if layout == "channels-last" else band_first(champion.images)
    response = upload(http, server, npy_bytes(images), "cutouts.npy")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["file_format"] == "npy"
    assert all(row["objid"] is None for row in body["rows"])
    np.testing.assert_allclose([row["redshift"] for row in body["rows"]], champion.expected, **TOLERANCE)


# --- PDFs asked of a point-estimate champion: 409 ---------------------------------------------------------


NO_PDFS = "is a point-estimate model with no PDF head"


def test_predict_pdf_from_a_point_champion_is_409_and_says_why(
    http: requests.Session, server: str, champion: Champion
) -> None:
    images = champion.images[:2]
    body = {"images": images.reshape(2, -1).tolist(), "layout": "channels-last"}
    answers = {
        "predict_pdf": http.post(f"{server}/predict_pdf", json=body, timeout=60),
        "predict_pdf_binary": http.post(
            f"{server}/predict_pdf_binary",
            data=images.tobytes(),
            headers={"content-type": "application/octet-stream", SHAPE_HEADER: "2,32,32,5"},
            timeout=60,
        ),
        "predict_file with format=qp": http.post(
            f"{server}/predict_file",
            files={"file": ("cutouts.h5", champion.shard.read_bytes())},
            data={"format": "qp"},
            timeout=60,
        ),
    }
    for route, response in answers.items():
        assert response.status_code == 409, (route, response.text)
        error = response.json()
        assert set(error) == {"error"}, response.text
        assert error["error"].startswith(
            f"{route}: the champion ({champion.model_name} version {champion.version})"
        )
        assert NO_PDFS in error["error"]
    # ... while the JSON answer of the same upload still works
    json_answer = upload(http, server, champion.shard.read_bytes(), "cutouts.h5")
    assert json_answer.status_code == 200, json_answer.text


def test_a_bad_body_for_predict_pdf_is_still_a_400_first(http: requests.Session, server: str) -> None:
    """BentoML validates the body before the route runs: a malformed request hears what is malformed."""
    response = http.post(
        f"{server}/predict_pdf", json={"images": [[1.0] * 10], "layout": "channels-last"}, timeout=60
    )
    assert response.status_code == 400, response.text
    assert "List should have at least 5120 items" in response.text


# --- bad input ---------------------------------------------------------------------------------------


def _flat(n: int, size: int = 5120, value: float = 1.0) -> list[list[float]]:
    return [[value] * size for _ in range(n)]


def _json_body(text: str, path: str = "predict") -> Callable[[requests.Session, str], requests.Response]:
    return lambda http, server: http.post(
        f"{server}/{path}", data=text.encode(), headers={"content-type": "application/json"}, timeout=60
    )


def _json(images: Any, layout: Any = "channels-last") -> Callable[[requests.Session, str], requests.Response]:
    return _json_body(json.dumps({"images": images, "layout": layout}))


def _binary(
    body: bytes, shape: str | None, content_type: str = "application/octet-stream"
) -> Callable[[requests.Session, str], requests.Response]:
    headers = {"content-type": content_type} | ({SHAPE_HEADER: shape} if shape is not None else {})
    return lambda http, server: http.post(f"{server}/predict_binary", data=body, headers=headers, timeout=60)


ONE_CUTOUT = np.ones((1, 32, 32, 5), "<f4").tobytes()


def _binary_with(value: float) -> bytes:
    images = np.ones((1, 32, 32, 5), "<f4")
    images[0, 5, 6, 1] = value
    return images.tobytes()


def _chunked(size: int) -> Callable[[requests.Session, str], requests.Response]:
    """A body without Content-Length (chunked transfer encoding): counted as it arrives."""
    chunks = [b" " * (256 * 1024)] * (size // (256 * 1024))
    return lambda http, server: http.post(
        f"{server}/predict", data=iter(chunks), headers={"content-type": "application/json"}, timeout=60
    )


def _file(content: bytes, name: str) -> Callable[[requests.Session, str], requests.Response]:
    return lambda http, server: upload(http, server, content, name)


def _hdf5(build: Callable[[h5py.File], None]) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        build(handle)
    return buffer.getvalue()


def _with_literal(literal: str) -> str:
    return json.dumps({"images": _flat(1), "layout": "channels-last"}).replace("1.0", literal, 1)


def _images_group(handle: h5py.File) -> None:
    handle.create_group("images")
    handle.create_dataset("objid", data=np.arange(2))


def _no_objid(handle: h5py.File) -> None:
    handle.create_dataset("images", data=np.ones((2, 5, 32, 32), np.float32))


def _billions_declared(handle: h5py.File) -> None:
    # A few kB on disk, 10^8 cutouts declared: refused before a pixel is read.
    handle.create_dataset("images", shape=(10**8, 5, 32, 32), dtype=np.float32, chunks=(1, 5, 32, 32))
    handle.create_dataset("objid", shape=(10**8,), dtype=np.int64, chunks=(1024,))


BAD_INPUTS: dict[str, tuple[Callable[[requests.Session, str], requests.Response], int, str]] = {
    # JSON: refused by the same type that writes the schema, at the failing field
    "JSON cutout too short": (_json(_flat(2, 5119)), 400, "List should have at least 5120 items"),
    "JSON cutout too long": (_json(_flat(1, 5121)), 400, "List should have at most 5120 items"),
    "JSON empty cutout": (_json([[]]), 400, "List should have at least 5120 items"),
    "JSON empty batch": (_json([]), 400, "List should have at least 1 item"),
    "JSON too many cutouts": (
        _json(_flat(MAX_CUTOUTS + 1)),
        400,
        f"List should have at most {MAX_CUTOUTS} items",
    ),
    "JSON nested cutouts": (_json(np.ones((1, 32, 32, 5)).tolist()), 400, "Input should be a valid number"),
    "JSON NaN flux": (_json_body(_with_literal("NaN")), 400, "Input should be a finite number"),
    "JSON infinite flux": (_json_body(_with_literal("-Infinity")), 400, "Input should be a finite number"),
    "JSON float32 overflow": (_json_body(_with_literal("1e39")), 400, "less than or equal to"),
    "JSON strings": (_json([["a"] * 5120]), 400, "Input should be a valid number"),
    "JSON nulls": (_json_body(_with_literal("null")), 400, "Input should be a valid number"),
    "JSON booleans": (_json_body(_with_literal("true")), 400, "Input should be a valid number"),
    "JSON unknown layout": (_json(_flat(1), "NCHW"), 400, "Input should be 'channels-last' or 'band-first'"),
    "JSON a scalar": (_json(3.5), 400, "Input should be a valid array"),
    "JSON no layout": (_json_body(json.dumps({"images": _flat(1)})), 400, "Field required"),
    "JSON no images field": (_json_body("{}"), 400, "Field required"),
    "not JSON": (_json_body("images=1,2,3"), 400, "Invalid JSON"),
    "metadata not an object": (_json_body("[null, null]", "metadata"), 400, "Input should be an object"),
    "form-encoded JSON (curl -d without -H)": (
        lambda http, server: http.post(f"{server}/predict", data={"images": "1"}, timeout=60),
        415,
        "takes Content-Type application/json",
    ),
    # binary: the header, the length, the values
    "binary without shape header": (_binary(ONE_CUTOUT, None), 400, f"expected a {SHAPE_HEADER} header"),
    "binary malformed shape": (_binary(ONE_CUTOUT, "1x32x32x5"), 400, "expected N,5,32,32 or N,32,32,5"),
    "binary wrong band count": (_binary(ONE_CUTOUT, "1,4,32,32"), 400, "expected N,5,32,32 or N,32,32,5"),
    "binary too many cutouts": (
        _binary(ONE_CUTOUT * (MAX_CUTOUTS + 1), f"{MAX_CUTOUTS + 1},32,32,5"),
        400,
        f"expected at most {MAX_CUTOUTS} cutouts per request",
    ),
    "binary body shorter than its shape": (_binary(ONE_CUTOUT, "2,32,32,5"), 400, "expected 40960 bytes"),
    "binary truncated": (_binary(ONE_CUTOUT[:-3], "1,32,32,5"), 400, "got 20477"),
    "binary float64 by mistake": (
        _binary(np.ones((1, 32, 32, 5)).tobytes(), "1,32,32,5"),
        400,
        "expected 20480 bytes (float32",
    ),
    "binary empty body": (_binary(b"", "1,32,32,5"), 400, "got 0"),
    "binary NaN flux": (_binary(_binary_with(np.nan), "1,32,32,5"), 400, "expected finite fluxes"),
    "binary infinite flux": (
        _binary(_binary_with(-np.inf), "1,32,32,5"),
        400,
        "the first in cutout 0, band g",
    ),
    "binary sent as JSON": (
        _binary(ONE_CUTOUT, "1,32,32,5", "application/json"),
        415,
        "application/octet-stream",
    ),
    "binary over the limit": (
        _binary(b"\0" * (3 * 1024 * 1024), "150,32,32,5"),
        413,
        "request body too large",
    ),
    # any route
    "body over the limit": (_json_body(" " * (3 * 1024 * 1024)), 413, "request body too large"),
    "chunked body over the limit": (_chunked(3 * 1024 * 1024), 413, "request body too large"),
    "text file": (_file(b"objid,z\n1,0.1\n", "catalogue.csv"), 415, "expected an HDF5 shard"),
    "empty file": (_file(b"", "empty.h5"), 415, "empty file"),
    "HDF5 images is a group": (
        _file(_hdf5(_images_group), "bad.h5"),
        400,
        "field 'images': expected a dataset",
    ),
    "HDF5 without objid": (
        _file(_hdf5(_no_objid), "bad.h5"),
        400,
        "field 'objid': required dataset is missing",
    ),
    "HDF5 declaring 10^8 cutouts": (_file(_hdf5(_billions_declared), "huge.h5"), 400, "cutouts per file"),
    "npy of Python objects": (
        _file(npy_bytes(np.array([{"a": 1}]), allow_pickle=True), "x.npy"),
        400,
        "unreadable",
    ),
    "npy truncated": (
        _file(npy_bytes(np.ones((4, 5, 32, 32), np.float32))[:5000], "x.npy"),
        400,
        "unreadable",
    ),
    "npy wrong shape": (_file(npy_bytes(np.ones((3, 5, 32), np.float32)), "x.npy"), 400, "expected rank 4"),
    "npy with NaN": (_file(npy_bytes(np.full((2, 32, 32, 5), np.nan, np.float32)), "x.npy"), 400, "finite"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_a_4xx_that_says_what_was_expected(
    http: requests.Session, server: str, champion: Champion, case: str
) -> None:
    send, status, message = BAD_INPUTS[case]
    response = send(http, server)
    assert response.status_code == status, response.text
    error = response.json()  # one error body on every path: {"error": ..., "detail": [...] when validating}
    assert isinstance(error, dict) and isinstance(error["error"], str), response.text
    assert message in response.text
    # ... and the worker is unharmed: the next good request is answered correctly.
    good = predict(http, server, champion.images[:1])
    assert good.status_code == 200, good.text
    np.testing.assert_allclose(good.json()["redshift"], champion.expected[:1], **TOLERANCE)


# --- load ----------------------------------------------------------------------------------------------


def test_concurrent_clients_get_their_own_answers_and_no_errors(
    http: requests.Session, server: str, champion: Champion
) -> None:
    clients, per_client = 16, 25
    flat = champion.images.reshape(len(champion.images), -1)
    json_request = ("/predict", {"content-type": "application/json"})
    requests_by_index = [
        (*json_request, json.dumps({"images": flat[i : i + 1].tolist(), "layout": "channels-last"}).encode())
        if i % 2
        else (
            "/predict_binary",
            {"content-type": "application/octet-stream", SHAPE_HEADER: "1,32,32,5"},
            champion.images[i : i + 1].tobytes(),
        )
        for i in range(len(champion.images))
    ]

    def client(k: int) -> list[tuple[int, int, list[float]]]:
        answers = []
        with requests.Session() as session:
            for j in range(per_client):
                index = (k * 7 + j) % len(requests_by_index)
                path, headers, body = requests_by_index[index]
                response = session.post(f"{server}{path}", data=body, headers=headers, timeout=60)
                answers.append(
                    (index, response.status_code, response.json().get("redshift", []) if response.ok else [])
                )
        return answers

    with ThreadPoolExecutor(clients) as pool:
        answers = [answer for batch in pool.map(client, range(clients)) for answer in batch]
    assert len(answers) == clients * per_client
    assert [status for _, status, _ in answers if status != 200] == []
    got = np.array([redshift[0] for _, _, redshift in answers])
    want = champion.expected[[index for index, _, _ in answers]]
    np.testing.assert_allclose(got, want, **TOLERANCE)


# --- monitoring ----------------------------------------------------------------------------------------


SERVED_HISTOGRAMS = ("astrospect_served_r_mag", "astrospect_served_g_r", "astrospect_served_redshift")


def served_counts(http: requests.Session, server: str) -> dict[str, float]:
    """The served-input histograms' count and redshift sum from /metrics (summed over the workers)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = http.get(f"{server}/metrics", timeout=10)
    assert response.status_code == 200
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name.startswith(SERVED_HISTOGRAMS) and sample.name.endswith(("_count", "_sum")):
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return values


def test_metrics_histograms_count_every_cutout_served(
    http: requests.Session, server: str, champion: Champion
) -> None:
    before = served_counts(http, server)
    answered = []
    for index in range(4):  # four requests of one cutout, one of five, one upload of the whole shard
        answered += predict(http, server, champion.images[index : index + 1]).json()["redshift"]
    answered += predict(http, server, champion.images[:5]).json()["redshift"]
    rows = upload(http, server, champion.shard.read_bytes(), "cutouts.h5").json()["rows"]
    answered += [row["redshift"] for row in rows]
    after = served_counts(http, server)
    served = 4 + 5 + len(champion.images)
    assert len(answered) == served
    for name in SERVED_HISTOGRAMS:
        assert after[f"{name}_count"] - before.get(f"{name}_count", 0.0) == served, name
    redshift_sum = after["astrospect_served_redshift_sum"] - before.get("astrospect_served_redshift_sum", 0.0)
    assert redshift_sum == pytest.approx(sum(answered), rel=1e-5)
