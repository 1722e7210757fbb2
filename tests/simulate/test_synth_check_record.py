"""synth-check's results file (docs/results/synth-check.json): what `make synth-check --record` writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from astrospect import results
from astrospect.simulate.check import _row, record_synth_check
from astrospect.simulate.targets import COLOURS

pytestmark = pytest.mark.unit


def _table() -> pd.DataFrame:
    rows = []
    for colour, offset in zip(COLOURS, (0.01, -0.02, 0.0, 0.03), strict=True):
        rows.append(_row("0.00-0.03", colour, "p50", 1.0 + offset, 1.0, 0.05, 300, 400))
        rows.append(_row("0.00-0.03", colour, "noiseless p50", 1.0 - offset, 1.0, None, 300, 400))
    rows.append(_row("all", "classifier AUC", "5-fold", 0.58, 0.5, 0.1, 300, 400))
    rows.append(_row("all", "classifier AUC", "real vs real", 0.504, 0.5, None, 200, 200))
    rows.append(_row("all", "classifier AUC", "noiseless", 0.66, 0.5, None, 300, 400))
    rows.append(_row("all", "20-NN sigma_MAD", "train 100", 0.0185, 0.0182, 0.00182, 300, 400))
    rows.append(_row("all", "r", "p50", 17.0, 16.0, 0.1, 300, 400))  # judged and failing
    return pd.DataFrame(rows)


def test_the_record_holds_the_judged_checks_the_aucs_and_the_colour_offsets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASTROSPECT_RESULTS_DIR", str(tmp_path))
    record_synth_check(_table(), load_before=0.5)
    written = results.read("synth-check", tmp_path)
    assert written["figures"] == {
        "checks_passed": 6,  # four colours, the AUC and the 20-NN; r is 1 mag off
        "checks_judged": 7,
        "auc_cutouts": 0.58,
        "auc_real_vs_real": 0.504,
        "auc_noiseless": 0.66,
        "knn20_sigma_mad_simulated": 0.0185,
        "knn20_sigma_mad_real": 0.0182,
    }
    assert written["tables"]["colours"]["rows"] == [
        ["0.00-0.03", "+0.010 / -0.020 / +0.000 / +0.030", "-0.010 / +0.020 / +0.000 / -0.030"]
    ]
    assert written["load_average"]["before"] == 0.5


def test_the_record_names_the_command_that_reproduces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # make synth-check checks a temporary folder, gone once it ends: it names itself instead.
    monkeypatch.setenv("ASTROSPECT_RESULTS_DIR", str(tmp_path))
    record_synth_check(_table(), command="make synth-check SYNTH_CHECK_N=20000 SYNTH_CHECK_SEED=4242")
    assert (
        results.read("synth-check", tmp_path)["command"]
        == "make synth-check SYNTH_CHECK_N=20000 SYNTH_CHECK_SEED=4242"
    )
    record_synth_check(_table())
    assert results.read("synth-check", tmp_path)["command"] == results.this_command()
