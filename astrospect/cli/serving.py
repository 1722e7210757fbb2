"""5 Serving: build a bento of the registry's champion, and serve it with `bentoml serve`."""

from __future__ import annotations

import typer

from astrospect.cli.app import SERVING, FromSettings, app


@app.command(rich_help_panel=SERVING)
def deploy(
    alias: str = typer.Option("champion", help="The MLflow registry alias to deploy."),
) -> None:
    """Import the registry's champion into BentoML's model store and build a bento that serves it."""
    import json

    from astrospect.deploy import deploy_champion

    typer.echo(json.dumps(deploy_champion(alias=alias).summary(), indent=2))


@app.command(rich_help_panel=SERVING)
def serve(
    host: str = typer.Option(FromSettings("serving_host"), help="Bind address."),
    port: int = typer.Option(FromSettings("serving_port"), help="Port."),
    bento: str | None = typer.Option(None, help="Bento tag (default: the newest `astrospect deploy` built)."),
    from_source: bool = typer.Option(
        False, "--from-source", help="Serve the working tree's code with the newest deployed model."
    ),
) -> None:
    """Serve the deployed champion with `bentoml serve` (ready once GET /readyz answers 200)."""
    import os  # execve only: the environment is child_environment's
    import sys

    from astrospect.deploy import bento_config
    from astrospect.settings import child_environment, load_settings

    settings = load_settings()
    config = bento_config()
    target = config["service"] if from_source else (bento or f"{config['name']}:latest")
    address = [host, str(port)]
    typer.echo(f"serving {target} from BENTOML_HOME={settings.bentoml_home} on {address[0]}:{address[1]}")
    command = [sys.executable, "-m", "bentoml", "serve", target, "--host", address[0], "--port", address[1]]
    # exec: `bentoml serve` replaces this process, so a signal to it (Ctrl-C, make, a test) stops the server.
    env = child_environment(
        {"BENTOML_HOME": str(settings.bentoml_home)}, defaults={"BENTOML_DO_NOT_TRACK": "true"}
    )
    os.execve(sys.executable, command, env)  # no usage statistics posted to BentoML's vendor
