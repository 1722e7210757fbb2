"""``astrospect report``: the latest session's challengers side by side from MLflow, in the terminal.

The seed CNN's published figures sit beside ours, labelled: they were measured on real SDSS galaxies, ours
on simulated cutouts, so compare the pattern (full vs clipped, CNN vs colours), not the digits.

The table fits the terminal it is printed in: by default it holds what decides the night (:data:`NARROW`);
``wide`` prints every metric, the point and the PDF tables apart; :func:`to_json` and :func:`to_csv` carry
every column for scripts.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from astrospect.data.metrics import METRIC_NAMES
from astrospect.models import registry as challengers
from astrospect.pdf.metrics import PDF_METRIC_NAMES
from astrospect.settings import Settings
from astrospect.tracking import registry, sessions

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from astrospect.tracking.registry import RegisteredVersion
    from astrospect.tracking.tags import ChildRun

OURS = "ours: simulated, fixed holdout"
SEED = "seed: real SDSS, published"
COLUMNS = ["model", "clipping", "data", "n", "registry", *METRIC_NAMES]
PDF_COLUMNS = ["model", "n", *PDF_METRIC_NAMES, "uncalibrated_coverage_68", "uncalibrated_pit_ks"]
# Every column, as json and csv carry them: the point metrics, then the PDF metrics (NaN for a point model).
ALL_COLUMNS = [*COLUMNS[:3], "output", *COLUMNS[3:], *PDF_COLUMNS[2:]]
# What decides the night, with the short headers that fit 100 columns.
NARROW = {
    "model": "model",
    "clipping": "clip",
    "n": "n",
    "registry": "registry",
    "sigma_mad": "sigma_MAD",
    "catastrophic_outlier_frac": "out>0.15",
    "outlier_frac_005": "out>0.05",
    "bias": "bias",
    "crps": "CRPS",
    "coverage_68": "cov68",
}
NARROW_CAPTION = (
    "out>0.15: |dz| > 0.15; out>0.05: |dz|/(1+z) > 0.05; CRPS and cov68 (near 0.68 when calibrated) for "
    "models that give PDFs. Dim rows: the seed CNN's published figures on real SDSS, a different data set: "
    "compare the pattern, not the digits. --wide: every metric."
)


@dataclass(frozen=True)
class SessionReport:
    """One session's table: one row per finished challenger, then the seed CNN's published rows."""

    run_id: str
    name: str
    title: str
    frame: pd.DataFrame  # ALL_COLUMNS
    compare_url: str


def session_report(settings: Settings, parent_run_id: str | None = None) -> SessionReport:
    """The session (default: the latest with finished runs) read from MLflow, every column."""
    if parent_run_id is None:
        session = sessions.latest_session(settings)
        if session is None:
            raise LookupError(
                f"experiment {settings.experiment_name!r} has no session with finished runs yet; run `make run` first"
            )
    else:
        session = sessions.get_session(settings, parent_run_id)
    children = sessions.session_children(settings, session.run_id)
    rows = [*_our_rows(children, registry.champion(settings)), *_seed_rows()]
    url = sessions.compare_url_for(
        settings.mlflow_ui_url,
        [child.run_id for child in children],
        sorted({child.experiment_id for child in children}),
    )
    return SessionReport(
        run_id=session.run_id,
        name=session.name,
        title=f"{settings.experiment_name}: {session.name} ({session.run_id})",
        frame=pd.DataFrame(rows, columns=ALL_COLUMNS),
        compare_url=url,
    )


def _our_rows(children: list[ChildRun], champion: RegisteredVersion | None) -> list[dict[str, Any]]:
    rows = []
    for child in children:
        version = child.model_version
        alias = " champion" if champion is not None and version == champion.version else ""
        rows.append(
            {
                "model": child.challenger,
                "clipping": child.clipping,
                "data": OURS,
                "output": child.output,
                "n": child.metrics.get("n_holdout", math.nan),
                "registry": f"v{version}{alias}" if version else "",
                **{name: child.metrics.get(name, math.nan) for name in ALL_COLUMNS[6:]},
            }
        )
    return rows


def _seed_rows() -> list[dict[str, Any]]:
    return [
        {
            "model": f"seed CNN {challenger.name}",
            "clipping": challenger.clipping,
            "data": SEED,
            "output": challenger.output,
            "n": math.nan,
            "registry": "",
            **{name: challenger.published.get(name, math.nan) for name in ALL_COLUMNS[6:]},
        }
        for challenger in challengers.registered()
        if challenger.published is not None
    ]


def comparison_frame(settings: Settings, parent_run_id: str | None = None) -> tuple[str, str, pd.DataFrame]:
    """(parent run id, session name, point-metric table): one row per finished challenger, then the seed's."""
    report = session_report(settings, parent_run_id)
    return report.run_id, report.name, report.frame[COLUMNS]


def pdf_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Our challengers that give PDFs: the PDF metric table on the same holdout (and, for a calibrated model,
    coverage and pit_ks before calibration). Never judge PIT alone: the N(z) null's is near-flat while it
    knows nothing about a galaxy."""
    return frame[(frame["data"] == OURS) & (frame["output"] == "pdf")][PDF_COLUMNS].reset_index(drop=True)


NARROW_WIDTH = 100  # the narrow table's widest case (render_narrow)


def render_narrow(report: SessionReport) -> Table:
    """What decides the night in one table that fits 100 columns: no cell wraps or is cut there."""
    from rich import box
    from rich.table import Table

    # One space between columns, a rule under the header: the worst case (a 21-letter name such as
    # baseline-local-linear, 123456 galaxies, "v100 champion") is 100 columns wide.
    table = Table(title=report.title, caption=NARROW_CAPTION, box=box.SIMPLE_HEAD, show_edge=False, padding=0)
    cells = {column: [format_cell(column, value) for value in report.frame[column]] for column in NARROW}
    for column, header in NARROW.items():
        if column in ("model", "clipping", "registry"):  # in a narrower terminal, names are cut first
            table.add_column(header, no_wrap=True, overflow="ellipsis")
        else:  # a number is never cut
            width = max(len(header), *(len(cell) for cell in cells[column]))
            table.add_column(header, justify="right", no_wrap=True, min_width=width)
    _add_rows(table, report.frame, list(NARROW))
    return table


def render(frame: pd.DataFrame, title: str) -> Table:
    """The point metrics, every one (the wide view): a rule between our rows and the seed's."""
    from rich.table import Table

    table = Table(
        title=title, caption=f"{OURS} | {SEED}: different data, compare the pattern, not the digits"
    )
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in METRIC_NAMES or column == "n" else "left")
    _add_rows(table, frame, COLUMNS)
    return table


def _add_rows(table: Table, frame: pd.DataFrame, columns: list[str]) -> None:
    previous_data = None
    for record in frame.to_dict(orient="records"):
        if previous_data is not None and record["data"] != previous_data:
            table.add_section()
        previous_data = record["data"]
        table.add_row(
            *[format_cell(column, record[column]) for column in columns],
            style="dim" if record["data"] == SEED else None,
        )


def render_pdfs(frame: pd.DataFrame) -> Table:
    """The PDF metrics, every one (the wide view)."""
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
    """One table cell: metrics to 4 decimals, fractions as %, counts as plain integers, NaN as -."""
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if column == "n":  # no separators: the narrow table's column budget (render_narrow)
            return f"{value:.0f}"
        if column.endswith("_frac") or column.endswith("_005"):
            return f"{100 * value:.2f}%"
        if column == "bias":
            return f"{value:+.4f}"
        return f"{value:.4f}"
    return str(value)


def print_report(report: SessionReport, console: Console | None = None, *, wide: bool = False) -> None:
    """Print the table(s) and the compare view's URL, as wide as the console (the terminal's by default)."""
    from rich.console import Console

    if console is None:
        console = Console()
        if not console.is_terminal:  # a log or a pipe: Rich would assume 80 columns and cut the numbers
            console.width = max(console.width, NARROW_WIDTH)
    if wide:
        console.print(render(report.frame, report.title))
        pdfs = pdf_rows(report.frame)
        if not pdfs.empty:
            console.print(render_pdfs(pdfs))
    else:
        console.print(render_narrow(report))
    console.print(f"compare view: {report.compare_url}", soft_wrap=True)


def to_json(report: SessionReport) -> str:
    """The session and every column of every row, NaN as null."""
    rows = [
        {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in row.items()}
        for row in report.frame.to_dict(orient="records")
    ]
    document = {
        "session": report.name,
        "run_id": report.run_id,
        "compare_view": report.compare_url,
        "rows": rows,
    }
    return json.dumps(document, indent=1, allow_nan=False)


def to_csv(report: SessionReport) -> str:
    """Every column of every row, NaN as an empty cell."""
    buffer = io.StringIO()
    report.frame.to_csv(buffer, index=False)
    return buffer.getvalue()
