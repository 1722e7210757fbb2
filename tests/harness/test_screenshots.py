"""``make screenshots``'s pure parts: the night's environment is its own, its MLflow port is kept, its bad
shard is the corpus's calibration shift; and the committed pictures are the five PNGs the docs reference,
at the viewport's width and a modest size."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from astrospect.settings import PROJECT_ROOT
from harness.corpus import write_mutant
from harness.screenshots import PICTURES, VIEWPORT, NightPlan, mlflow_port, night_env

pytestmark = pytest.mark.unit

IMAGES = PROJECT_ROOT / "docs" / "images"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_BYTES = 400 * 1024


def test_the_night_env_points_everything_at_its_own_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASTROSPECT_LANDING", "s3://somebody-elses/landing/")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("BENTOML_HOME", "/elsewhere")
    plan = NightPlan(home=tmp_path / "shots")
    env = night_env(plan)
    port = mlflow_port(plan)
    assert env["ASTROSPECT_HOME"] == str(tmp_path / "shots")
    assert env["AIRFLOW_HOME"] == str(tmp_path / "shots" / "airflow")
    assert env["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{port}" and env["MLFLOW_PORT"] == str(port)
    assert "ASTROSPECT_LANDING" not in env and "BENTOML_HOME" not in env
    assert env["ASTROSPECT_CHALLENGERS"] == plan.challengers


def test_the_mlflow_port_is_chosen_once_and_kept(tmp_path: Path) -> None:
    plan = NightPlan(home=tmp_path / "shots")
    first = mlflow_port(plan)
    assert 0 < first < 65536
    assert mlflow_port(plan) == first
    assert plan.port_file.read_text().strip() == str(first)


def test_an_unknown_mutation_is_named(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match=r"no-such-case\.h5"):
        write_mutant(tmp_path / "good.h5", "no-such-case.h5", tmp_path / "bad.h5")


@pytest.mark.parametrize("name", PICTURES)
def test_each_committed_picture_is_a_png_at_the_viewport_width(name: str) -> None:
    path = IMAGES / name
    assert path.exists(), f"{path} is missing: run make screenshots"
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])  # the IHDR chunk comes first
    assert width == VIEWPORT["width"] and height > 0
    assert path.stat().st_size < MAX_BYTES, f"{path} is {path.stat().st_size} bytes"
