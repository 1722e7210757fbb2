"""`pip install .` builds a wheel that works: it holds the package's data files and its command runs.

The wheel is built the way pip builds it (PEP 517, hatchling + hatch-vcs fetched as build requirements), then
unpacked alone into a folder placed first on the path, so the command under test is the wheel's copy and not
the checkout's; its dependencies come from the locked environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_the_data_files_and_its_command_runs(tmp_path: Path) -> None:
    uv = [shutil.which("uv")] if shutil.which("uv") else ["python3", "-m", "uv"]
    build = subprocess.run(
        [*uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(ROOT)],  # type: ignore[list-item]
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("astrospect-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for data_file in (
        "astrospect/simulate/spectral_mixture.json",
        "astrospect/simulate/sdss_main_sample_calibration.csv",
    ):
        assert data_file in names, f"{wheel.name} lacks {data_file}"
    assert any(name.endswith("entry_points.txt") for name in names)
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, astrospect; from astrospect.cli import app; print(astrospect.__file__); "
            "sys.argv = ['astrospect', '--version']; app()",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(unpacked)},
        cwd=tmp_path,  # not the checkout, whose package would come first on the path
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    where, version = run.stdout.splitlines()[:2]
    assert where.startswith(str(unpacked)), f"the command ran from {where}, not from the wheel"
    assert version.startswith("astrospect ")
