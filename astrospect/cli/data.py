"""1 Data: make cutouts with the simulator, check them against SDSS, or import the cutouts you have."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from astrospect.cli.app import DATA, KeepsOldSpellings, app, either, old_positional_input, required
from astrospect.importers.columns import FITS_CATALOGUE, HDF5_CUBE, PASQUET_NPZ, ROLES, ColumnMap


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
        typer.echo(f"figures written to {record_synth_check(table)}")
    if not passed(table):
        raise typer.Exit(code=1)


# -- importers: cutouts a user already has, into the landing zone --------------------------------------------
import_app = typer.Typer(
    no_args_is_help=True,
    help="Turn cutout files you already have (Pasquet .npz, HDF5 cubes, FITS) into shards in the landing zone.",
)
app.add_typer(import_app, name="import", rich_help_panel=DATA)

# The options every importer shares, defined once.
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


def _import(source_factory: Any, out: str | None, name: str | None, shard_size: int, progress: bool) -> None:
    """Open the source, import it into the landing zone (a local staging folder first for S3), print a summary."""
    import json

    from astrospect.importers.convert import ConversionError
    from astrospect.importers.errors import ImporterError
    from astrospect.importers.writer import UploadTarget, run_import
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
    except (ImporterError, ConversionError, ValueError) as error:
        typer.echo(f"import failed: {error}", err=True)
        raise typer.Exit(code=2) from error
    typer.echo(json.dumps({"landing": target, **summary.summary()}, indent=2))


NPZ_FIELD = "labels field"


@import_app.command("npz", cls=KeepsOldSpellings)
def import_npz(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="A .npz with `cube` (N, S, S, 5) ugriz and `labels` (a record array). Required."
        ),
    ] = None,
    out: Out = None,
    name: Name = None,
    shard_size: ShardSize = 1000,
    objid: Annotated[str, _column_option("objid", NPZ_FIELD)] = PASQUET_NPZ.objid,
    specz: Annotated[str, _column_option("specz", NPZ_FIELD)] = PASQUET_NPZ.specz,
    specz_err: Annotated[str, _column_option("specz_err", NPZ_FIELD)] = PASQUET_NPZ.specz_err,
    ebv: Annotated[str, _column_option("ebv", NPZ_FIELD)] = PASQUET_NPZ.ebv,
    ra: Annotated[str, _column_option("ra", NPZ_FIELD)] = PASQUET_NPZ.ra,
    dec: Annotated[str, _column_option("dec", NPZ_FIELD)] = PASQUET_NPZ.dec,
    flux_unit: FluxUnit = "nanomaggies",
    pixel_scale: PixelScale = 0.396,
    progress: Progress = True,
    old_file: Path | None = old_positional_input(),
) -> None:
    """Import a Pasquet et al. (2019)-layout .npz, memory-mapped (stored) or streamed (compressed), never whole.

    Field names match ignoring case when only one field does. A file whose labels have no spec-z error
    imports: the error is stored as NaN (unknown).
    """
    from astrospect.importers import npz

    file = required(either(data, old_file, "--data", "FILE"), "--data")
    columns = _columns(
        ctx, npz.DEFAULT_COLUMNS, objid=objid, specz=specz, specz_err=specz_err, ebv=ebv, ra=ra, dec=dec
    )
    _import(
        lambda: npz.NpzSource(file, columns, flux_unit=flux_unit, pixel_scale=pixel_scale),
        out,
        name,
        shard_size,
        progress,
    )


HDF5_FIELD = "dataset"


@import_app.command("hdf5", cls=KeepsOldSpellings)
def import_hdf5(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="An HDF5 file with an image dataset and one dataset per label. Required."
        ),
    ] = None,
    out: Out = None,
    name: Name = None,
    shard_size: ShardSize = 1000,
    images: Annotated[
        str, typer.Option(help="The image dataset: (N, 5, S, S) or (N, S, S, 5), any square S.")
    ] = "images",
    objid: Annotated[str, _column_option("objid", HDF5_FIELD)] = HDF5_CUBE.objid,
    specz: Annotated[str, _column_option("specz", HDF5_FIELD)] = HDF5_CUBE.specz,
    specz_err: Annotated[str, _column_option("specz_err", HDF5_FIELD)] = HDF5_CUBE.specz_err,
    ebv: Annotated[str, _column_option("ebv", HDF5_FIELD)] = HDF5_CUBE.ebv,
    ra: Annotated[str, _column_option("ra", HDF5_FIELD)] = HDF5_CUBE.ra,
    dec: Annotated[str, _column_option("dec", HDF5_FIELD)] = HDF5_CUBE.dec,
    flux_unit: FluxUnit = "nanomaggies",
    pixel_scale: PixelScale = 0.396,
    progress: Progress = True,
    old_file: Path | None = old_positional_input(),
) -> None:
    """Import an HDF5 cube collection, channel-first or channel-last, read a shard's rows at a time.

    Dataset names match ignoring case when only one dataset does; a missing spec-z error is stored as NaN.
    """
    from astrospect.importers import hdf5

    file = required(either(data, old_file, "--data", "FILE"), "--data")
    columns = _columns(
        ctx, hdf5.DEFAULT_COLUMNS, objid=objid, specz=specz, specz_err=specz_err, ebv=ebv, ra=ra, dec=dec
    )
    _import(
        lambda: hdf5.Hdf5Source(file, columns, images=images, flux_unit=flux_unit, pixel_scale=pixel_scale),
        out,
        name,
        shard_size,
        progress,
    )


FITS_FIELD = "catalogue column"


@import_app.command("fits", cls=KeepsOldSpellings)
def import_fits(
    ctx: typer.Context,
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
    out: Out = None,
    name: Name = None,
    shard_size: ShardSize = 1000,
    objid: Annotated[str, _column_option("objid", FITS_FIELD)] = FITS_CATALOGUE.objid,
    specz: Annotated[str, _column_option("specz", FITS_FIELD)] = FITS_CATALOGUE.specz,
    specz_err: Annotated[str, _column_option("specz_err", FITS_FIELD)] = FITS_CATALOGUE.specz_err,
    ebv: Annotated[str, _column_option("ebv", FITS_FIELD)] = FITS_CATALOGUE.ebv,
    ra: Annotated[str, _column_option("ra", FITS_FIELD)] = FITS_CATALOGUE.ra,
    dec: Annotated[str, _column_option("dec", FITS_FIELD)] = FITS_CATALOGUE.dec,
    flux_unit: FluxUnit = "nanomaggies",
    pixel_scale: PixelScale = 0.396,
    progress: Progress = True,
    old_folder: Path | None = old_positional_input(),
) -> None:
    """Import FITS cutouts (one file per galaxy, or one per band) matched by objid to a catalogue CSV.

    Column names match ignoring case when only one column does; a missing spec-z error is stored as NaN.
    """
    from astrospect.importers import fits

    folder = required(either(data, old_folder, "--data", "FOLDER"), "--data")
    columns = _columns(
        ctx, fits.DEFAULT_COLUMNS, objid=objid, specz=specz, specz_err=specz_err, ebv=ebv, ra=ra, dec=dec
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
