"""`astrospect report`'s table fits the terminal: at 100 columns no row wraps and no cell is cut; --wide
and the machine formats carry every column (json and csv parse back to the same numbers)."""

from __future__ import annotations

import csv
import io
import json
import math

import pandas as pd
import pytest
from rich.console import Console

from astrospect import report
from astrospect.models import registry as challengers

pytestmark = pytest.mark.unit

# The registry's default session, with its longest names and the widest values a night can give.
POINT = {"mae": 0.0123, "mse": 0.0004, "r2": 0.9312, "sigma_mad": 0.0153, "bias": -0.0012}
OUTLIERS = {"catastrophic_outlier_frac": 0.0012, "outlier_frac_005": 0.0345}
PDF = {
    "crps": 0.0118,
    "pit_ks": 0.021,
    "pit_cvm": 0.3,
    "pit_outlier_frac": 0.001,
    "coverage_68": 0.6812,
    "coverage_95": 0.95,
    "cde_loss": -4.5,
    "uncalibrated_coverage_68": 0.61,
    "uncalibrated_pit_ks": 0.05,
}


def _night() -> report.SessionReport:
    rows = []
    for k, challenger in enumerate(challengers.for_session(())):
        pdf = PDF if challenger.output == "pdf" else {}
        rows.append(
            {
                "model": challenger.name,
                "clipping": challenger.clipping,
                "data": report.OURS,
                "output": challenger.output,
                "n": 123456.0,
                "registry": "" if challenger.baseline else f"v{100 + k}" + (" champion" if k == 0 else ""),
                **POINT,
                **OUTLIERS,
                **{name: pdf.get(name, math.nan) for name in report.ALL_COLUMNS[13:]},
            }
        )
    frame = pd.DataFrame([*rows, *report._seed_rows()], columns=report.ALL_COLUMNS)
    return report.SessionReport(
        run_id="0123456789abcdef0123456789abcdef",
        name="night-2026-12-06",
        title="astrospect-photoz: night-2026-12-06 (0123456789abcdef0123456789abcdef)",
        frame=frame,
        compare_url="http://127.0.0.1:5000/#/compare-runs?runs=%5B%5D",
    )


def _printed(night: report.SessionReport, width: int, *, wide: bool = False) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    report.print_report(night, console, wide=wide)
    return console.export_text().splitlines()


def test_the_default_table_fits_100_columns_one_line_per_model() -> None:
    night = _night()
    lines = _printed(night, 100)
    assert max(len(line) for line in lines if not line.startswith("compare view")) <= 100
    assert not any("…" in line for line in lines), "a cell was cut"
    header = next(line for line in lines if line.lstrip().startswith("model"))
    assert header.split() == list(report.NARROW.values())
    for record in night.frame.to_dict(orient="records"):
        (row,) = [line for line in lines if line.startswith(f"{record['model']} ")]  # one line, not two
        assert report.format_cell("sigma_mad", record["sigma_mad"]) in row
        assert row.split()[-1] == report.format_cell("coverage_68", record["coverage_68"])
        assert "mae" not in row
    pdf_row = next(line for line in lines if line.startswith("pdf "))
    assert "0.0118" in pdf_row and "0.6812" in pdf_row and "-0.0012" in pdf_row and "3.45%" in pdf_row


def test_wide_shows_every_metric_and_the_pdf_table() -> None:
    lines = "\n".join(_printed(_night(), 250, wide=True))
    for column in (*report.COLUMNS, "pit_ks", "cde_loss", "raw coverage_68"):
        assert column in lines
    assert "0.9312" in lines  # r2, only in the wide view


def test_json_and_csv_carry_every_column_and_parse() -> None:
    night = _night()
    document = json.loads(report.to_json(night))
    assert document["run_id"] == night.run_id and document["compare_view"] == night.compare_url
    assert [list(row) for row in document["rows"]] == [report.ALL_COLUMNS] * len(night.frame)
    pdf = next(row for row in document["rows"] if row["model"] == "pdf")
    assert pdf["crps"] == PDF["crps"] and pdf["sigma_mad"] == POINT["sigma_mad"]
    seed = next(row for row in document["rows"] if row["data"] == report.SEED)
    assert seed["n"] is None and seed["crps"] is None  # NaN is null, so strict JSON parsers read it

    rows = list(csv.DictReader(io.StringIO(report.to_csv(night))))
    assert list(rows[0]) == report.ALL_COLUMNS and len(rows) == len(night.frame)
    assert [float(row["sigma_mad"]) for row in rows] == list(night.frame["sigma_mad"])
