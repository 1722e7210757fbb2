"""The drift report: verdict, table, flat metrics, JSON and a self-contained HTML page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from astrospect.drift import DriftReport, compare

pytestmark = pytest.mark.unit


def report(shift: float, share_threshold: float = 0.0) -> DriftReport:
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"mag_r": rng.normal(17, 0.6, 5_000), "g-r": rng.normal(0.7, 0.2, 5_000)})
    reference["z_pred"] = rng.normal(0.1, 0.05, 5_000)
    tonight = pd.DataFrame({"mag_r": rng.normal(17 + shift, 0.6, 800), "g-r": rng.normal(0.7, 0.2, 800)})
    tonight["z_pred"] = rng.normal(0.1, 0.05, 800)
    tonight.loc[:2, "g-r"] = np.nan
    return DriftReport(
        reference_version="ab" * 32,
        tonight_shards=["night-0000.h5", "night-0001.h5"],
        model_version="astrospect-photoz-v3-0123456789ab",
        features=compare(reference, tonight, alpha=0.01),
        alpha=0.01,
        share_threshold=share_threshold,
        action="warn",
        seconds={"reference": 0.5, "tonight": 0.25, "tests": 0.01},
        created_at="2026-01-01T00:00:00+00:00",
    )


def test_a_shifted_night_is_drifting_and_says_which_feature() -> None:
    drifted = report(shift=0.3)
    assert drifted.drifting
    assert drifted.drifted_features == ["mag_r"]
    assert drifted.share_drifted == 1 / 3
    assert not report(shift=0.3, share_threshold=0.5).drifting
    assert not report(shift=0.0).drifting
    assert drifted.n_tonight == 800
    assert drifted.n_reference == 5_000
    assert drifted.prediction is not None and drifted.prediction.feature == "z_pred"


def test_summary_and_metrics_are_what_xcom_and_mlflow_take() -> None:
    drifted = report(shift=0.3)
    summary = json.loads(json.dumps(drifted.summary()))
    assert summary["drifting"] is True
    assert summary["drifted_features"] == ["mag_r"]
    assert summary["prediction"]["drifted"] is False
    assert summary["seconds"] == 0.76
    metrics = drifted.metrics()
    assert metrics["drift/drifting"] == 1.0
    assert metrics["drift/n_drifted"] == 1.0
    assert metrics["drift/mag_r/ks"] == drifted.features[0].ks_statistic
    assert {f"drift/{name}/psi" for name in ("mag_r", "g-r", "z_pred")} <= set(metrics)
    assert all(isinstance(value, float) and np.isfinite(value) for value in metrics.values())
    assert all(re.fullmatch(r"[\w./ -]+", name) for name in metrics)  # MLflow's allowed metric names


def test_table_has_one_row_per_feature() -> None:
    table = report(shift=0.3).table()
    assert list(table["feature"]) == ["mag_r", "g-r", "z_pred"]
    assert list(table["drifted"]) == [True, False, False]
    assert {"KS D", "p", "W / sigma", "PSI"} <= set(table.columns)


def test_html_and_json_are_written_whole(tmp_path: Path) -> None:
    drifted = report(shift=0.3)
    html_path, json_path = drifted.write(tmp_path / "night")
    page = html_path.read_text()
    assert "AstroSpect drift: <span>DRIFTING</span>" in page
    assert '<tr class="drifted"><td>mag_r</td>' in page
    assert page.count("<tr") == 4  # header + three features
    assert re.search(r'src="data:image/png;base64,[A-Za-z0-9+/]{1000,}=*"', page)
    assert not re.search(r"(src|href)=\"https?://", page)  # self-contained: nothing fetched
    stored = json.loads(json_path.read_text())
    assert stored["summary"] == json.loads(json.dumps(drifted.summary()))
    assert len(stored["features"][0]["bin_edges"]) == len(stored["features"][0]["reference_density"]) + 1
    assert sorted(path.name for path in (tmp_path / "night").iterdir()) == ["drift.html", "drift.json"]
