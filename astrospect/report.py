"""``astrospect report``: the latest session's challengers side by side from MLflow, in the terminal.

The seed's published figures sit beside ours, labelled: they were measured on real SDSS galaxies, ours on
simulated cutouts, so compare the pattern (full vs clipped, CNN vs colours), not the digits.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from astrospect.data.metrics import METRIC_NAMES
from astrospect.models import registry as challengers
from astrospect.pdf.metrics import PDF_METRIC_NAMES
from astrospect.settings import Settings
from astrospect.tracking import registry, sessions

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

OURS = "ours: simulated, fixed holdout"
SEED = "seed: real SDSS, published"
COLUMNS = ["model", "clipping", "data", "n", "registry", *METRIC_NAMES]


def comparison_frame(settings: Settings, parent_run_id: str | None = None) -> tuple[str, str, pd.DataFrame]:
    """(parent run id, session name, table): one row per finished challenger of the session, then the seed's."""
    if parent_run_id is None:
        session = sessions.latest_session(settings)
        if session is None:
            raise LookupError(
                f"experiment {settings.experiment_name!r} has no session with finished runs yet; run `make run` first"
            )
    else:
        session = sessions.get_session(settings, parent_run_id)
    champion = registry.champion(settings)
    rows = []
    for child in sessions.session_children(settings, session.run_id):
        version = child.model_version
        rows.append(
            {
                "model": child.challenger,
                "clipping": child.clipping,
                "data": OURS,
                "n": child.metrics.get("n_holdout", math.nan),
                "registry": f"v{version}" + (" champion" if champion and version == champion.version else "")
                if version
                else "",
                **{name: child.metrics.get(name, math.nan) for name in METRIC_NAMES},
            }
        )
    for challenger in challengers.registered():
        if challenger.published is not None:
            rows.append(
                {
                    "model": f"seed CNN {challenger.name}",
                    "clipping": challenger.clipping,
                    "data": SEED,
                    "n": math.nan,
                    "registry": "",
                    **{name: challenger.published.get(name, math.nan) for name in METRIC_NAMES},
                }
            )
    return session.run_id, session.name, pd.DataFrame(rows, columns=COLUMNS)


PDF_COLUMNS = ["model", "n", *PDF_METRIC_NAMES, "uncalibrated_coverage_68", "uncalibrated_pit_ks"]


def pdf_frame(settings: Settings, parent_run_id: str) -> pd.DataFrame:
    """The session's challengers that give PDFs, one row each: the PDF metric table on the same holdout
    (and, for a calibrated model, coverage and pit_ks before calibration). Never judge PIT alone: the
    N(z) null's is near-flat while it knows nothing about a galaxy."""
    rows = [
        {
            "model": child.challenger,
            "n": child.metrics.get("n_holdout", math.nan),
            **{name: child.metrics.get(name, math.nan) for name in PDF_COLUMNS[2:]},
        }
        for child in sessions.session_children(settings, parent_run_id)
        if child.output == "pdf"
    ]
    return pd.DataFrame(rows, columns=PDF_COLUMNS)


def render(frame: pd.DataFrame, title: str) -> Table:
    """A rich table: metrics to 4 decimals (fractions as %), a rule between our rows and the seed's."""
    from rich.table import Table

    table = Table(
        title=title, caption=f"{OURS} | {SEED}: different data, compare the pattern, not the digits"
    )
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in METRIC_NAMES or column == "n" else "left")
    previous_data = None
    for record in frame.to_dict(orient="records"):
        if previous_data is not None and record["data"] != previous_data:
            table.add_section()
        previous_data = record["data"]
        table.add_row(
            *[format_cell(column, record[column]) for column in COLUMNS],
            style="dim" if record["data"] == SEED else None,
        )
    return table


def render_pdfs(frame: pd.DataFrame) -> Table:
    from rich.table import Table

    table = Table(
        title="redshift PDFs on the same holdout (lower crps / cde_loss is better; calibrated: coverage_68 "
        "near 0.68, pit_ks near 0)"
    )
    for column in frame.columns:
        table.add_column(
            column.replace("uncalibrated_", "raw "), justify="left" if column == "model" else "right"
        )
    for record in frame.to_dict(orient="records"):
        table.add_row(*[format_cell(column, record[column]) for column in frame.columns])
    return table


def format_cell(column: str, value: object) -> str:
    """One table cell: metrics to 4 decimals, fractions as %, counts with separators, NaN as -."""
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if column == "n":
            return f"{value:,.0f}"
        if column.endswith("_frac") or column.endswith("_005"):
            return f"{100 * value:.2f}%"
        return f"{value:.4f}"
    return str(value)


def print_report(
    settings: Settings, parent_run_id: str | None = None, console: Console | None = None
) -> pd.DataFrame:
    """Print the comparison and the compare view's URL; return the table."""
    from rich.console import Console

    console = console or Console(width=220)
    parent_id, session_name, frame = comparison_frame(settings, parent_run_id)
    console.print(render(frame, f"{settings.experiment_name}: {session_name} ({parent_id})"))
    pdfs = pdf_frame(settings, parent_id)
    if not pdfs.empty:
        console.print(render_pdfs(pdfs))
    console.print(f"compare view: {sessions.compare_url(parent_id, settings)}", soft_wrap=True)
    return frame
