"""harness/make_run_results.py: make run's report into docs/results/make-run.json (the pure parts)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.make_run_results import headline, report_rows

pytestmark = pytest.mark.unit


def _report() -> tuple[pd.DataFrame, pd.DataFrame]:
    ours = pd.DataFrame(
        [
            {
                "model": "pdf",
                "clipping": "full",
                "registry": "v3 champion",
                "sigma_mad": 0.01571,
                "n": 1231.0,
            },
            {"model": "cnn-ebv", "clipping": "full", "registry": "v2", "sigma_mad": 0.0159, "n": 1231.0},
            {
                "model": "baseline-knn-full",
                "clipping": "full",
                "registry": "",
                "sigma_mad": 0.0191,
                "n": 1231.0,
            },
            {"model": "rail-dnf", "clipping": "full", "registry": "", "sigma_mad": 0.0176, "n": 1231.0},
            {
                "model": "baseline-nz-full",
                "clipping": "full",
                "registry": "",
                "sigma_mad": 0.0406,
                "n": 1231.0,
            },
        ]
    )
    pdfs = pd.DataFrame(
        [
            {"model": "pdf", "crps": 0.0112, "coverage_68": 0.668, "pit_ks": 0.021},
            {"model": "baseline-knn-full", "crps": 0.0147, "coverage_68": math.nan, "pit_ks": 0.06},
        ]
    )
    return ours, pdfs


def test_rows_carry_the_pdf_metrics_where_a_model_has_them() -> None:
    rows = report_rows(*_report())
    assert rows[0] == ["pdf", "full", "champion", 0.0157, 0.0112, 0.668, 0.021]
    assert rows[1] == ["cnn-ebv", "full", "", 0.0159, None, None, None]
    assert rows[2][5] is None  # NaN: not measured


BASELINES = {"baseline-knn-full", "rail-dnf", "baseline-nz-full"}
CODES = {"baseline-knn-full", "rail-dnf"}  # the N(z) null is a baseline, not a code


def test_headline_ratios_leave_the_baselines_out_of_the_best_cnn() -> None:
    figures = headline(report_rows(*_report()), baselines=BASELINES, codes=CODES)
    assert figures == {
        "best_cnn": "pdf",
        "strongest_code": "rail-dnf",
        "best_cnn_over_strongest_code": round(0.0157 / 0.0176, 2),
        "best_cnn_over_knn": round(0.0157 / 0.0191, 2),
        "pdf_crps_over_knn_crps": round(0.0112 / 0.0147, 2),
        "champion": "pdf",
    }


def test_a_night_without_the_colour_knn_has_no_ratio() -> None:
    ours, pdfs = _report()
    figures = headline(report_rows(ours[~ours["model"].isin(CODES)], pdfs), baselines=BASELINES, codes=CODES)
    assert figures["best_cnn"] == "pdf"
    assert figures["best_cnn_over_knn"] is None and figures["pdf_crps_over_knn_crps"] is None
    assert figures["strongest_code"] is None and figures["best_cnn_over_strongest_code"] is None
