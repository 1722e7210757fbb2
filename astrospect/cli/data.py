"""1 Data: make cutouts with the simulator, check them against SDSS, or import the cutouts you have."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from astrospect.cli.app import DATA, KeepsOldSpellings, app, either, old_positional_input, required
from astrospect.importers.columns import FITS_CATALOGUE, HDF5_CUBE, PASQUET_NPZ, ROLES, ColumnMap
from astrospect.settings import PIXEL_SCALE_ARCSEC


@app.command(rich_help_panel=DATA)
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


@app.command("synth-check", rich_help_panel=DATA, cls=KeepsOldSpellings)
def synth_check_command(
    data: Path | None = typer.Option(
        None, "--data", help="A folder of simulated shards (or one shard). Required."
    ),
    out: Path | None = typer.Option(None, "--out", help="Also write the full comparison table here (CSV)."),
    record: bool = typer.Option(
        False,
        help="Also write the judged checks to docs/results/synth-check.json, the docs' source (make synth-check).",
    ),
    record_as: str | None = typer.Option(
        None,
        "--record-as",
        help="With --record: the command the results file names as the one that made its figures "
        "(default: this command line). make synth-check names itself: the folder it checks is temporary.",
    ),
    old_data: Path | None = old_positional_input(),
    old_csv: Path | None = typer.Option(None, "--csv", hidden=True),
) -> None:
    """Measure colours and r from the cutouts and compare with real SDSS per redshift bin; exit 1 on FAIL."""
    from astrospect.simulate import passed, render_report, synth_check
    from astrospect.simulate.check import record_synth_check

    folder = required(either(data, old_data, "--data", "DATA"), "--data")
    csv = either(out, old_csv, "--out", "--csv")
    table = synth_check(folder)
    typer.echo(render_report(table))
    if csv is not None:
        if csv.exists():
            raise typer.BadParameter(f"{csv} exists; choose another --out (nothing is overwritten)")
        table.to_csv(csv, index=False)
    if record:
        typer.echo(f"figures written to {record_synth_check(table, command=record_as)}")
    if not passed(table):
        raise typer.Exit(code=1)


# -- importers: cutouts a user already has, into the landing zone --------------------------------------------
import_app = typer.Typer(
    no_args_is_help=True,
    help="Turn cutout files you already have (Pasquet .npz, HDF5 cubes, FITS) into shards in the landing zone.",
)
app.add_typer(import_app, name="import", rich_help_panel=DATA)

# The options every importer shares, defined once: :func:`importer` adds them to each importer command, which
# receives them as one :class:`ImportOptions`.
Out = Annotated[
    str | None,
    typer.Option(
        "--out",
        help="A landing folder or s3://bucket/prefix/ (default: ASTROSPECT_LANDING, else <home>/landing).",
    ),
]
Name = Annotated[
    str | None,
    typer.Option("--name", help="Shard name prefix and progress-file name (default: the input's name)."),
]
ShardSize = Annotated[
    int, typer.Option("--shard-size", help="Source rows per shard (shards are named by their row range).")
]
FluxUnit = Annotated[
    str,
    typer.Option(
        "--flux-unit",
        help="Pixel unit of the source: nanomaggies, maggies, microjansky or jansky (converted to nanomaggies).",
    ),
]
PixelScale = Annotated[
    float,
    typer.Option(
        "--pixel-scale", help="Source pixel scale in arcsec/pixel; other than SDSS's 0.396 is resampled."
    ),
]
Progress = Annotated[bool, typer.Option(help="Show a progress bar (rows/s and ETA) on stderr.")]
COLUMN_LABELS = ("objid", "specz", "specz_err", "ebv", "ra", "dec")


@dataclass(frozen=True)
class ImportOptions:
    """What every importer command takes besides its input: where to, how, and the source's column names."""

    columns: ColumnMap
    out: str | None
    name: str | None
    shard_size: int
    flux_unit: str
    pixel_scale: float
    progress: bool


def _shared_parameters(layout: ColumnMap, where: str) -> list[inspect.Parameter]:
    """The shared options as parameters; the column options default to ``layout``'s names."""

    def option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)

    columns = [
        option(label, Annotated[str, _column_option(label, where)], getattr(layout, label))
        for label in COLUMN_LABELS
    ]
    return [
        option("out", Out, None),
        option("name", Name, None),
        option("shard_size", ShardSize, 1000),
        *columns,
        option("flux_unit", FluxUnit, "nanomaggies"),
        option("pixel_scale", PixelScale, PIXEL_SCALE_ARCSEC),
        option("progress", Progress, True),
    ]


def importer(
    name: str, layout: ColumnMap, where: str
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register ``astrospect import <name>``: the decorated function's own options (its input), then the
    shared ones (:func:`_shared_parameters`), which it receives as ``options``. Typer reads a command's
    options from its signature, so the registered function carries the joined one."""

    def register(command: Callable[..., None]) -> Callable[..., None]:
        shared = _shared_parameters(layout, where)
        own = [
            parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for parameter in inspect.signature(command, eval_str=True).parameters.values()
            if parameter.name != "options"
        ]
        context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)

        def run(ctx: typer.Context, **values: Any) -> None:
            given = {parameter.name: values.pop(parameter.name) for parameter in shared}
            columns = _columns(ctx, layout, **{label: given.pop(label) for label in COLUMN_LABELS})
            command(**values, options=ImportOptions(columns=columns, **given))

        parameters = [context, *own, *shared]
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
        run.__name__, run.__doc__ = command.__name__, command.__doc__
        import_app.command(name, cls=KeepsOldSpellings)(run)
        return command

    return register


def _column_option(label: str, where: str) -> Any:
    """The option naming the source column of one label (objid, specz, ...): one definition for every layout."""
    return typer.Option(f"--{label.replace('_', '-')}", help=f"The {where} with {ROLES[label]}.")


def _columns(ctx: typer.Context, defaults: ColumnMap, **given: str) -> ColumnMap:
    """The layout's column names with the user's: the ones the user named (not left at the default) become
    required, and '' means none."""
    from dataclasses import replace

    def given_by_user(label: str) -> bool:  # on the command line (by name: typer vendors click's enum)
        source = ctx.get_parameter_source(label)
        return source is not None and source.name != "DEFAULT"

    named = tuple(label for label, name in given.items() if name and given_by_user(label))
    return replace(defaults, **given, explicit=named)


def _import(source_factory: Callable[[], Any], options: ImportOptions) -> None:
    """Open the source, import it into the landing zone (a local staging folder first for S3), print a summary."""
    import json

    from astrospect.importers.convert import ConversionError
    from astrospect.importers.errors import ImporterError
    from astrospect.importers.writer import UploadTarget, run_import
    from astrospect.settings import load_settings

    settings = load_settings()
    target = options.out or settings.landing_source
    try:
        source = source_factory()
        upload = UploadTarget(target) if target.startswith("s3://") else None
        name = options.name or source.path.stem
        # S3 has no atomic local rename: shards, progress and rejects live in a staging folder, shards are
        # uploaded as they are written; the staging folder is what makes the import resumable.
        folder = settings.home / "import-staging" / name if upload else Path(target)
        summary = run_import(
            source,
            folder,
            name=name,
            shard_size=options.shard_size,
            show_progress=options.progress,
            upload=upload,
        )
    except (ImporterError, ConversionError, ValueError) as error:
        typer.echo(f"import failed: {error}", err=True)
        raise typer.Exit(code=2) from error
    typer.echo(json.dumps({"landing": target, **summary.summary()}, indent=2))


@importer("npz", PASQUET_NPZ, "labels field")
def import_npz(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="A .npz with `cube` (N, S, S, 5) ugriz and `labels` (a record array). Required."
        ),
    ] = None,
    old_file: Path | None = old_positional_input(),
    *,
    options: ImportOptions,
) -> None:
    """Import a Pasquet et al. (2019)-layout .npz, memory-mapped (stored) or streamed (compressed), never whole.

    Field names match ignoring case when only one field does. A file whose labels have no spec-z error
    imports: the error is stored as NaN (unknown).
    """
    from astrospect.importers import npz

    file = required(either(data, old_file, "--data", "FILE"), "--data")
    _import(
        lambda: npz.NpzSource(
            file, options.columns, flux_unit=options.flux_unit, pixel_scale=options.pixel_scale
        ),
        options,
    )


@importer("hdf5", HDF5_CUBE, "dataset")
def import_hdf5(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="An HDF5 file with an image dataset and one dataset per label. Required."
        ),
    ] = None,
    images: Annotated[
        str, typer.Option(help="The image dataset: (N, 5, S, S) or (N, S, S, 5), any square S.")
    ] = "images",
    old_file: Path | None = old_positional_input(),
    *,
    options: ImportOptions,
) -> None:
    """Import an HDF5 cube collection, channel-first or channel-last, read a shard's rows at a time.

    Dataset names match ignoring case when only one dataset does; a missing spec-z error is stored as NaN.
    """
    from astrospect.importers import hdf5

    file = required(either(data, old_file, "--data", "FILE"), "--data")
    _import(
        lambda: hdf5.Hdf5Source(
            file, options.columns, images=images, flux_unit=options.flux_unit, pixel_scale=options.pixel_scale
        ),
        options,
    )


@importer("fits", FITS_CATALOGUE, "catalogue column")
def import_fits(
    catalogue: Annotated[
        Path, typer.Option("--catalogue", help="A CSV with one row per galaxy: objid and labels.")
    ],
    data: Annotated[Path | None, typer.Option("--data", help="A folder of FITS cutouts. Required.")] = None,
    pattern: Annotated[
        str,
        typer.Option(
            help="File name per galaxy ({objid}: five image HDUs ugriz) or per band ({objid} and {band})."
        ),
    ] = "{objid}.fits",
    old_folder: Path | None = old_positional_input(),
    *,
    options: ImportOptions,
) -> None:
    """Import FITS cutouts (one file per galaxy, or one per band) matched by objid to a catalogue CSV.

    Column names match ignoring case when only one column does; a missing spec-z error is stored as NaN.
    """
    from astrospect.importers import fits

    folder = required(either(data, old_folder, "--data", "FOLDER"), "--data")
    _import(
        lambda: fits.FitsSource(
            folder,
            catalogue,
            options.columns,
            pattern=pattern,
            flux_unit=options.flux_unit,
            pixel_scale=options.pixel_scale,
        ),
        options,
    )
