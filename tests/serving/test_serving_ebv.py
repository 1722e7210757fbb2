"""An E(B-V) champion served for real: each cutout's E(B-V) reaches the model from JSON and from shards.

One stack for the module (``serving_stack.served_champion(ebv=True)``): a real MLflow registry holding a tiny
untrained `cnn-ebv` photo-z CNN (cutouts and E(B-V) in), ``astrospect deploy``, a real ``bentoml serve``.
With ``ebv`` the served redshifts must be :func:`astrospect.models.predict.point_redshift` of the same model given
the same E(B-V), and differ from the answer without it (the model's unknown-E(B-V) fallback, which the
binary route and null values get). A bad ``ebv`` is a 400 naming the field. That a champion without the
input ignores ``ebv`` is checked against the seed champion in ``test_serving.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests

from astrospect.data.shards import read_shard
from astrospect.models.cnn import load_model, takes_ebv
from astrospect.models.predict import point_redshift
from astrospect.serving.contract import SHAPE_HEADER
from tests.support.fixtures import SERVING_LIMITS, SERVING_MAX_CUTOUTS
from tests.support.serving_stack import Champion, Stack, served_champion

pytestmark = pytest.mark.integration

MAX_CUTOUTS = SERVING_MAX_CUTOUTS
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}  # batch composition may change float summation order


# Module scope (no other module serves an E(B-V) champion), on the session's MLflow server.
@pytest.fixture(scope="module")
def stack(mlflow_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("serving-ebv")
    with served_champion(
        home, ebv=True, tracking_uri=mlflow_url, model_name="serving-ebv", **SERVING_LIMITS
    ) as served:
        yield served


@pytest.fixture(scope="module")
def model(champion: Champion) -> Any:
    loaded = load_model(champion.keras_path)
    assert takes_ebv(loaded)
    return loaded


@pytest.fixture(scope="module")
def shard_ebv(champion: Champion) -> np.ndarray:
    ebv = read_shard(champion.shard).ebv
    assert ebv is not None
    return ebv


def predict(http: requests.Session, server: str, images: np.ndarray, **extra: Any) -> requests.Response:
    body = {"images": images.reshape(len(images), -1).tolist(), "layout": "channels-last", **extra}
    return http.post(f"{server}/predict", json=body, timeout=60)


def redshifts(response: requests.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.array(response.json()["redshift"])


def test_predict_with_ebv_is_the_models_answer_with_that_ebv_and_differs_without(
    http: requests.Session, server: str, champion: Champion, model: Any, shard_ebv: np.ndarray
) -> None:
    images, ebv = champion.images[:MAX_CUTOUTS], shard_ebv[:MAX_CUTOUTS]
    with_ebv = redshifts(predict(http, server, images, ebv=ebv.tolist()))
    without = redshifts(predict(http, server, images))
    np.testing.assert_allclose(with_ebv, point_redshift(model, images, ebv), **TOLERANCE)
    np.testing.assert_allclose(with_ebv, champion.expected[:MAX_CUTOUTS], **TOLERANCE)  # the MLflow model's
    np.testing.assert_allclose(without, point_redshift(model, images), **TOLERANCE)  # the NaN fallback
    assert np.all(np.abs(with_ebv - without) > 1e-4), (with_ebv, without)


def test_null_ebv_values_are_unknown_for_those_cutouts_only(
    http: requests.Session, server: str, champion: Champion, model: Any, shard_ebv: np.ndarray
) -> None:
    images = champion.images[:4]
    ebv = [float(shard_ebv[0]), None, float(shard_ebv[2]), None]
    served = redshifts(predict(http, server, images, ebv=ebv))
    expected = point_redshift(model, images, np.array([np.nan if v is None else v for v in ebv], np.float32))
    np.testing.assert_allclose(served, expected, **TOLERANCE)
    all_null = redshifts(predict(http, server, images, ebv=[None] * 4))
    np.testing.assert_array_equal(all_null, redshifts(predict(http, server, images, ebv=None)))


def test_binary_cutouts_get_the_unknown_ebv_fallback(
    http: requests.Session, server: str, champion: Champion
) -> None:
    images = champion.images[:MAX_CUTOUTS]
    headers = {"content-type": "application/octet-stream", SHAPE_HEADER: ",".join(map(str, images.shape))}
    binary = http.post(
        f"{server}/predict_binary", data=images.astype("<f4").tobytes(), headers=headers, timeout=60
    )
    assert redshifts(binary).tolist() == redshifts(predict(http, server, images)).tolist()


def test_predict_file_passes_the_shards_ebv(
    http: requests.Session, server: str, champion: Champion, model: Any, shard_ebv: np.ndarray
) -> None:
    response = http.post(
        f"{server}/predict_file", files={"file": ("cutouts.h5", champion.shard.read_bytes())}, timeout=60
    )
    assert response.status_code == 200, response.text
    served = np.array([row["redshift"] for row in response.json()["rows"]])
    np.testing.assert_allclose(served, point_redshift(model, champion.images, shard_ebv), **TOLERANCE)
    np.testing.assert_allclose(served, champion.expected, **TOLERANCE)


def test_an_ebv_of_another_length_is_a_400_naming_the_field(
    http: requests.Session, server: str, champion: Champion
) -> None:
    response = predict(http, server, champion.images[:3], ebv=[0.03, 0.03])
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "ebv: expected one value per cutout (3, as many as images), got 2"}
    assert redshifts(predict(http, server, champion.images[:1])).shape == (1,)  # the worker is unharmed


@pytest.mark.parametrize(
    ("ebv", "message"),
    [
        ([0.03, -0.01, 0.03], "Input should be greater than or equal to 0"),
        ([0.03, "0.03", 0.03], "Input should be a valid number"),
    ],
)
def test_a_bad_ebv_value_is_a_400_at_the_ebv_field(
    http: requests.Session, server: str, champion: Champion, ebv: list[Any], message: str
) -> None:
    response = predict(http, server, champion.images[:3], ebv=ebv)
    assert response.status_code == 400, response.text
    (issue,) = response.json()["detail"]  # the contract's validation error: one entry per failing field
    assert (issue["loc"], issue["msg"]) == (["ebv", 1], message)
