"""``make run``'s figures into ``docs/results/make-run.json``: its wall time and its report's headline.

Run by ``make run`` after ``astrospect report``, with the time make started (set-up included). Reads the
latest session from MLflow through the report's own tables (``astrospect.report``), so the file holds what
the terminal showed: per challenger, sigma_MAD and, for the PDF models, CRPS, coverage_68 and pit_ks; and
the two ratios the docs quote: the best registered CNN's sigma_MAD over the colour k-NN's, and the PDF
CNN's CRPS over the colour k-NN PDF's.
"""

from __future__ import annotations

import math
import time

import pandas as pd
import typer

from astrospect import results
from astrospect.models import registry as challengers
from astrospect.report import OURS, pdf_rows, session_report
from astrospect.settings import load_settings

KNN = "baseline-knn-full"
PDF_CNN = "pdf"


def _number(value: object) -> float | None:
    """A metric rounded as the report prints it; NaN (not measured for this model) as None."""
    if not isinstance(value, int | float) or math.isnan(value):
        return None
    return round(float(value), 4)


COLUMNS = ["model", "clipping", "registry", "sigma_mad", "crps", "coverage_68", "pit_ks"]


def report_rows(ours: pd.DataFrame, pdfs: pd.DataFrame) -> list[list[results.Scalar]]:
    """One row per challenger of the report (``ours``: our rows of ``comparison_frame``; ``pdfs``:
    ``pdf_rows``), metrics rounded as the report prints them."""
    by_model = pdfs.set_index("model")
    rows: list[list[results.Scalar]] = []
    for record in ours.to_dict(orient="records"):
        name = str(record["model"])
        pdf = by_model.loc[name] if name in by_model.index else None
        rows.append(
            [
                name,
                str(record["clipping"]),
                "champion" if "champion" in str(record["registry"]) else "",
                _number(record["sigma_mad"]),
                *(
                    _number(pdf[key]) if pdf is not None else None
                    for key in ("crps", "coverage_68", "pit_ks")
                ),
            ]
        )
    return rows


def headline(
    rows: list[list[results.Scalar]], baselines: set[str], codes: set[str]
) -> dict[str, results.Scalar]:
    """The best registered CNN and its sigma_MAD over the colour k-NN's and over the strongest photo-z code's
    (``codes``: the k-NN, the local linear fit, RAIL's estimators); the PDF CNN's CRPS over the colour k-NN
    PDF's; the champion. None where the night did not train what a ratio needs.

    The strongest code is the one with the lowest holdout sigma_MAD among those the night ran: picking the
    comparator on the holdout favours the codes, so the CNN's ratio is, if anything, pessimistic (the
    learning curve chooses both on validation instead)."""
    sigma = {str(row[0]): row[3] for row in rows}
    crps = {str(row[0]): row[4] for row in rows}
    cnns = {
        name: float(value)
        for name, value in sigma.items()
        if name not in baselines and isinstance(value, int | float)
    }
    best = min(cnns, key=lambda name: cnns[name]) if cnns else None
    knn, pdf_crps, knn_crps = sigma.get(KNN), crps.get(PDF_CNN), crps.get(KNN)
    code_sigma = {
        name: float(value)
        for name, value in sigma.items()
        if name in codes and isinstance(value, int | float)
    }
    strongest = min(code_sigma, key=lambda name: code_sigma[name]) if code_sigma else None
    return {
        "best_cnn": best,
        "strongest_code": strongest,
        "best_cnn_over_strongest_code": round(cnns[best] / code_sigma[strongest], 2)
        if best and strongest and code_sigma[strongest]
        else None,
        "best_cnn_over_knn": round(cnns[best] / knn, 2)
        if best and isinstance(knn, int | float) and knn
        else None,
        "pdf_crps_over_knn_crps": round(pdf_crps / knn_crps, 2)
        if isinstance(pdf_crps, int | float) and isinstance(knn_crps, int | float) and knn_crps
        else None,
        "champion": next((str(row[0]) for row in rows if row[2] == "champion"), None),
    }


def main(
    started: float = typer.Option(..., help="Unix time make started (the Makefile's RUN_STARTED)."),
    load_before: float | None = typer.Option(None, help="1-minute load average when make started."),
    command: str = typer.Option("make run", help="The command recorded in the file."),
) -> None:
    settings = load_settings()
    report = session_report(settings)
    ours = report.frame[report.frame["data"] == OURS]
    rows = report_rows(ours, pdf_rows(report.frame))
    elapsed = time.time() - started
    figures: dict[str, results.Scalar] = {
        "wall_seconds": round(elapsed),
        "wall_minutes": round(elapsed / 60, 1),
        "holdout_galaxies": int(ours["n"].max()) if not ours.empty else None,
        **headline(
            rows,
            baselines={c.name for c in challengers.registered() if c.baseline},
            codes={c.name for c in challengers.registered() if c.model_family == "code"},
        ),
    }
    path = results.record(
        "make-run",
        title="make run from a fresh clone",
        figures=figures,
        tables={"report": results.table(COLUMNS, rows)},
        load_before=load_before,
        command=command,
    )
    typer.echo(f"make run: {figures['wall_minutes']} min; figures written to {path}")


if __name__ == "__main__":
    typer.run(main)
