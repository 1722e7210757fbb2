"""6 Studies: what limits the models, measured (a learning curve, the colour baseline by aperture)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from astrospect.cli.app import (
    STUDIES,
    KeepsOldSpellings,
    app,
    choice,
    either,
    old_positional_input,
    print_frame,
    required,
)
from astrospect.cli.models import challenger_named, epochs_option, precision_option
from astrospect.data.clipping import CLIPPINGS, UNCLIPPED

if TYPE_CHECKING:
    from astrospect.models.curve_points import CurvePoint


@app.command("learning-curve", rich_help_panel=STUDIES, cls=KeepsOldSpellings)
def learning_curve(
    data: Path | None = typer.Option(
        None,
        "--data",
        help="A folder of labelled shards: its fixed validation and holdout splits. Required.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="The study's folder: one model folder and one points/<challenger>-<n_train>.json per point, the "
        "table, the plot. Points already there from the same data and epochs/seed are reused, not retrained; "
        "the table joins every point in it.",
    ),
    sizes: str = typer.Option(
        "6000,12000,24000,48000", help="Training-set sizes, nested subsets of the training split."
    ),
    challenger: list[str] = typer.Option(
        ["cnn-ebv", "baseline-knn-full"], "--challenger", help="Registered challengers, repeatable."
    ),
    epochs: int | None = epochs_option(),
    precision: str | None = precision_option(),
    track: bool = typer.Option(True, help="Log the table, the plot and every point's curves to MLflow."),
    record: bool = typer.Option(
        False,
        help="Also write the table to docs/results/learning-curve.json, the docs' source (make learning-curve).",
    ),
    old_data: Path | None = old_positional_input(),
) -> None:
    """sigma_MAD of challengers against training-set size on one fixed holdout; logged to MLflow."""
    from astrospect import results
    from astrospect.data.shards import resolve_shards
    from astrospect.models.curve_points import POINTS_FOLDER, PointMismatchError
    from astrospect.models.learning_curve import run_learning_curve
    from astrospect.models.registry import TrainConfig
    from astrospect.settings import PRECISIONS, load_settings

    shards = required(either(data, old_data, "--data", "DATA"), "--data")
    load_before = results.load_average()
    settings = load_settings()
    names = [challenger_named(name).name for name in challenger]
    config = TrainConfig(
        out_dir=out,
        epochs=settings.epochs if epochs is None else epochs,
        seed=settings.seed,
        precision=choice(precision or settings.precision, PRECISIONS, "--precision"),
    )
    if out.exists() and any(out.iterdir()) and not (out / POINTS_FOLDER).is_dir():
        raise typer.BadParameter(
            f"{out} is not empty and holds no learning-curve points: choose a new --out folder",
            param_hint="--out",
        )
    size_list = [int(size) for size in sizes.split(",")]
    try:
        points = run_learning_curve(resolve_shards(shards), size_list, names, config)
    except PointMismatchError as error:
        raise typer.BadParameter(str(error), param_hint="--out") from error
    _write_study(points, out, shards, record=record, load_before=load_before)
    if track:
        from astrospect.models.learning_curve import curve_table
        from astrospect.tracking.studies import log_learning_curve

        table, figure = curve_table(points), out / "learning_curve.png"
        run_id = log_learning_curve(
            settings, points, table, figure, {**config.params(), "data": str(shards), "sizes": sizes}
        )
        typer.echo(f"logged to MLflow: run {run_id} ({settings.mlflow_tracking_uri})")


def _write_study(
    points: list[CurvePoint], out: Path, shards: Path, *, record: bool, load_before: float | None
) -> None:
    """The table (printed, and as CSV), every point as JSON and the plot into ``out``; the docs' results
    file too where ``record``."""
    import json

    import pandas as pd

    from astrospect.models.curve_points import POINTS_FOLDER
    from astrospect.models.learning_curve import curve_table, plot_learning_curve, record_learning_curve

    table = curve_table(points)
    plot_learning_curve(points, out / "learning_curve.png")
    pd.DataFrame(table).to_csv(out / "learning_curve.csv", index=False)
    (out / "learning_curve.json").write_text(json.dumps([vars(p) for p in points], indent=1, default=str))
    print_frame(pd.DataFrame(table), f"learning curve ({shards})")
    if record:
        joined = (
            f"Every point in {out / POINTS_FOLDER}: trained by this command or by earlier runs into the same "
            "--out on the same data (each point file names its data digest, epochs and seed)."
        )
        typer.echo(f"figures written to {record_learning_curve(points, load_before, joined)}")


@app.command("colour-sweep", rich_help_panel=STUDIES, cls=KeepsOldSpellings)
def colour_sweep(
    data: Path | None = typer.Option(
        None, "--data", help="A folder of labelled shards (or one shard). Required."
    ),
    clipping: str = typer.Option(UNCLIPPED, help=f"Which training clipping the k-NN uses: {CLIPPINGS}."),
    old_data: Path | None = old_positional_input(),
) -> None:
    """The colour k-NN with its colours in each aperture radius, on the same split: the bar a CNN must clear."""
    import pandas as pd

    from astrospect.data.dataset import select_splits
    from astrospect.data.shards import resolve_shards
    from astrospect.models.baselines import aperture_sweep

    shards = required(either(data, old_data, "--data", "DATA"), "--data")
    splits = select_splits(resolve_shards(shards), choice(clipping, CLIPPINGS, "--clipping"))
    print_frame(
        pd.DataFrame(aperture_sweep(splits)),
        f"colour k-NN by aperture ({clipping}; the baseline picks by val_sigma_mad)",
    )
