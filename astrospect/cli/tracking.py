"""4 Tracking: promote a session's best model to champion, and the night's report from MLflow."""

from __future__ import annotations

from pathlib import Path

import typer

from astrospect.cli.app import TRACKING, app, choice, either

REPORT_FORMATS = ("table", "json", "csv")


@app.command(rich_help_panel=TRACKING)
def promote(
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Shards whose holdout split is the fixed holdout (default: all accepted shards).",
    ),
    session: str | None = typer.Option(
        None, "--session", help="Parent run id of the session (default: the latest)."
    ),
    version: list[str] | None = typer.Option(
        None, "--version", help="Registered versions to consider instead of a session's (repeatable)."
    ),
    old_holdout: Path | None = typer.Option(None, "--holdout", hidden=True),
) -> None:
    """Score the session's CNN versions and the champion on the fixed holdout; move `champion` if the policy says so."""
    from astrospect.data.dataset import select_holdout
    from astrospect.data.shards import resolve_shards
    from astrospect.promote import promote_session
    from astrospect.settings import load_settings
    from astrospect.tracking.server import check_tracking_server

    settings = load_settings()
    check_tracking_server(settings.mlflow_tracking_uri)
    holdout = either(data, old_holdout, "--data", "--holdout")
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


@app.command(rich_help_panel=TRACKING)
def report(
    session: str | None = typer.Option(
        None, "--session", help="Parent run id of the session (default: the latest)."
    ),
    wide: bool = typer.Option(
        False,
        "--wide",
        help="Every metric, the point and the PDF tables apart (the default shows what decides the night).",
    ),
    output_format: str = typer.Option(
        "table",
        "--format",
        help="table for people; json or csv for scripts (every column, one row per model).",
    ),
) -> None:
    """The latest session's challengers side by side from MLflow, beside the seed CNN's published figures.

    The table fits the terminal: model, clipping, n, registry alias, sigma_MAD, outlier fractions, bias,
    CRPS and coverage; --wide adds the rest.
    """
    from astrospect.report import print_report, session_report, to_csv, to_json
    from astrospect.settings import load_settings
    from astrospect.tracking.server import check_tracking_server

    chosen = choice(output_format, REPORT_FORMATS, "--format")
    settings = load_settings()
    check_tracking_server(settings.mlflow_tracking_uri)
    night = session_report(settings, session)
    if chosen == "json":
        typer.echo(to_json(night))
    elif chosen == "csv":
        typer.echo(to_csv(night), nl=False)
    else:
        print_report(night, wide=wide)
