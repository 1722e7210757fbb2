"""The served champion over HTTP: a real MLflow registry, `astrospect deploy`, a real `bentoml serve`.

One stack per module (about a minute on 2 cores, most of it starting MLflow and TensorFlow twice): the
predictions must equal the MLflow model's for the same cutouts in both layouts and from file uploads,
every kind of bad input must get its 4xx with a message saying what was expected while the server keeps
answering, and a bounded concurrent load must get no error and every client its own answers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import requests

from astrospect.data.shards import read_shard, write_shard
from tests.integration.serving_stack import (
    DATASET_VERSION,
    MODEL_NAME,
    Champion,
    Stack,
    run_deploy,
    served_champion,
)

MAX_CUTOUTS = 8  # ASTROSPECT_SERVING_MAX_CUTOUTS for this server: small, so "too many" stays small
MAX_BODY_MB = 2  # ASTROSPECT_SERVING_MAX_BODY_MB: a 3 MB body must be refused
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}  # batch composition may change float summation order


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    serving_limits = {
        "ASTROSPECT_SERVING_MAX_CUTOUTS": str(MAX_CUTOUTS),
        "ASTROSPECT_SERVING_MAX_BODY_MB": str(MAX_BODY_MB),
    }
    with served_champion(tmp_path_factory.mktemp("serving"), **serving_limits) as served:
        yield served


@pytest.fixture(scope="module")
def server(stack: Stack) -> str:
    return stack.url


@pytest.fixture(scope="module")
def champion(stack: Stack) -> Champion:
    return stack.champion


@pytest.fixture(scope="module")
def deployed(stack: Stack) -> dict[str, Any]:
    return stack.deployed


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def predict(http: requests.Session, server: str, images: Any) -> requests.Response:
    return http.post(f"{server}/predict", json={"images": images}, timeout=60)


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
    assert deployed["registered_model"] == MODEL_NAME
    assert deployed["version"] == champion.version
    assert deployed["run_id"] == champion.run_id
    assert deployed["dataset_version"] == DATASET_VERSION
    assert deployed["bento_model"] == f"{MODEL_NAME}:v{champion.version}-{champion.run_id[:12]}"
    assert deployed["bento"].startswith(f"{MODEL_NAME}:")
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
    assert metadata["model_name"] == MODEL_NAME
    assert metadata["model_version"] == champion.version
    assert metadata["run_id"] == champion.run_id
    assert metadata["dataset_version"] == DATASET_VERSION
    assert metadata["bento_model"] == deployed["bento_model"]
    assert metadata["metrics"] == pytest.approx(champion.metrics)
    assert metadata["max_cutouts_per_request"] == MAX_CUTOUTS
    assert metadata["max_body_bytes"] == MAX_BODY_MB * 1024 * 1024


# --- predictions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["channels-last", "band-first", "64x64 band-first"])
def test_predict_equals_the_mlflow_model(
    http: requests.Session, server: str, champion: Champion, layout: str
) -> None:
    images = champion.images[:MAX_CUTOUTS]
    if layout == "band-first":
        images = band_first(images)
    elif layout == "64x64 band-first":  # centre-cropped back to the same 32x32 cutouts
        images = np.pad(band_first(images), ((0, 0), (0, 0), (16, 16), (16, 16)))
    response = predict(http, server, images.tolist())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["run_id"]) == (
        MODEL_NAME,
        champion.version,
        champion.run_id,
    )
    np.testing.assert_allclose(body["redshift"], champion.expected[:MAX_CUTOUTS], **TOLERANCE)


def test_predict_file_hdf5_shard(http: requests.Session, server: str, champion: Champion) -> None:
    response = upload(http, server, champion.shard.read_bytes(), "cutouts.h5")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["file_format"] == "hdf5"
    assert body["n"] == len(champion.images)
    assert [row["objid"] for row in body["rows"]] == read_shard(champion.shard).objid.tolist()
    assert [row["index"] for row in body["rows"]] == list(range(len(champion.images)))
    np.testing.assert_allclose([row["redshift"] for row in body["rows"]], champion.expected, **TOLERANCE)


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


# --- bad input ---------------------------------------------------------------------------------------


def _cutouts(n: int, shape: tuple[int, ...] = (5, 32, 32), value: float = 1.0) -> list[Any]:
    return np.full((n, *shape), value, np.float32).tolist()


def _json_body(text: str) -> Callable[[requests.Session, str], requests.Response]:
    return lambda http, server: http.post(
        f"{server}/predict", data=text.encode(), headers={"content-type": "application/json"}, timeout=60
    )


def _images(images: Any) -> Callable[[requests.Session, str], requests.Response]:
    return lambda http, server: predict(http, server, images)


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


def _nan_cutout() -> str:
    text = json.dumps({"images": _cutouts(1)})
    return text.replace("1.0", "NaN", 1)


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
    "wrong rank": (_images(_cutouts(2, (32, 32))), 400, "expected rank 4"),
    "wrong band count": (_images(_cutouts(2, (4, 32, 32))), 400, "expected 5 bands (ugriz)"),
    "wrong cutout size": (_images(_cutouts(2, (5, 16, 16))), 400, "expected 32x32 or 64x64 cutouts"),
    "NaN flux": (_json_body(_nan_cutout()), 400, "expected finite fluxes"),
    "infinite flux": (
        _json_body(json.dumps({"images": _cutouts(1)}).replace("1.0", "-Infinity", 1)),
        400,
        "finite",
    ),
    "float32 overflow": (
        _json_body(json.dumps({"images": _cutouts(1)}).replace("1.0", "1e39", 1)),
        400,
        "finite",
    ),
    "empty batch": (_images([]), 400, "got an empty batch"),
    "too many cutouts": (_images(_cutouts(MAX_CUTOUTS + 1)), 400, f"expected at most {MAX_CUTOUTS} cutouts"),
    "strings": (_images([[["a", "b"]]]), 400, "expected numbers"),
    "nulls": (_json_body('{"images": [[[[null]]]]}'), 400, "expected numbers"),
    "booleans": (_json_body('{"images": [[[[true, false]]]]}'), 400, "expected numbers"),
    "ragged lists": (_json_body('{"images": [[[[1.0, 2.0]]], [[[1.0]]]]}'), 400, "ragged"),
    "a scalar": (_json_body('{"images": 3.5}'), 400, "expected at least one cutout"),
    "no images field": (_json_body("{}"), 400, "Field required"),
    "not JSON": (_json_body("images=1,2,3"), 400, "Invalid JSON"),
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
    assert message in response.text
    # ... and the worker is unharmed: the next good request is answered correctly.
    good = predict(http, server, champion.images[:1].tolist())
    assert good.status_code == 200, good.text
    np.testing.assert_allclose(good.json()["redshift"], champion.expected[:1], **TOLERANCE)


# --- load ----------------------------------------------------------------------------------------------


def test_concurrent_clients_get_their_own_answers_and_no_errors(
    http: requests.Session, server: str, champion: Champion
) -> None:
    clients, per_client = 16, 25
    bodies = [
        json.dumps({"images": champion.images[i : i + 1].tolist()}).encode()
        for i in range(len(champion.images))
    ]

    def client(k: int) -> list[tuple[int, int, list[float]]]:
        answers = []
        with requests.Session() as session:
            for j in range(per_client):
                index = (k * 7 + j) % len(bodies)
                response = session.post(
                    f"{server}/predict",
                    data=bodies[index],
                    headers={"content-type": "application/json"},
                    timeout=60,
                )
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
        answered += predict(http, server, champion.images[index : index + 1].tolist()).json()["redshift"]
    answered += predict(http, server, champion.images[:5].tolist()).json()["redshift"]
    rows = upload(http, server, champion.shard.read_bytes(), "cutouts.h5").json()["rows"]
    answered += [row["redshift"] for row in rows]
    after = served_counts(http, server)
    served = 4 + 5 + len(champion.images)
    assert len(answered) == served
    for name in SERVED_HISTOGRAMS:
        assert after[f"{name}_count"] - before.get(f"{name}_count", 0.0) == served, name
    redshift_sum = after["astrospect_served_redshift_sum"] - before.get("astrospect_served_redshift_sum", 0.0)
    assert redshift_sum == pytest.approx(sum(answered), rel=1e-5)
