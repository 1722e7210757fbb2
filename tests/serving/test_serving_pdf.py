"""A PDF champion served for real: its PDFs, their summaries, the qp file, and the CLI's qp file.

One stack for the module (``serving_stack.served_champion(pdf=True)``): a real MLflow registry holding a
tiny PDF CNN whose calibration (temperature and shift) is far from the identity, ``astrospect deploy``, a
real ``bentoml serve``. The served PDFs must be the MLflow model's, sum to 1 and carry the summary
astrospect.pdf.bins computes from them; ``predict``'s redshift is their median; ``qp.read`` opens the served
file and the CLI's ``--pdf`` file and finds the same probabilities. The point-champion side (409, null
summaries) is in ``test_serving.py``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qp
import requests
from typer.testing import CliRunner, Result

from astrospect.cli import app
from astrospect.data.shards import read_shard, write_shard
from astrospect.models.calibration import Calibration, bin_logits, calibrated_pdfs
from astrospect.models.cnn import build_seed_cnn, fit_input_scaling, load_model
from astrospect.pdf.bins import DEFAULT_BINS, POINT_ESTIMATE, RedshiftPdfs
from astrospect.serving.contract import HDF5, SHAPE_HEADER
from tests.support.fixtures import SERVING_MAX_CUTOUTS
from tests.support.serving_stack import Champion, Stack

pytestmark = pytest.mark.integration

MAX_CUTOUTS = SERVING_MAX_CUTOUTS
PDF_TOLERANCE = {"rtol": 1e-5, "atol": 1e-7}  # batch composition may change float summation order
SUMMARY_FIELDS = {
    "mean": "mean",
    "median": "median",
    "mode": "mode",
    "interval_68": ("lo68", "hi68"),
    "interval_95": ("lo95", "hi95"),
}


@pytest.fixture(scope="module")
def stack(pdf_stack: Stack) -> Stack:
    return pdf_stack


def predict_pdf(http: requests.Session, server: str, images: np.ndarray) -> dict[str, Any]:
    body = {"images": images.reshape(len(images), -1).tolist(), "layout": "channels-last"}
    response = http.post(f"{server}/predict_pdf", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return dict(response.json())


def binary(http: requests.Session, server: str, route: str, images: np.ndarray) -> dict[str, Any]:
    headers = {"content-type": "application/octet-stream", SHAPE_HEADER: ",".join(map(str, images.shape))}
    response = http.post(
        f"{server}/{route}", data=images.astype("<f4").tobytes(), headers=headers, timeout=60
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def assert_summaries_match(summaries: list[dict[str, Any]], probabilities: np.ndarray) -> None:
    """Each served summary is what astrospect.pdf.bins computes from the served PDF."""
    recomputed = RedshiftPdfs(probabilities, DEFAULT_BINS).summary()
    for field, attribute in SUMMARY_FIELDS.items():
        served = np.array([summary[field] for summary in summaries])
        if isinstance(attribute, tuple):
            expected = np.column_stack([getattr(recomputed, name) for name in attribute])
        else:
            expected = getattr(recomputed, attribute)
        np.testing.assert_allclose(served, expected, rtol=0, atol=1e-9, err_msg=field)


def test_metadata_names_the_bins(http: requests.Session, server: str) -> None:
    assert http.post(f"{server}/metadata", json={}, timeout=10).json()["pdf_bins"] == DEFAULT_BINS.n


def test_predict_pdf_gives_the_mlflow_models_calibrated_pdfs_summed_to_1_with_their_summary(
    http: requests.Session, server: str, champion: Champion
) -> None:
    body = predict_pdf(http, server, champion.images[:MAX_CUTOUTS])
    assert (body["model_name"], body["model_version"]) == (champion.model_name, champion.version)
    assert body["bin_edges"] == list(DEFAULT_BINS.edges)  # once per answer, not per cutout
    probabilities = np.array(body["probabilities"])
    assert probabilities.shape == (MAX_CUTOUTS, DEFAULT_BINS.n)
    assert np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # the MLflow model's own PDFs (so the saved calibration is applied), up to its float32 normalisation
    assert champion.expected.shape == (len(champion.images), DEFAULT_BINS.n)
    np.testing.assert_allclose(probabilities, champion.expected[:MAX_CUTOUTS], **PDF_TOLERANCE)
    assert_summaries_match(body["pdf_summary"], probabilities)
    np.testing.assert_allclose(
        body["redshift"], RedshiftPdfs(probabilities, DEFAULT_BINS).point(POINT_ESTIMATE), rtol=0, atol=1e-9
    )
    assert body["redshift"] == [summary["median"] for summary in body["pdf_summary"]]


def test_predict_pdf_takes_ebv_which_a_champion_without_that_input_ignores(
    http: requests.Session, server: str, champion: Champion
) -> None:
    images = champion.images[:3]
    body = {"images": images.reshape(3, -1).tolist(), "layout": "channels-last", "ebv": [0.05, None, 0.4]}
    response = http.post(f"{server}/predict_pdf", json=body, timeout=60)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["probabilities"], champion.expected[:3], **PDF_TOLERANCE)


def test_the_calibration_is_not_the_identity(champion: Champion) -> None:
    """Guards the test above: an uncalibrated head would give other PDFs (T and shift are far from 1, 0)."""
    logits = bin_logits(load_model(champion.keras_path), champion.images[:4])
    raw = calibrated_pdfs(logits, DEFAULT_BINS, Calibration())
    assert np.max(np.abs(raw - champion.expected[:4])) > 1e-3


def test_predict_pdf_binary_is_the_json_answer(
    http: requests.Session, server: str, champion: Champion
) -> None:
    images = champion.images[:MAX_CUTOUTS]
    as_json = predict_pdf(http, server, images)
    as_binary = binary(http, server, "predict_pdf_binary", np.transpose(images, (0, 3, 1, 2)))
    assert as_binary == as_json  # the same cutouts in the same batch size: the same model call


def test_predict_from_a_pdf_champion_answers_the_pdf_median_and_summary(
    http: requests.Session, server: str, champion: Champion
) -> None:
    images = champion.images[:MAX_CUTOUTS]
    pdfs = predict_pdf(http, server, images)
    for answer in (
        http.post(
            f"{server}/predict",
            json={"images": images.reshape(len(images), -1).tolist(), "layout": "channels-last"},
            timeout=60,
        ).json(),
        binary(http, server, "predict_binary", images),
    ):
        assert answer["redshift"] == pdfs["redshift"]
        assert answer["pdf_summary"] == pdfs["pdf_summary"]
        assert set(answer) == {"model_name", "model_version", "run_id", "redshift", "pdf_summary"}


def test_predict_file_json_rows_carry_the_summary(
    http: requests.Session, server: str, champion: Champion
) -> None:
    response = http.post(
        f"{server}/predict_file", files={"file": ("cutouts.h5", champion.shard.read_bytes())}, timeout=60
    )
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert [row["objid"] for row in rows] == read_shard(champion.shard).objid.tolist()
    assert_summaries_match([row["pdf_summary"] for row in rows], champion.expected.astype(np.float64))
    np.testing.assert_allclose(
        [row["redshift"] for row in rows], [row["pdf_summary"]["median"] for row in rows], rtol=0, atol=0
    )


def served_qp(http: requests.Session, server: str, name: str, content: bytes, folder: Path) -> Path:
    response = http.post(
        f"{server}/predict_file", files={"file": (name, content)}, data={"format": "qp"}, timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == HDF5
    assert 'filename="pdfs.hdf5"' in response.headers["content-disposition"]
    path = folder / "pdfs.hdf5"  # saved as the download names it
    path.write_bytes(response.content)
    return path


def test_the_served_qp_file_opens_in_qp_with_the_same_pdfs_and_objids(
    http: requests.Session, server: str, champion: Champion, tmp_path: Path
) -> None:
    path = served_qp(http, server, "cutouts.h5", champion.shard.read_bytes(), tmp_path)
    ensemble = qp.read(str(path))  # what a RAIL user does: no conversion
    assert ensemble.npdf == len(champion.images)
    np.testing.assert_allclose(ensemble.metadata["bins"].ravel(), DEFAULT_BINS.edge_array)
    from_file = ensemble.objdata["pdfs"] * DEFAULT_BINS.widths
    served = np.concatenate(
        [
            predict_pdf(http, server, champion.images[start : start + MAX_CUTOUTS])["probabilities"]
            for start in range(0, len(champion.images), MAX_CUTOUTS)
        ]
    )
    np.testing.assert_allclose(from_file, served, **PDF_TOLERANCE)
    assert np.array_equal(ensemble.ancil["objid"], read_shard(champion.shard).objid)


def test_a_qp_file_of_an_npy_upload_has_no_objids(
    http: requests.Session, server: str, champion: Champion, tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    np.save(buffer, champion.images[:3])
    ensemble = qp.read(str(served_qp(http, server, "cutouts.npy", buffer.getvalue(), tmp_path)))
    assert ensemble.npdf == 3 and ensemble.ancil is None
    np.testing.assert_allclose(
        ensemble.objdata["pdfs"] * DEFAULT_BINS.widths, champion.expected[:3], **PDF_TOLERANCE
    )


def test_an_unknown_file_answer_is_a_400(http: requests.Session, server: str, champion: Champion) -> None:
    response = http.post(
        f"{server}/predict_file",
        files={"file": ("cutouts.h5", champion.shard.read_bytes())},
        data={"format": "csv"},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert "Input should be 'json' or 'qp'" in response.text


# --- the CLI: astrospect predict --pdf ---------------------------------------------------------------------


def cli(*args: Any) -> Result:
    """``astrospect`` in this process; wide, so an error box does not wrap its message."""
    return CliRunner().invoke(*args, env={"COLUMNS": "400"})


def test_cli_pdf_writes_a_qp_file_with_objid_and_z_spec_equal_to_the_served_pdfs(
    http: requests.Session, server: str, champion: Champion, tmp_path: Path
) -> None:
    write_shard(
        tmp_path / "shards" / "unlabelled.h5",
        np.transpose(champion.images[:4], (0, 3, 1, 2)),
        np.arange(4, dtype=np.int64) + 99,
    )
    (tmp_path / "shards" / "labelled.h5").write_bytes(champion.shard.read_bytes())
    out = tmp_path / "out.h5"
    result = cli(
        app,
        [
            "predict",
            "--data",
            str(tmp_path / "shards"),
            "--model",
            str(champion.keras_path),
            "--pdf",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"{4 + len(champion.images)} PDFs written to {out}" in result.output
    ensemble = qp.read(str(out))
    labelled = read_shard(champion.shard)
    # shards in name order: labelled.h5, then unlabelled.h5
    objid = np.concatenate([labelled.objid, np.arange(4) + 99])
    assert np.array_equal(ensemble.ancil["objid"], objid)
    assert labelled.redshift is not None
    np.testing.assert_allclose(ensemble.ancil["z_spec"][: len(labelled)], labelled.redshift)
    assert np.isnan(ensemble.ancil["z_spec"][len(labelled) :]).all()  # no labels there
    served = np.array(predict_pdf(http, server, champion.images[:MAX_CUTOUTS])["probabilities"])
    from_file = ensemble.objdata["pdfs"] * DEFAULT_BINS.widths
    np.testing.assert_allclose(from_file[:MAX_CUTOUTS], served, **PDF_TOLERANCE)
    np.testing.assert_allclose(from_file[len(labelled) :], served[:4], **PDF_TOLERANCE)

    before = out.read_bytes()  # never overwritten
    again = cli(
        app,
        [
            "predict",
            "--data",
            str(champion.shard),
            "--model",
            str(champion.keras_path),
            "--pdf",
            "--out",
            str(out),
        ],
    )
    assert again.exit_code != 0
    assert "exists; choose another --out (nothing is overwritten)" in again.output
    assert out.read_bytes() == before


def test_cli_without_pdf_still_writes_the_csv_with_the_pdf_median(champion: Champion, tmp_path: Path) -> None:
    import pandas as pd

    out = tmp_path / "predictions.csv"
    result = cli(
        app,
        ["predict", "--data", str(champion.shard), "--model", str(champion.keras_path), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table.columns) == ["shard", "objid", "z_pred", "z_spec"]
    expected = RedshiftPdfs(champion.expected, DEFAULT_BINS).point(POINT_ESTIMATE)
    np.testing.assert_allclose(table["z_pred"], expected, rtol=1e-5, atol=1e-6)


def test_cli_pdf_of_a_point_model_is_a_clear_error(champion: Champion, tmp_path: Path) -> None:
    model = build_seed_cnn(fit_input_scaling(champion.images), 0.0, 0.6)
    point_path = tmp_path / "point.keras"
    model.save(point_path)
    out = tmp_path / "pdfs.hdf5"
    result = cli(
        app,
        ["predict", "--data", str(champion.shard), "--model", str(point_path), "--pdf", "--out", str(out)],
    )
    assert result.exit_code == 2, result.output  # a usage error, not a traceback
    assert "is a point-estimate model (no PDF head)" in result.output
    assert not out.exists()
    wrong_suffix = cli(
        app,
        [
            "predict",
            "--data",
            str(champion.shard),
            "--model",
            str(champion.keras_path),
            "--pdf",
            "--out",
            "x.csv",
        ],
    )
    assert wrong_suffix.exit_code == 2 and "suffix .hdf5 or .h5" in wrong_suffix.output
