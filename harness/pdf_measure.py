"""Measurements behind the PDF challenger's design (issue 14), on a simulated set; not part of the pipeline.

    python -m harness.pdf_measure train DATA OUT [--bins 280] [--smoothing 0] [--epochs 40]
    python -m harness.pdf_measure table DATA --seed-model M.keras PDF_RUN_DIR [PDF_RUN_DIR ...] --out DIR
    python -m harness.pdf_measure levers DATA [--rounds 7 --steps 8]

``train`` fits the PDF CNN the way the seed CNN trains (same streaming, augmentation, Adam, early stopping on
validation loss), on cross-entropy against binned spec-z. ``table`` scores it on the holdout before and
after temperature scaling beside the N(z) null, the colour k-NN PDF and the seed CNN's point estimate.
``levers`` times training steps (images/s) under XLA, bfloat16 and batch sizes against float32, in one
process, round-robin in short turns so the shared machine's bursts of load hit every configuration alike.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import typer

from astrospect.data.clipping import UNCLIPPED
from astrospect.data.dataset import (
    iter_selected,
    iter_selected_cutouts,
    make_tf_dataset,
    sample_images,
    select_splits,
)
from astrospect.data.metrics import metric_table
from astrospect.data.shards import resolve_shards
from astrospect.models.baselines import colour_tables, fit_colour_baseline, knn_pdf
from astrospect.models.calibration import calibrate_pdf_model
from astrospect.models.cnn import build_pdf_cnn, build_seed_cnn, fit_input_scaling, load_model, pdf_bins
from astrospect.models.predict import predict_pdf, predict_redshift
from astrospect.models.train import SCALING_SAMPLE, EpochReport
from astrospect.pdf.baselines import nz_null_pdf
from astrospect.pdf.bins import POINT_ESTIMATES, RedshiftBins, RedshiftPdfs, encode_redshift_bins
from astrospect.pdf.metrics import pdf_metric_table, pit_values
from astrospect.pdf.plots import plot_coverage_curve, plot_example_pdfs, plot_pit_histogram
from astrospect.settings import get_logger

log = get_logger("harness.pdf_measure")
app = typer.Typer(add_completion=False, no_args_is_help=True)
BATCH = 156  # the seed's


def _pdf_dataset(
    rows: Any,
    bins: RedshiftBins,
    smoothing: float,
    *,
    shuffle: bool,
    augment: bool,
    batch: int,
    seed: int = 42,
) -> Any:
    dataset = make_tf_dataset(rows, batch, shuffle=shuffle, seed=seed, augment=augment)
    return dataset.map(lambda images, z: (images, encode_redshift_bins(z, bins, smoothing)))


@app.command()
def train(
    data: Path,
    out: Path,
    bins: int = typer.Option(280, help="Bins over 0-0.7."),
    z_max: float = typer.Option(0.7),
    smoothing: float = typer.Option(0.0, help="Gaussian label smoothing, in redshift."),
    epochs: int = typer.Option(40),
    patience: int = typer.Option(10),
    precision: str = typer.Option("float32", help="Keras dtype policy: float32 or mixed_bfloat16."),
    seed_cnn: bool = typer.Option(
        False, help="Train the seed CNN (MSE) instead, e.g. to compare precisions."
    ),
    seed: int = typer.Option(42, help="Weights, shuffling and augmentation seed (run-to-run spread)."),
) -> None:
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(seed)
    shards = resolve_shards(data)
    redshift_bins = RedshiftBins.uniform(0.0, z_max, bins)
    splits = select_splits(shards, UNCLIPPED)
    train_rows, val_rows = splits.train, splits.val
    scaling = fit_input_scaling(sample_images(train_rows, SCALING_SAMPLE))
    if seed_cnn:  # as astrospect.models.train does it, but in the chosen precision
        model = build_seed_cnn(scaling, float(train_rows.redshift.min()), float(train_rows.redshift.max()))
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        train_data = make_tf_dataset(train_rows, BATCH, shuffle=True, seed=seed, augment=True)
        val_data = make_tf_dataset(val_rows, BATCH, shuffle=False, seed=42)
    else:
        model = build_pdf_cnn(scaling, redshift_bins)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
        train_data = _pdf_dataset(
            train_rows, redshift_bins, smoothing, shuffle=True, augment=True, batch=BATCH, seed=seed
        )
        val_data = _pdf_dataset(val_rows, redshift_bins, smoothing, shuffle=False, augment=False, batch=BATCH)
    throughput = EpochReport(len(train_rows), epochs)
    fit = model.fit(
        train_data,
        validation_data=val_data,
        epochs=epochs,
        callbacks=[
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
            throughput,
        ],
        shuffle=False,
        verbose=0,
    )
    out.mkdir(parents=True, exist_ok=False)
    model.save(out / "model.keras")
    history = {name: [float(v) for v in values] for name, values in fit.history.items()}
    (out / "run.json").write_text(
        json.dumps(
            {
                "bins": bins,
                "z_max": z_max,
                "smoothing": smoothing,
                "precision": precision,
                "seed_cnn": seed_cnn,
                "seed": seed,
                "epochs_run": len(history["loss"]),
                "median_images_per_s": float(np.median(throughput.rates)),
                "history": history,
            },
            indent=1,
        )
    )
    log.info("saved %s after %d epochs", out / "model.keras", len(history["loss"]))


def _holdout_pdfs(model: keras.Model, rows: Any) -> RedshiftPdfs:
    return RedshiftPdfs.concatenate([predict_pdf(model, x) for x, _, _ in iter_selected(rows)])


def _row(name: str, pdfs: RedshiftPdfs, z: np.ndarray) -> dict[str, Any]:
    row: dict[str, Any] = {"model": name, **pdf_metric_table(pdfs, z)}
    for kind in POINT_ESTIMATES:
        row[f"sigma_mad_{kind}"] = metric_table(z, pdfs.point(kind))["sigma_mad"]
    return row


@app.command()
def table(
    data: Path,
    pdf_runs: list[Path],
    seed_model: Path = typer.Option(..., help="The seed CNN full, trained by `astrospect train`."),
    out: Path = typer.Option(...),
) -> None:
    shards = resolve_shards(data)
    splits = select_splits(shards, UNCLIPPED)
    train_rows, val_rows, holdout = splits.train, splits.val, splits.holdout
    z = holdout.redshift.astype(np.float64)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []

    seed = load_model(seed_model)
    seed_pred = np.concatenate([predict_redshift(seed, x) for x, _, _ in iter_selected(holdout)])
    seed_sigma = metric_table(z, seed_pred)["sigma_mad"]
    rows.append({"model": "seed-cnn-full (point)", "sigma_mad_point": seed_sigma})

    first_bins: RedshiftBins | None = None
    figures: dict[str, RedshiftPdfs] = {}
    for run in pdf_runs:
        model = load_model(run / "model.keras")
        bins = pdf_bins(model)
        assert bins is not None, f"{run}: not a PDF model"
        first_bins = first_bins or bins
        label = run.name
        before = _holdout_pdfs(model, holdout)
        rows.append(_row(f"{label} T=1", before, z))
        report = calibrate_pdf_model(model, iter_selected_cutouts(val_rows))
        after = _holdout_pdfs(model, holdout)
        rows.append(
            {
                **_row(f"{label} T={report['temperature']:.3f} shift={report['shift']:+.4f}", after, z),
                **report,
            }
        )
        if bins == first_bins:
            figures[f"{label} (T={report['temperature']:.2f})"] = after
            figures.setdefault(f"{label} (T=1)", before)

    assert first_bins is not None
    null = nz_null_pdf(train_rows.redshift, first_bins, len(z))
    rows.append(_row("N(z) null", null, z))
    baseline = fit_colour_baseline(splits)
    colours = colour_tables(holdout, [baseline.aperture_arcsec])[baseline.aperture_arcsec]
    assert np.array_equal(colours.redshift, holdout.redshift)
    knn = knn_pdf(baseline, colours.features, first_bins)
    rows.append(
        {
            **_row(f"colour k-NN PDF (k={baseline.k})", knn, z),
            "sigma_mad_point": metric_table(z, baseline.predict_features(colours.features))["sigma_mad"],
        }
    )
    figures["N(z) null"] = null
    figures["colour k-NN"] = knn

    for row in rows:
        for kind in POINT_ESTIMATES:
            if f"sigma_mad_{kind}" in row:
                row[f"ratio_{kind}_to_seed"] = row[f"sigma_mad_{kind}"] / seed_sigma
    (out / "table.json").write_text(json.dumps(rows, indent=1))
    pits = {name: pit_values(pdfs, z) for name, pdfs in figures.items()}
    plot_pit_histogram(pits, out / "pit_histogram.png")
    plot_coverage_curve(pits, out / "coverage_curve.png")
    examples = {name: probs for name, probs in figures.items() if "T=1)" not in name and "null" not in name}
    plot_example_pdfs(examples, z, out / "example_pdfs.png")
    for row in rows:
        log.info("%s", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})


def _train_steps(model: keras.Model, batches: Any, steps: int) -> None:
    for _ in range(steps):
        images, targets = next(batches)
        model.train_on_batch(images, targets)


@app.command()
def levers(
    data: Path,
    rounds: int = typer.Option(7, help="Round-robin rounds; each times every configuration once."),
    steps: int = typer.Option(8, help="Training steps per configuration per round."),
) -> None:
    """images/s of training steps on the real streamed pipeline, per configuration, in this process.

    The machine is shared, so load comes in bursts: every configuration is built (and compiled) once, then
    timed in short turns, round-robin, and the median turn is kept; ratios are against float32's median.
    """
    shards = resolve_shards(data)
    train_rows = select_splits(shards, UNCLIPPED).train
    scaling = fit_input_scaling(sample_images(train_rows, SCALING_SAMPLE))
    bins = RedshiftBins.uniform(0.0, 0.7, 280)
    configs: list[tuple[str, str, bool, int, str]] = [
        ("float32", "float32", False, BATCH, "seed"),
        ("float32 + XLA", "float32", True, BATCH, "seed"),
        ("bfloat16", "mixed_bfloat16", False, BATCH, "seed"),
        ("bfloat16 + XLA", "mixed_bfloat16", True, BATCH, "seed"),
        ("float32, batch 312", "float32", False, 312, "seed"),
        ("bfloat16, batch 312", "mixed_bfloat16", False, 312, "seed"),
        ("float32 (pdf head)", "float32", False, BATCH, "pdf"),
        ("bfloat16 (pdf head)", "mixed_bfloat16", False, BATCH, "pdf"),
    ]
    prepared = []
    for name, policy, jit, batch, kind in configs:
        keras.mixed_precision.set_global_policy(policy)  # captured by the layers as they are built
        keras.utils.set_random_seed(0)
        if kind == "seed":
            model = build_seed_cnn(scaling, 0.0, 0.6)
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", jit_compile=jit)
            dataset = make_tf_dataset(train_rows, batch, shuffle=True, seed=0, augment=True)
        else:
            model = build_pdf_cnn(scaling, bins)
            model.compile(
                optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", jit_compile=jit
            )
            dataset = _pdf_dataset(train_rows, bins, 0.0, shuffle=True, augment=True, batch=batch)
        iterator = iter(dataset.repeat())  # one pipeline per configuration, never restarted
        _train_steps(model, iterator, steps)  # tracing, compilation, filling the shuffle buffer: untimed
        prepared.append((name, batch, model, iterator))
        log.info("built %s", name)
    keras.mixed_precision.set_global_policy("float32")
    rates: dict[str, list[float]] = {name: [] for name, *_ in configs}
    for turn in range(rounds):
        for name, batch, model, iterator in prepared:
            start = time.perf_counter()
            _train_steps(model, iterator, steps)
            rates[name].append(steps * batch / (time.perf_counter() - start))
        log.info("round %d/%d: %s", turn + 1, rounds, {n: round(r[-1]) for n, r in rates.items()})
    reference = float(np.median(rates["float32"]))
    for name, values in rates.items():
        median = float(np.median(values))
        spread = f"{min(values):.0f}-{max(values):.0f}"
        print(
            f"{name:<22} median {median:6.0f} images/s (turns {spread:>9})  {median / reference:.2f}x float32"
        )


if __name__ == "__main__":
    app()
