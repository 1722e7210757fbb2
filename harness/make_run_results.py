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

import typer

from astrospect import results
from astrospect.models import registry as challengers
from astrospect.report import OURS, comparison_frame, pdf_frame
from astrospect.settings import load_settings

KNN = "baseline-knn-full"
PDF_CNN = "pdf"


def _number(value: object) -> float | None:
    """A metric rounded as the report prints it; NaN (not measured for this model) as None."""
    if not isinstance(value, int | float) or math.isnan(value):
        return None
    return round(float(value), 4)


def main(
    started: float = typer.Option(..., help="Unix time make started (the Makefile's RUN_STARTED)."),
    load_before: float | None = typer.Option(None, help="1-minute load average when make started."),
    command: str = typer.Option("make run", help="The command recorded in the file."),
) -> None:
    settings = load_settings()
    parent_id, _, frame = comparison_frame(settings)
    ours = frame[frame["data"] == OURS]
    pdfs = pdf_frame(settings, parent_id).set_index("model")
    rows = []
    for record in ours.to_dict(orient="records"):
        name = str(record["model"])
        pdf = pdfs.loc[name] if name in pdfs.index else None
        rows.append(
            [
                name,
                record["clipping"],
                "champion" if "champion" in str(record["registry"]) else "",
                _number(record["sigma_mad"]),
                *(
                    _number(pdf[key]) if pdf is not None else None
                    for key in ("crps", "coverage_68", "pit_ks")
                ),
            ]
        )
    sigma: dict[str, float | None] = {str(row[0]): row[3] for row in rows}
    crps: dict[str, float | None] = {str(row[0]): row[4] for row in rows}
    baselines = {c.name for c in challengers.registered() if c.baseline}
    cnns = {name: value for name, value in sigma.items() if name not in baselines and value is not None}
    pdf_crps, knn_crps = crps.get(PDF_CNN), crps.get(KNN)
    best = min(cnns, key=lambda name: cnns[name]) if cnns else None
    knn = sigma.get(KNN)
    figures: dict[str, results.Scalar] = {
        "wall_seconds": round(time.time() - started),
        "wall_minutes": round((time.time() - started) / 60, 1),
        "holdout_galaxies": int(ours["n"].max()) if not ours.empty else None,
        "best_cnn": best,
        "best_cnn_over_knn": round(cnns[best] / knn, 2) if best and knn else None,
        "pdf_crps_over_knn_crps": round(pdf_crps / knn_crps, 2) if pdf_crps and knn_crps else None,
        "champion": next((row[0] for row in rows if row[2] == "champion"), None),
    }
    path = results.record(
        "make-run",
        title="make run from a fresh clone",
        figures=figures,
        tables={
            "report": results.table(
                ["model", "clipping", "registry", "sigma_mad", "crps", "coverage_68", "pit_ks"], rows
            )
        },
        load_before=load_before,
        command=command,
    )
    typer.echo(f"make run: {figures['wall_minutes']} min; figures written to {path}")


if __name__ == "__main__":
    typer.run(main)
