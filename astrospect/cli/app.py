"""The one ``astrospect`` app, its root options, and what the stage modules share.

Each stage module (data, gate, models, tracking, serving, studies) registers its commands on :data:`app`
with its help panel; ``--help`` lists the panels in data-flow order. Heavy libraries (TensorFlow, MLflow,
GE, BentoML) are imported inside each command, so ``--help`` and ``--version`` are instant and the Airflow
DAG can import the light modules at parse time.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from astrospect.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

# The help panels, in the order data flows through the system: commands are listed panel by panel.
DATA, GATE, MODELS, TRACKING, SERVING, STUDIES = PANELS = (
    "1 Data",
    "2 Gate",
    "3 Models",
    "4 Tracking",
    "5 Serving",
    "6 Studies",
)

T = TypeVar("T")


class DataFlowGroup(TyperGroup):
    """Lists its commands panel by panel in :data:`PANELS` order, in registration order within a panel."""

    # ctx: typer's own (vendored) click Context, which typer does not export under a public name.
    def list_commands(self, ctx: Any) -> list[str]:
        def panel(name: str) -> int:
            chosen = getattr(self.commands[name], "rich_help_panel", None)
            return PANELS.index(chosen) if chosen in PANELS else len(PANELS)

        return sorted(super().list_commands(ctx), key=panel)


app = typer.Typer(
    cls=DataFlowGroup,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def installed_version() -> str:
    """The installed package's version (from its git tag at build time, hatch-vcs)."""
    try:
        return importlib.metadata.version("astrospect")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: `make setup` or `pip install .`)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"astrospect {installed_version()}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the installed version and exit.",
    ),
) -> None:
    """AstroSpect: photometric redshifts from ugriz cutouts.

    The commands follow the data: make or import cutouts, gate them, train models, track and promote them,
    serve the champion. Every input is --data and every output --out.
    """


def print_frame(frame: pd.DataFrame, title: str) -> None:
    """Print a DataFrame as a table as wide as the terminal, floats to 4 decimals."""
    from rich.console import Console
    from rich.table import Table

    from astrospect.report import format_cell

    table = Table(title=title, show_lines=False)
    for column in frame.columns:
        table.add_column(str(column), justify="right" if frame[column].dtype.kind in "fiu" else "left")
    for row in frame.itertuples(index=False):
        table.add_row(
            *[format_cell(str(column), value) for column, value in zip(frame.columns, row, strict=True)]
        )
    Console().print(table)


def choice(value: str, allowed: tuple[str, ...], option: str) -> Any:
    """``value`` if it is one of ``allowed``, else a usage error naming the option and the choices."""
    if value not in allowed:
        raise typer.BadParameter(f"{option} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def either(documented: T | None, old: T | None, option: str, old_option: str) -> T | None:
    """The value of an option given by its documented name or by its old, hidden spelling (never both)."""
    if documented is not None and old is not None:
        raise typer.BadParameter(f"give {option} only (the old spelling {old_option} means the same)")
    return documented if documented is not None else old


def required(value: T | None, option: str) -> T:
    """A value that an option with a hidden old spelling must have by one name or the other."""
    if value is None:
        raise typer.BadParameter("missing: this option is required", param_hint=f"'{option}'")
    return value


class KeepsOldSpellings(TyperCommand):
    """A command with hidden old spellings (an input that was positional): its usage line leaves them out."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if not getattr(param, "hidden", False):
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class FromSettings:
    """An option's default taken from the settings (:func:`astrospect.settings.load_settings`) when the command
    runs, so the environment's value is the default. Click calls it for the value; help shows it as the
    effective value and the variable that sets it (``[default: 7 (ASTROSPECT_SEED)]``). Not a function, so
    typer prints ``str()`` of it rather than "(dynamic)"."""

    def __init__(self, name: str, variable: str | None = None) -> None:
        alias = Settings.model_fields[name].validation_alias if name in Settings.model_fields else None
        self.name = name
        self.variable = variable or (alias if isinstance(alias, str) else None)

    def __call__(self) -> Any:
        return getattr(load_settings(), self.name)

    def __str__(self) -> str:
        return f"{self()} ({self.variable})" if self.variable else str(self())

    def documented(self) -> str:
        """The default as the reference docs give it, whatever the environment of the build: the variable,
        else the settings' declared default."""
        declared = Settings.default(self.name) if self.name in Settings.model_fields else None
        shown = f"`{declared}`" if isinstance(declared, int | float | str) else "the settings'"
        return f"`{self.variable}`, else {shown}" if self.variable else shown


def old_positional_input() -> Any:
    """The positional input some commands took before --data, kept hidden so older scripts still work
    (the command needs ``cls=KeepsOldSpellings``)."""
    return typer.Argument(None, hidden=True, show_default=False)
