"""3 Models: the challenger registry, training one challenger, scoring a saved model, predicting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from astrospect.cli.app import (
    MODELS,
    FromSettings,
    KeepsOldSpellings,
    app,
    choice,
    either,
    old_positional_input,
    print_frame,
    required,
)
from astrospect.data.clipping import CLIPPINGS, UNCLIPPED
from astrospect.models.registry import DEFAULT_CHALLENGER, TrainConfig


def challenger_named(name: str) -> Any:
    """The registered challenger of that name, or a usage error listing the names."""
    from astrospect.models import registry as challengers

    return challengers.get(choice(name, tuple(c.name for c in challengers.registered()), "--challenger"))


def seed_option() -> Any:
    return typer.Option(
        FromSettings("seed"),
        "--seed",
        help="Seed of the weights, the shuffles and the augmentation.",
    )


def epochs_option() -> Any:
    return typer.Option(
        FromSettings("epochs"),
        "--epochs",
        help="Length of the learning-rate schedule (early stopping may end sooner).",
    )


def precision_option() -> Any:
    return typer.Option(
        FromSettings("precision"),
        "--precision",
        help="auto (bfloat16 on CPUs that have it, float16 on a GPU), float32, mixed_bfloat16, mixed_float16.",
    )


@app.command("challengers", rich_help_panel=MODELS)
def list_challengers() -> None:
    """The challenger registry: every model a session can train (ASTROSPECT_CHALLENGERS picks the set)."""
    import pandas as pd

    from astrospect.models import registry as challengers
    from astrospect.settings import load_settings

    session = {c.name for c in challengers.for_session(load_settings().challengers)}
    rows = [
        {
            "challenger": c.name,
            "clipping": c.clipping,
            "output": c.output,
            "baseline": "yes" if c.baseline else "",
            "in session": "yes" if c.name in session else "",
            "builder": c.builder,
            "description": c.description,
        }
        for c in challengers.registered()
    ]
    print_frame(pd.DataFrame(rows), "challengers")


@app.command(rich_help_panel=MODELS)
def train(
    data: Path = typer.Option(..., "--data", help="A shard, or a folder of shards."),
    out: Path = typer.Option(..., "--out", help="A new folder for the model, history and plots."),
    challenger: str = typer.Option(
        DEFAULT_CHALLENGER, help="A registered challenger (`astrospect challengers` lists them)."
    ),
    epochs: int = epochs_option(),
    seed: int = seed_option(),
    batch_size: int = typer.Option(TrainConfig.batch_size, help="The seed CNN's batch size."),
    patience: int = typer.Option(
        TrainConfig.patience, help="Early-stopping patience on the smoothed validation loss."
    ),
    learning_rate: float = typer.Option(
        TrainConfig.learning_rate, help="Peak learning rate, after the warm-up."
    ),
    warmup_epochs: int = typer.Option(
        TrainConfig.warmup_epochs, help="Linear learning-rate warm-up before the cosine decay."
    ),
    weight_decay: float = typer.Option(TrainConfig.weight_decay, help="AdamW's decoupled weight decay."),
    stretch: str = typer.Option(
        TrainConfig.stretch, help="Per-band pixel stretch before [0, 1]: asinh or linear (the seed CNN's)."
    ),
    augment: bool = typer.Option(TrainConfig.augment, help="Random rotations/flips of training cutouts."),
    precision: str = precision_option(),
    with_baseline: bool = typer.Option(
        True, help="Also fit the colour k-NN baseline on the same clipping and print it beside."
    ),
) -> None:
    """Train one challenger and score it on the fixed holdout (beside the colour baseline)."""
    from astrospect.data.dataset import select_splits
    from astrospect.data.shards import resolve_shards
    from astrospect.models.baselines import fit_colour_baseline
    from astrospect.models.evaluate import comparison_table, evaluate
    from astrospect.models.pipeline import run_challenger
    from astrospect.settings import PRECISIONS

    chosen = challenger_named(challenger)
    config = TrainConfig(
        out_dir=out,
        epochs=epochs,
        batch_size=batch_size,
        patience=patience,
        learning_rate=learning_rate,
        warmup_epochs=warmup_epochs,
        weight_decay=weight_decay,
        stretch=choice(stretch, ("asinh", "linear"), "--stretch"),
        augment=augment,
        seed=seed,
        precision=choice(precision, PRECISIONS, "--precision"),
    )
    splits = select_splits(resolve_shards(data), chosen.clipping)
    evaluations = [run_challenger(chosen, splits, config).evaluation]
    if with_baseline and not chosen.baseline:
        knn = fit_colour_baseline(splits)
        evaluations.append(
            evaluate(
                lambda cutouts: knn.predict(cutouts.images),
                splits.holdout,
                name=f"colour k-NN ({chosen.clipping})",
            )
        )
    print_frame(comparison_table(evaluations), f"holdout metrics: {chosen.name}")


@app.command(rich_help_panel=MODELS)
def evaluate(
    model: Path = typer.Option(..., "--model", help="A saved .keras model."),
    data: Path = typer.Option(..., "--data", help="The shards whose holdout to score on."),
    clipping: str = typer.Option(
        UNCLIPPED, help=f"Which training clipping the baseline row uses: {CLIPPINGS}."
    ),
    out: Path | None = typer.Option(None, "--out", help="Folder for the per-bin CSV and the plots."),
) -> None:
    """Score a saved model on the fixed holdout, beside the colour baseline; per-bin table and plots."""
    from astrospect.data.dataset import select_splits
    from astrospect.data.shards import resolve_shards
    from astrospect.models.baselines import fit_colour_baseline
    from astrospect.models.cnn import load_model
    from astrospect.models.evaluate import (
        comparison_table,
        evaluate_model,
        plot_predicted_vs_true,
        plot_residuals,
    )
    from astrospect.models.evaluate import evaluate as evaluate_predictor

    splits = select_splits(resolve_shards(data), choice(clipping, CLIPPINGS, "--clipping"))
    cnn = evaluate_model(load_model(model), splits.holdout, name=f"cnn ({model.name})")
    knn = fit_colour_baseline(splits)
    baseline = evaluate_predictor(
        lambda cutouts: knn.predict(cutouts.images), splits.holdout, name=f"colour k-NN ({clipping})"
    )
    print_frame(comparison_table([cnn, baseline]), "holdout metrics")
    print_frame(cnn.per_bin, "CNN per redshift bin")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        cnn.per_bin.to_csv(out / "per_bin_metrics.csv", index=False)
        plot_predicted_vs_true([cnn, baseline], out / "predicted_vs_true.png")
        plot_residuals([cnn, baseline], out / "residuals_vs_z.png")
        typer.echo(f"plots and per-bin table in {out}")


@app.command(rich_help_panel=MODELS, cls=KeepsOldSpellings)
def predict(
    model: Path = typer.Option(..., "--model", help="A saved .keras model."),
    data: Path | None = typer.Option(
        None, "--data", help="A shard or a folder of shards (labels optional). Required."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="File to write: a CSV, one row per cutout (default predictions.csv); with --pdf a qp file"
        " ending .hdf5 or .h5 (default predictions.hdf5).",
    ),
    pdf: bool = typer.Option(
        False, "--pdf", help="Write each cutout's redshift PDF as a qp HDF5 file (a PDF model only)."
    ),
    old_source: Path | None = old_positional_input(),
    old_output: Path | None = typer.Option(None, "-o", "--output", hidden=True),
) -> None:
    """Predict redshifts for every cutout of a shard or folder; writes objid, z_pred (and z_spec if known).

    With --pdf, writes the PDFs instead, as a file qp.read opens (objid, and z_spec if known, as ancillary
    data), for RAIL and qp without conversion.
    """
    from astrospect.pdf.bins import QP_SUFFIXES

    source = required(either(data, old_source, "--data", "SOURCE"), "--data")
    output = either(out, old_output, "--out", "--output") or Path(
        "predictions.hdf5" if pdf else "predictions.csv"
    )
    if output.exists():
        raise typer.BadParameter(f"{output} exists; choose another --out (nothing is overwritten)")
    if pdf and output.suffix not in QP_SUFFIXES:
        raise typer.BadParameter(
            f"{output}: a qp file needs the suffix .hdf5 or .h5 (qp.read chooses its reader by it)",
            param_hint="--out",
        )
    if not pdf:
        from astrospect.models.predict import predict_to_csv

        predictions = predict_to_csv(model, source, output)
        typer.echo(f"{len(predictions)} predictions written to {output}")
        return
    from astrospect.models.predict import NotAPdfModelError, predict_to_qp

    try:
        count = predict_to_qp(model, source, output)
    except NotAPdfModelError as error:
        raise typer.BadParameter(str(error), param_hint="--pdf") from error
    typer.echo(f"{count} PDFs written to {output} (qp.read opens it)")
