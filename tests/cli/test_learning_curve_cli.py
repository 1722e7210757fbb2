"""`astrospect learning-curve` as docs/explanation/studies.md runs it: two runs into one --out join into one
table and one record, the second reusing the first's points; a point from other data stops the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from astrospect import results
from astrospect.cli import app
from astrospect.data.shards import write_shard

pytestmark = pytest.mark.unit

NULL = "baseline-nz-full"  # trains in milliseconds; the CNN columns of the docs' example would take hours


def _shards(folder: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for k in range(2):
        write_shard(
            folder / f"s{k}.h5",
            np.zeros((300, 5, 32, 32), np.float32),
            10**9 + k * 10**6 + np.arange(300),
            rng.uniform(0, 0.6, 300),
            np.full(300, 1e-4),
        )
    return folder


def _curve(data: Path, out: Path, sizes: str, *extra: str) -> tuple[int, str]:
    args = ["learning-curve", "--data", str(data), "--out", str(out), "--sizes", sizes, "--no-track"]
    result = CliRunner().invoke(
        app, [*args, "--challenger", NULL, "--epochs", "2", *extra], env={"COLUMNS": "200"}
    )
    return result.exit_code, result.output


def test_two_runs_into_one_out_join_and_other_data_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASTROSPECT_RESULTS_DIR", str(tmp_path))
    data, out = _shards(tmp_path / "shards", 0), tmp_path / "study"
    code, output = _curve(data, out, "100")
    assert code == 0, output
    first = (out / "points" / f"{NULL}-100.json").read_bytes()
    code, output = _curve(data, out, "100,200", "--record")
    assert code == 0, output
    assert (out / "points" / f"{NULL}-100.json").read_bytes() == first  # reused, not retrained
    assert pd.read_csv(out / "learning_curve.csv")["n_train"].tolist() == [100, 200]
    document = results.read("learning-curve", tmp_path)
    assert str(out / "points") in document["provenance"]  # the record says it joins runs
    recorded = document["tables"]["curve"]
    assert [row[0] for row in recorded["rows"]] == [100, 200]
    assert f"{NULL} sigma_MAD" in recorded["columns"]
    code, output = _curve(_shards(tmp_path / "other", 1), out, "100")
    assert code != 0
    assert f"{NULL}-100.json" in output and "'data_digest'" in output
