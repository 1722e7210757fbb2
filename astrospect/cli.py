"""The ``astrospect`` command line: one command per pipeline stage, nothing else.

Heavy libraries (TensorFlow, MLflow, GE, BentoML) are imported inside each command, so ``--help`` is
instant and the Airflow DAG can import this package's light modules at parse time.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="AstroSpect: photometric redshifts from ugriz cutouts.")


def _print_frame(frame: object, title: str) -> None:
    """Print a DataFrame as a terminal table, floats to 4 decimals."""
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    assert isinstance(frame, pd.DataFrame)
    table = Table(title=title, show_lines=False)
    for column in frame.columns:
        table.add_column(str(column), justify="right" if frame[column].dtype.kind in "fiu" else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*[_cell(value) for value in row])
    Console(width=200).print(table)


def _cell(value: object) -> str:
    import math

    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 10 else f"{value:.4f}"
    return str(value)


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="A shard, or a folder of shards."),
    variant: str = typer.Option("full", help="full, or clipped (trains on z <= 0.4)."),
    out: Path = typer.Option(..., "--out", help="A new folder for the model, history and plots."),
    epochs: int = typer.Option(100, help="Maximum epochs (early stopping may end sooner)."),
    batch_size: int = typer.Option(156, help="The seed's batch size."),
    patience: int = typer.Option(10, help="Early-stopping patience on validation loss."),
    learning_rate: float = typer.Option(1e-3, help="Adam's learning rate."),
    stretch: str = typer.Option("asinh", help="Per-band pixel stretch before [0, 1]: asinh or linear (the seed's)."),
    seed: int = typer.Option(42),
) -> None:
    """Train the seed CNN on one variant and score it with the colour baseline on the holdout."""
    from astrospect.data.shards import resolve_shards
    from astrospect.evaluate import comparison_table
    from astrospect.pipeline import run_variant
    from astrospect.train import TrainConfig

    if variant not in ("full", "clipped"):
        raise typer.BadParameter(f"--variant must be full or clipped, got {variant!r}")
    if stretch not in ("asinh", "linear"):
        raise typer.BadParameter(f"--stretch must be asinh or linear, got {stretch!r}")
    config = TrainConfig(
        variant=variant,  # type: ignore[arg-type]
        shards=resolve_shards(data),
        out_dir=out,
        epochs=epochs,
        batch_size=batch_size,
        patience=patience,
        learning_rate=learning_rate,
        stretch=stretch,  # type: ignore[arg-type]
        seed=seed,
    )
    outcome = run_variant(config)
    _print_frame(comparison_table([outcome.evaluation, outcome.baseline_evaluation]), f"holdout metrics: {variant}")


@app.command()
def evaluate(
    model: Path = typer.Option(..., "--model", help="A saved .keras model."),
    data: Path = typer.Option(..., "--data", help="The shards whose holdout to score on."),
    variant: str = typer.Option("full", help="Which training clipping the baseline row uses."),
    out: Path | None = typer.Option(None, "--out", help="Folder for the per-bin CSV and the plots."),
) -> None:
    """Score a saved model on the fixed holdout, beside the colour baseline; per-bin table and plots."""
    from astrospect.baseline import fit_colour_baseline
    from astrospect.data.shards import resolve_shards
    from astrospect.evaluate import comparison_table, evaluate_baseline, evaluate_model, plot_predicted_vs_true, plot_residuals
    from astrospect.model import load_model

    shards = resolve_shards(data)
    cnn = evaluate_model(load_model(model), shards, name=f"cnn ({model.name})", variant=variant)
    baseline = evaluate_baseline(fit_colour_baseline(shards, variant), shards, name=f"baseline-knn-{variant}", variant=variant)  # type: ignore[arg-type]
    _print_frame(comparison_table([cnn, baseline]), "holdout metrics")
    _print_frame(cnn.per_bin, "CNN per redshift bin")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        cnn.per_bin.to_csv(out / "per_bin_metrics.csv", index=False)
        plot_predicted_vs_true([cnn, baseline], out / "predicted_vs_true.png")
        plot_residuals([cnn, baseline], out / "residuals_vs_z.png")
        typer.echo(f"plots and per-bin table in {out}")


@app.command()
def predict(
    source: Path = typer.Argument(..., help="A shard or a folder of shards (labels optional)."),
    model: Path = typer.Option(..., "--model", help="A saved .keras model."),
    output: Path = typer.Option(Path("predictions.csv"), "-o", "--output", help="CSV to write, one row per cutout."),
) -> None:
    """Predict redshifts for every cutout of a shard or folder; writes objid, z_pred (and z_spec if known)."""
    from astrospect.predict import predict_to_csv

    if output.exists():
        raise typer.BadParameter(f"{output} exists; choose another --output (nothing is overwritten)")
    predictions = predict_to_csv(model, source, output)
    typer.echo(f"{len(predictions)} predictions written to {output}")
