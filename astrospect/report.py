"""``astrospect report``: the latest session's full vs clipped vs baseline metrics from MLflow, in the terminal.

The seed's published figures sit beside ours, labelled: they were measured on real SDSS galaxies, ours on
simulated cutouts, so compare the pattern (full vs clipped, CNN vs colours), not the digits.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from astrospect import tracking
from astrospect.metrics import METRIC_NAMES, SEED_RESULTS
from astrospect.settings import Settings

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

OURS = "ours: simulated, fixed holdout"
SEED = "seed: real SDSS, published"
COLUMNS = ["model", "variant", "data", "n", "registry", *METRIC_NAMES]


def comparison_frame(settings: Settings, parent_run_id: str | None = None) -> tuple[str, str, pd.DataFrame]:
    """(parent run id, session name, table): one row per finished child of the session, then the seed's rows."""
    client = tracking.client_for(settings)
    if parent_run_id is None:
        session = tracking.latest_session(settings)
        if session is None:
            raise LookupError(
                f"experiment {settings.experiment_name!r} has no session with finished runs yet; run `make run` first"
            )
    else:
        session = client.get_run(parent_run_id)
    parent_id = str(session.info.run_id)
    champion = _champion_version(settings)
    rows = []
    for run in tracking.session_children(settings, parent_id):
        tags, metrics = run.data.tags, run.data.metrics
        version = tags.get("model_version")
        registry = (
            f"v{version}" + (" champion" if version is not None and version == champion else "")
            if version
            else ""
        )
        variant = tags.get(tracking.TAG_DATA_VARIANT) or tags.get(tracking.TAG_VARIANT, "")
        rows.append(
            {
                "model": run.info.run_name,
                "variant": variant,
                "data": OURS,
                "n": metrics.get("n_holdout", math.nan),
                "registry": registry,
                **{name: metrics.get(name, math.nan) for name in METRIC_NAMES},
            }
        )
    for variant, values in SEED_RESULTS.items():
        rows.append(
            {
                "model": f"seed CNN {variant}",
                "variant": variant,
                "data": SEED,
                "n": math.nan,
                "registry": "",
                **values,
            }
        )
    return parent_id, str(session.info.run_name), pd.DataFrame(rows, columns=COLUMNS)


def _champion_version(settings: Settings) -> str | None:
    from mlflow.exceptions import MlflowException

    client = tracking.client_for(settings)
    try:
        aliases = client.get_registered_model(settings.registered_model_name).aliases
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = aliases.get(tracking.CHAMPION_ALIAS)
    return str(version) if version is not None else None


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
    console.print(f"compare view: {tracking.compare_url(parent_id, settings)}", soft_wrap=True)
    return frame
