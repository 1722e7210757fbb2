"""The ``astrospect`` command line: one command per pipeline stage, nothing else.

Heavy libraries (TensorFlow, MLflow, GE, BentoML) are imported inside each command, so ``--help`` is
instant and the Airflow DAG can import this package's light modules at parse time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from astrospect.data.clipping import CLIPPINGS, UNCLIPPED
from astrospect.models.registry import DEFAULT_CHALLENGER

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="AstroSpect: photometric redshifts from ugriz cutouts."
)


def _print_frame(frame: object, title: str) -> None:
    """Print a DataFrame as a terminal table, floats to 4 decimals."""
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from astrospect.report import format_cell

    assert isinstance(frame, pd.DataFrame)
    table = Table(title=title, show_lines=False)
    for column in frame.columns:
        table.add_column(str(column), justify="right" if frame[column].dtype.kind in "fiu" else "left")
    for row in frame.itertuples(index=False):
        table.add_row(
            *[format_cell(str(column), value) for column, value in zip(frame.columns, row, strict=True)]
        )
    Console(width=200).print(table)


def _choice(value: str, allowed: tuple[str, ...], option: str) -> Any:
    if value not in allowed:
        raise typer.BadParameter(f"{option} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _challenger(name: str) -> Any:
    from astrospect.models import registry as challengers

    return challengers.get(_choice(name, tuple(c.name for c in challengers.registered()), "--challenger"))


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="A shard, or a folder of shards."),
    challenger: str = typer.Option(
        DEFAULT_CHALLENGER, help="A registered challenger (`astrospect challengers` lists them)."
    ),
    out: Path = typer.Option(..., "--out", help="A new folder for the model, history and plots."),
    epochs: int = typer.Option(
        30, help="Length of the learning-rate schedule (early stopping may end sooner)."
    ),
    batch_size: int = typer.Option(156, help="The seed's batch size."),
    patience: int = typer.Option(10, help="Early-stopping patience on the smoothed validation loss."),
    learning_rate: float = typer.Option(1e-3, help="Peak learning rate, after the warm-up."),
    warmup_epochs: int = typer.Option(2, help="Linear learning-rate warm-up before the cosine decay."),
    weight_decay: float = typer.Option(1e-4, help="AdamW's decoupled weight decay."),
    stretch: str = typer.Option(
        "asinh", help="Per-band pixel stretch before [0, 1]: asinh or linear (the seed's)."
    ),
    augment: bool = typer.Option(True, help="Random rotations/flips of training cutouts."),
    seed: int = typer.Option(42),
    precision: str | None = typer.Option(
        None, help="auto (bfloat16 on CPUs that have it), float32, mixed_bfloat16, mixed_float16."
    ),
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
    from astrospect.models.registry import TrainConfig
    from astrospect.settings import PRECISIONS, load_settings

    chosen = _challenger(challenger)
    config = TrainConfig(
        out_dir=out,
        epochs=epochs,
        batch_size=batch_size,
        patience=patience,
        learning_rate=learning_rate,
        warmup_epochs=warmup_epochs,
        weight_decay=weight_decay,
        stretch=_choice(stretch, ("asinh", "linear"), "--stretch"),
        augment=augment,
        seed=seed,
        precision=_choice(precision or load_settings().precision, PRECISIONS, "--precision"),
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
    _print_frame(comparison_table(evaluations), f"holdout metrics: {chosen.name}")


@app.command("challengers")
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
    _print_frame(pd.DataFrame(rows), "challengers")


@app.command()
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

    splits = select_splits(resolve_shards(data), _choice(clipping, CLIPPINGS, "--clipping"))
    cnn = evaluate_model(load_model(model), splits.holdout, name=f"cnn ({model.name})")
    knn = fit_colour_baseline(splits)
    baseline = evaluate_predictor(
        lambda cutouts: knn.predict(cutouts.images), splits.holdout, name=f"colour k-NN ({clipping})"
    )
    _print_frame(comparison_table([cnn, baseline]), "holdout metrics")
    _print_frame(cnn.per_bin, "CNN per redshift bin")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        cnn.per_bin.to_csv(out / "per_bin_metrics.csv", index=False)
        plot_predicted_vs_true([cnn, baseline], out / "predicted_vs_true.png")
        plot_residuals([cnn, baseline], out / "residuals_vs_z.png")
        typer.echo(f"plots and per-bin table in {out}")


@app.command("learning-curve")
def learning_curve(
    data: Path = typer.Argument(
        ..., help="A folder of labelled shards: its fixed validation and holdout splits."
    ),
    sizes: str = typer.Option(
        "6000,12000,24000,48000", help="Training-set sizes, nested subsets of the training split."
    ),
    challenger: list[str] = typer.Option(
        ["cnn-ebv", "baseline-knn-full"], "--challenger", help="Registered challengers, repeatable."
    ),
    out: Path = typer.Option(
        ..., "--out", help="A new folder: one model folder per point, the table, the plot."
    ),
    epochs: int = typer.Option(30, help="Length of the learning-rate schedule."),
    precision: str | None = typer.Option(None, help="auto, float32, mixed_bfloat16, mixed_float16."),
    track: bool = typer.Option(True, help="Log the table, the plot and every point's curves to MLflow."),
) -> None:
    """sigma_MAD of challengers against training-set size on one fixed holdout; logged to MLflow."""
    import json

    import pandas as pd

    from astrospect.data.shards import resolve_shards
    from astrospect.models.learning_curve import curve_table, plot_learning_curve, run_learning_curve
    from astrospect.models.registry import TrainConfig
    from astrospect.settings import PRECISIONS, load_settings

    settings = load_settings()
    names = [_challenger(name).name for name in challenger]
    config = TrainConfig(
        out_dir=out,
        epochs=epochs,
        seed=settings.seed,
        precision=_choice(precision or settings.precision, PRECISIONS, "--precision"),
    )
    if out.exists() and any(out.iterdir()):
        raise typer.BadParameter(f"{out} is not empty: choose a new --out folder", param_hint="--out")
    size_list = [int(size) for size in sizes.split(",")]
    points = run_learning_curve(resolve_shards(data), size_list, names, config)
    table = curve_table(points)
    figure = plot_learning_curve(points, out / "learning_curve.png")
    pd.DataFrame(table).to_csv(out / "learning_curve.csv", index=False)
    (out / "learning_curve.json").write_text(json.dumps([vars(p) for p in points], indent=1, default=str))
    _print_frame(pd.DataFrame(table), f"learning curve ({data})")
    if track:
        from astrospect.tracking.studies import log_learning_curve

        run_id = log_learning_curve(
            settings, points, table, figure, {**config.params(), "data": str(data), "sizes": sizes}
        )
        typer.echo(f"logged to MLflow: run {run_id} ({settings.mlflow_tracking_uri})")


@app.command("colour-sweep")
def colour_sweep(
    data: Path = typer.Argument(..., help="A folder of labelled shards (or one shard)."),
    clipping: str = typer.Option(UNCLIPPED, help=f"Which training clipping the k-NN uses: {CLIPPINGS}."),
) -> None:
    """The colour k-NN with its colours in each aperture radius, on the same split: the bar a CNN must clear."""
    import pandas as pd

    from astrospect.data.dataset import select_splits
    from astrospect.data.shards import resolve_shards
    from astrospect.models.baselines import aperture_sweep

    splits = select_splits(resolve_shards(data), _choice(clipping, CLIPPINGS, "--clipping"))
    _print_frame(
        pd.DataFrame(aperture_sweep(splits)),
        f"colour k-NN by aperture ({clipping}; the baseline picks by val_sigma_mad)",
    )


@app.command()
def predict(
    source: Path = typer.Argument(..., help="A shard or a folder of shards (labels optional)."),
    model: Path = typer.Option(..., "--model", help="A saved .keras model."),
    pdf: bool = typer.Option(
        False, "--pdf", help="Write each cutout's redshift PDF as a qp HDF5 file (a PDF model only)."
    ),
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output",
        help="File to write: a CSV, one row per cutout (default predictions.csv); with --pdf a qp file"
        " ending .hdf5 or .h5 (default predictions.hdf5).",
    ),
) -> None:
    """Predict redshifts for every cutout of a shard or folder; writes objid, z_pred (and z_spec if known).

    With --pdf, writes the PDFs instead, as a file qp.read opens (objid, and z_spec if known, as ancillary
    data), for RAIL and qp without conversion.
    """
    from astrospect.pdf.bins import QP_SUFFIXES

    output = output or Path("predictions.hdf5" if pdf else "predictions.csv")
    if output.exists():
        raise typer.BadParameter(f"{output} exists; choose another --output (nothing is overwritten)")
    if pdf and output.suffix not in QP_SUFFIXES:
        raise typer.BadParameter(
            f"{output}: a qp file needs the suffix .hdf5 or .h5 (qp.read chooses its reader by it)",
            param_hint="--output",
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


# -- the data gate: ingest, validate, snapshot, quarantine (issue 5) -------------------------------------------
quarantine_app = typer.Typer(
    no_args_is_help=True, help="Shards held by validation: list them, release false positives."
)
app.add_typer(quarantine_app, name="quarantine")


@app.command()
def ingest(
    source: str | None = typer.Option(
        None,
        "--source",
        help="s3://bucket/prefix/ or a folder (default: ASTROSPECT_LANDING, else <home>/landing).",
    ),
) -> None:
    """Copy new shards (by content sha256) from the landing zone into the raw store; the source is never changed."""
    import json

    from astrospect.gate.ingest import ingest as run_ingest
    from astrospect.settings import load_settings

    settings = load_settings()
    result = run_ingest(source or settings.landing_source, settings)
    typer.echo(json.dumps(result.summary(), indent=2))


@app.command()
def validate() -> None:
    """Gate every pending raw shard with the Great Expectations suites: accepted/ or quarantine/ with a report."""
    import json

    from astrospect.gate.validate import validate_pending
    from astrospect.settings import load_settings

    result = validate_pending(load_settings())
    typer.echo(json.dumps(result.summary(), indent=2))


@app.command()
def snapshot() -> None:
    """Version the accepted shards (content hash) and write the manifest training reads."""
    import json

    from astrospect.gate.snapshot import create_snapshot
    from astrospect.settings import load_settings

    typer.echo(json.dumps(create_snapshot(load_settings()).summary(), indent=2))


@quarantine_app.command("list")
def quarantine_list(
    released: bool = typer.Option(
        False, "--released", help="Also show shards people released, with their reasons."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the ledger records as JSON."),
) -> None:
    """What quarantine holds and why (the report path has the failed expectations and example rows), and the
    landing entries ingest skipped (left in place, never deleted) with the reason."""
    import json

    from rich.console import Console
    from rich.table import Table

    from astrospect.gate.validate import quarantine_list as held
    from astrospect.gate.validate import skipped_landing_entries
    from astrospect.settings import load_settings

    settings = load_settings()
    records = held(settings, include_released=released)
    skipped = skipped_landing_entries(settings)
    if as_json:
        typer.echo(json.dumps({"shards": records, "skipped_landing_entries": skipped}, indent=2))
        return
    table = Table(title=f"quarantine: {len(records)} shard(s)")
    for column in ("shard", "status", "rows", "reason", "report"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            record["name"],
            record["status"],
            str(record["rows"] or "-"),
            record["reason"] or "",
            record["report"] or "",
        )
    console = Console(width=200)
    console.print(table)
    if skipped:
        entries = Table(title=f"landing entries skipped by ingest (left where they are): {len(skipped)}")
        for column in ("source", "verdict", "reason", "first seen"):
            entries.add_column(column, overflow="fold")
        for entry in skipped:
            entries.add_row(entry["source"], entry["verdict"], entry["reason"], entry["first_seen"])
        console.print(entries)


@quarantine_app.command("release")
def quarantine_release(
    shard: str = typer.Argument(
        ..., help="The shard's store name, its original file name, or a sha256 prefix."
    ),
    reason: str = typer.Option(
        ..., "--reason", help="Why this is a false positive (recorded in the ledger)."
    ),
) -> None:
    """Accept a quarantined shard a person has judged a false positive; the reason goes into the ledger."""
    import json

    from astrospect.gate.validate import release
    from astrospect.settings import load_settings

    released = release(load_settings(), shard, reason)
    typer.echo(json.dumps(released, indent=2))


@app.command()
def deploy(
    alias: str = typer.Option("champion", help="The MLflow registry alias to deploy."),
) -> None:
    """Import the registry's champion into BentoML's model store and build a bento that serves it."""
    import json

    from astrospect.deploy import deploy_champion

    typer.echo(json.dumps(deploy_champion(alias=alias).summary(), indent=2))


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default ASTROSPECT_SERVING_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default ASTROSPECT_SERVING_PORT, 3000)."),
    bento: str | None = typer.Option(None, help="Bento tag (default: the newest `astrospect deploy` built)."),
    from_source: bool = typer.Option(
        False, "--from-source", help="Serve the working tree's code with the newest deployed model."
    ),
) -> None:
    """Serve the deployed champion with `bentoml serve` (ready once GET /readyz answers 200)."""
    import os
    import sys

    from astrospect.deploy import bento_config
    from astrospect.settings import load_settings

    settings = load_settings()
    config = bento_config()
    target = config["service"] if from_source else (bento or f"{config['name']}:latest")
    address = [host or settings.serving_host, str(port or settings.serving_port)]
    typer.echo(f"serving {target} from BENTOML_HOME={settings.bentoml_home} on {address[0]}:{address[1]}")
    command = [sys.executable, "-m", "bentoml", "serve", target, "--host", address[0], "--port", address[1]]
    # exec: `bentoml serve` replaces this process, so a signal to it (Ctrl-C, make, a test) stops the server.
    env = {"BENTOML_DO_NOT_TRACK": "true", **os.environ, "BENTOML_HOME": str(settings.bentoml_home)}
    os.execve(sys.executable, command, env)  # no usage statistics posted to BentoML's vendor


@app.command()
def promote(
    holdout: Path | None = typer.Option(
        None,
        "--holdout",
        help="Shards whose holdout split is the fixed holdout (default: all accepted shards).",
    ),
    session: str | None = typer.Option(
        None, "--session", help="Parent run id of the session (default: the latest)."
    ),
    version: list[str] | None = typer.Option(
        None, "--version", help="Registered versions to consider instead of a session's (repeatable)."
    ),
) -> None:
    """Score the session's CNN versions and the champion on the fixed holdout; move `champion` if the policy says so."""
    from astrospect.data.dataset import select_holdout
    from astrospect.data.shards import resolve_shards
    from astrospect.promote import promote_session
    from astrospect.settings import load_settings
    from astrospect.tracking.server import check_tracking_server

    settings = load_settings()
    check_tracking_server(settings.mlflow_tracking_uri)
    fixed_holdout = select_holdout(resolve_shards(holdout or settings.accepted_dir))
    result = promote_session(settings, version or session, fixed_holdout)
    for candidate in result.candidates:
        metrics = candidate.metrics
        typer.echo(
            f"v{candidate.version} ({candidate.challenger}): sigma_mad {metrics['sigma_mad']:.5f}  "
            f"outliers {metrics['catastrophic_outlier_frac']:.4%}  bias {metrics['bias']:+.5f}"
        )
    if result.champion_metrics is not None:
        typer.echo(
            f"champion before: v{result.champion_before}: sigma_mad {result.champion_metrics['sigma_mad']:.5f}"
        )
    verdict = "PROMOTED" if result.changed else "not promoted"
    typer.echo(
        f"v{result.challenger_version} {verdict} ({result.n_holdout} holdout galaxies, "
        f"digest {result.holdout_digest}): {result.decision.reason}"
    )
    typer.echo(f"champion: v{result.champion_after}" if result.champion_after else "champion: none")


@app.command()
def report(
    session: str | None = typer.Option(
        None, "--session", help="Parent run id of the session (default: the latest)."
    ),
) -> None:
    """The latest session's challengers side by side from MLflow, beside the seed's published figures."""
    from astrospect.report import print_report
    from astrospect.settings import load_settings
    from astrospect.tracking.server import check_tracking_server

    settings = load_settings()
    check_tracking_server(settings.mlflow_tracking_uri)
    print_report(settings, parent_run_id=session)


@app.command()
def drift(
    against: str | None = typer.Option(
        None,
        "--against",
        help="Reference snapshot (version, unique prefix or manifest path); default: the champion's training snapshot.",
    ),
    snapshot: str = typer.Option(
        "latest", "--snapshot", help="Tonight's snapshot (its shards new to the reference)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for drift.html and drift.json (default: <home>/reports/drift/<tonight>-vs-<reference>).",
    ),
) -> None:
    """Are tonight's accepted cutouts, and the champion's predictions on them, like the reference? Table + HTML/JSON."""
    from astrospect.drift.measure import drift_against
    from astrospect.settings import load_settings

    settings = load_settings()
    try:
        report, tonight, reference = drift_against(settings, against, snapshot)
    except LookupError as error:  # no champion and no --against: say what to do instead
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from error
    if report is None:
        typer.echo(
            f"snapshot {tonight.version[:12]} holds no shard that {reference.version[:12]} does not: nothing to compare"
        )
        return
    _print_frame(
        report.table(),
        f"drift: {len(report.tonight_shards)} new shard(s) against snapshot {reference.version[:12]}",
    )
    folder = out or settings.reports_dir / "drift" / f"{tonight.version[:12]}-vs-{reference.version[:12]}"
    html_path, json_path = report.write(folder)
    verdict = "DRIFTING" if report.drifting else "no drift"
    typer.echo(
        f"{verdict}: {len(report.drifted_features)} of {len(report.features)} features drifted "
        f"({', '.join(report.drifted_features) or 'none'}); action: {report.action}"
    )
    typer.echo(f"report: {html_path}\nmetrics: {json_path}")


# -- the simulator (issue 3, part 3) ------------------------------------------------------------------------------
@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Folder for sim-s<seed>-<k>.h5 shards (never overwritten)."),
    n: int = typer.Option(..., "--n", help="Number of galaxies."),
    seed: int = typer.Option(..., "--seed", help="Random seed: the same seed gives identical shards."),
    shard_size: int = typer.Option(1000, "--shard-size", help="Galaxies per shard."),
    lrg_fraction: float = typer.Option(
        0.0, "--lrg-fraction", help="Fraction of luminous red galaxies (z to ~0.6)."
    ),
    workers: int | None = typer.Option(None, "--workers", help="Worker processes (default: one per core)."),
    seeing: float | None = typer.Option(
        None, "--seeing", help="Median r-band PSF FWHM in arcsec (default: SDSS's 1.40)."
    ),
    r_limit: float | None = typer.Option(
        None, "--r-limit", help="Target limit on the true r (default: the SDSS main sample's 17.77)."
    ),
    calibration_offset: list[str] | None = typer.Option(
        None,
        "--calibration-offset",
        help="BAND=MAG zero-point error, measured - true, e.g. r=0.05 (repeatable).",
    ),
) -> None:
    """Simulate SDSS-like ugriz cutouts with GalSim + kcorrect + astropy, written as shards with a truth/ group."""
    from astrospect.simulate import synthesize
    from astrospect.simulate.conditions import ObservingConditions

    offsets = {}
    for item in calibration_offset or []:
        band, _, mag = item.partition("=")
        try:
            offsets[band.strip()] = float(mag)
        except ValueError as error:
            raise typer.BadParameter(f"--calibration-offset expects BAND=MAG, got {item!r}") from error
    knobs = {"seeing_fwhm_arcsec": seeing, "r_limit_mag": r_limit}
    try:
        night = ObservingConditions.with_offsets(
            offsets, **{name: value for name, value in knobs.items() if value is not None}
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    paths = synthesize(
        out, n, seed, shard_size=shard_size, lrg_fraction=lrg_fraction, workers=workers, night=night
    )
    typer.echo(f"{len(paths)} shard(s) in {out}")


@app.command("synth-check")
def synth_check_command(
    folder: Path = typer.Argument(..., help="A folder of simulated shards (or one shard)."),
    csv: Path | None = typer.Option(None, "--csv", help="Also write the full comparison table here."),
) -> None:
    """Measure colours and r from the cutouts and compare with real SDSS per redshift bin; exit 1 on FAIL."""
    from astrospect.simulate import passed, render_report, synth_check

    table = synth_check(folder)
    typer.echo(render_report(table))
    if csv is not None:
        if csv.exists():
            raise typer.BadParameter(f"{csv} exists; choose another --csv (nothing is overwritten)")
        table.to_csv(csv, index=False)
    if not passed(table):
        raise typer.Exit(code=1)


# -- importers: cutouts a user already has, into the landing zone (issue 20) ----------------------------------
import_app = typer.Typer(
    no_args_is_help=True,
    help="Turn cutout files you already have (Pasquet .npz, HDF5 cubes, FITS) into shards in the landing zone.",
)
app.add_typer(import_app, name="import")

_OUT_HELP = "A landing folder or s3://bucket/prefix/ (default: ASTROSPECT_LANDING, else <home>/landing)."
_UNIT_HELP = (
    "Pixel unit of the source: nanomaggies, maggies, microjansky or jansky (converted to nanomaggies)."
)
_SCALE_HELP = "Source pixel scale in arcsec/pixel; other than SDSS's 0.396 is resampled to it."


def _columns(defaults: Any, **given: str | None) -> Any:
    """The layout's default column names with the user's overrides; the overridden ones become required."""
    from dataclasses import replace

    chosen = {label: name for label, name in given.items() if name is not None}
    return replace(defaults, **chosen, explicit=tuple(label for label, name in chosen.items() if name))


def _import(source_factory: Any, out: str | None, name: str | None, shard_size: int, progress: bool) -> None:
    """Open the source, import it into the landing zone (a local staging folder first for S3), print a summary."""
    import json

    from astrospect.importers.convert import ConversionError
    from astrospect.importers.writer import ImporterError, UploadTarget, run_import
    from astrospect.settings import load_settings

    settings = load_settings()
    target = out or settings.landing_source
    try:
        source = source_factory()
        upload = UploadTarget(target) if target.startswith("s3://") else None
        name = name or source.path.stem
        # S3 has no atomic local rename: shards, progress and rejects live in a staging folder, shards are
        # uploaded as they are written; the staging folder is what makes the import resumable.
        folder = settings.home / "import-staging" / name if upload else Path(target)
        summary = run_import(
            source, folder, name=name, shard_size=shard_size, show_progress=progress, upload=upload
        )
    except (ImporterError, ConversionError, KeyError, ValueError) as error:
        typer.echo(f"import failed: {error.args[0] if isinstance(error, KeyError) else error}", err=True)
        raise typer.Exit(code=2) from error
    typer.echo(json.dumps({"landing": target, **summary.summary()}, indent=2))


@import_app.command("npz")
def import_npz(
    file: Path = typer.Argument(
        ..., help="A .npz with `cube` (N, S, S, 5) ugriz and `labels` (record array)."
    ),
    out: str | None = typer.Option(None, "--out", help=_OUT_HELP),
    name: str | None = typer.Option(
        None, help="Shard name prefix and progress-file name (default: file stem)."
    ),
    shard_size: int = typer.Option(1000, help="Source rows per shard (shards are named by their row range)."),
    objid: str | None = typer.Option(None, help="labels field with the SDSS objid [default: objID]."),
    specz: str | None = typer.Option(None, help="labels field with the spectroscopic redshift [default: z]."),
    specz_err: str | None = typer.Option(None, help="labels field with the spec-z error [default: zErr]."),
    ebv: str | None = typer.Option(None, help="labels field with E(B-V), '' for none [default: EBV]."),
    ra: str | None = typer.Option(None, help="labels field with RA in degrees, '' for none [default: ra]."),
    dec: str | None = typer.Option(
        None, help="labels field with Dec in degrees, '' for none [default: dec]."
    ),
    flux_unit: str = typer.Option("nanomaggies", help=_UNIT_HELP),
    pixel_scale: float = typer.Option(0.396, help=_SCALE_HELP),
    progress: bool = typer.Option(True, help="Show a progress bar (rows/s and ETA) on stderr."),
) -> None:
    """Import a Pasquet et al. (2019)-layout .npz, memory-mapped (stored) or streamed (compressed), never whole."""
    from astrospect.importers import npz

    columns = _columns(
        npz.DEFAULT_COLUMNS, objid=objid, specz=specz, specz_err=specz_err, ebv=ebv, ra=ra, dec=dec
    )
    _import(
        lambda: npz.NpzSource(file, columns, flux_unit=flux_unit, pixel_scale=pixel_scale),
        out,
        name,
        shard_size,
        progress,
    )


@import_app.command("hdf5")
def import_hdf5(
    file: Path = typer.Argument(..., help="An HDF5 file with an image dataset and one dataset per label."),
    out: str | None = typer.Option(None, "--out", help=_OUT_HELP),
    name: str | None = typer.Option(
        None, help="Shard name prefix and progress-file name (default: file stem)."
    ),
    shard_size: int = typer.Option(1000, help="Source rows per shard (shards are named by their row range)."),
    images: str = typer.Option(
        "images", help="The image dataset: (N, 5, S, S) or (N, S, S, 5), any square S."
    ),
    objid: str | None = typer.Option(None, help="objid dataset [default: objid]."),
    specz: str | None = typer.Option(None, help="spec-z dataset [default: specz_redshift]."),
    specz_err: str | None = typer.Option(None, help="spec-z error dataset [default: specz_redshift_err]."),
    ebv: str | None = typer.Option(None, help="E(B-V) dataset, '' for none [default: ebv]."),
    ra: str | None = typer.Option(None, help="RA dataset, '' for none [default: ra]."),
    dec: str | None = typer.Option(None, help="Dec dataset, '' for none [default: dec]."),
    flux_unit: str = typer.Option("nanomaggies", help=_UNIT_HELP),
    pixel_scale: float = typer.Option(0.396, help=_SCALE_HELP),
    progress: bool = typer.Option(True, help="Show a progress bar (rows/s and ETA) on stderr."),
) -> None:
    """Import an HDF5 cube collection, channel-first or channel-last, read a shard's rows at a time."""
    from astrospect.importers import hdf5

    columns = _columns(
        hdf5.DEFAULT_COLUMNS, objid=objid, specz=specz, specz_err=specz_err, ebv=ebv, ra=ra, dec=dec
    )
    _import(
        lambda: hdf5.Hdf5Source(file, columns, images=images, flux_unit=flux_unit, pixel_scale=pixel_scale),
        out,
        name,
        shard_size,
        progress,
    )


@import_app.command("fits")
def import_fits(
    folder: Path = typer.Argument(..., help="A folder of FITS cutouts."),
    catalogue: Path = typer.Option(
        ..., "--catalogue", help="A CSV with one row per galaxy: objid and labels."
    ),
    pattern: str = typer.Option(
        "{objid}.fits",
        help="File name per galaxy ({objid}: five image HDUs ugriz) or per band ({objid} and {band}).",
    ),
    out: str | None = typer.Option(None, "--out", help=_OUT_HELP),
    name: str | None = typer.Option(
        None, help="Shard name prefix and progress-file name (default: folder name)."
    ),
    shard_size: int = typer.Option(
        1000, help="Catalogue rows per shard (shards are named by their row range)."
    ),
    objid: str | None = typer.Option(None, help="catalogue column with the objid [default: objid]."),
    specz: str | None = typer.Option(None, help="catalogue column with the spec-z [default: z]."),
    specz_err: str | None = typer.Option(
        None, help="catalogue column with the spec-z error [default: zerr]."
    ),
    ebv: str | None = typer.Option(None, help="catalogue column with E(B-V), '' for none [default: ebv]."),
    ra: str | None = typer.Option(None, help="catalogue column with RA, '' for none [default: ra]."),
    dec: str | None = typer.Option(None, help="catalogue column with Dec, '' for none [default: dec]."),
    flux_unit: str = typer.Option("nanomaggies", help=_UNIT_HELP),
    pixel_scale: float = typer.Option(0.396, help=_SCALE_HELP),
    progress: bool = typer.Option(True, help="Show a progress bar (rows/s and ETA) on stderr."),
) -> None:
    """Import FITS cutouts (one file per galaxy, or one per band) matched by objid to a catalogue CSV."""
    from astrospect.importers import fits

    columns = _columns(
        fits.DEFAULT_COLUMNS, objid=objid, specz=specz, specz_err=specz_err, ebv=ebv, ra=ra, dec=dec
    )
    _import(
        lambda: fits.FitsSource(
            folder, catalogue, columns, pattern=pattern, flux_unit=flux_unit, pixel_scale=pixel_scale
        ),
        out,
        name,
        shard_size,
        progress,
    )
