"""2 Gate: ingest the landing zone, validate with Great Expectations, snapshot, quarantine, and drift."""

from __future__ import annotations

from pathlib import Path

import typer

from astrospect.cli.app import GATE, app, either, print_frame


@app.command(rich_help_panel=GATE)
def ingest(
    data: str | None = typer.Option(
        None,
        "--data",
        help="The landing zone: s3://bucket/prefix/ or a folder (default: ASTROSPECT_LANDING, else <home>/landing).",
    ),
    old_source: str | None = typer.Option(None, "--source", hidden=True),
) -> None:
    """Copy new shards (by content sha256) from the landing zone into the raw store; the source is never changed."""
    import json

    from astrospect.gate.ingest import ingest as run_ingest
    from astrospect.settings import load_settings

    settings = load_settings()
    result = run_ingest(either(data, old_source, "--data", "--source") or settings.landing_source, settings)
    typer.echo(json.dumps(result.summary(), indent=2))


@app.command(rich_help_panel=GATE)
def validate() -> None:
    """Gate every pending raw shard with the Great Expectations suites: accepted/ or quarantine/ with a report."""
    import json

    from astrospect.gate.validate import validate_pending
    from astrospect.settings import load_settings

    result = validate_pending(load_settings())
    typer.echo(json.dumps(result.summary(), indent=2))


@app.command(rich_help_panel=GATE)
def snapshot() -> None:
    """Version the accepted shards (content hash) and write the manifest training reads."""
    import json

    from astrospect.gate.snapshot import create_snapshot
    from astrospect.settings import load_settings

    typer.echo(json.dumps(create_snapshot(load_settings()).summary(), indent=2))


quarantine_app = typer.Typer(
    no_args_is_help=True, help="Shards held by validation: list them, release false positives."
)
app.add_typer(quarantine_app, name="quarantine", rich_help_panel=GATE)


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


@app.command(rich_help_panel=GATE)
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
    print_frame(
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
