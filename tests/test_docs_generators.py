"""harness/docs: the generated parts of the docs site and the README, checked against the code they read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer.main

from astrospect import results
from astrospect.cli import app
from harness.docs import hooks, readme, render
from harness.docs.cli_reference import cli_markdown
from harness.docs.openapi import OPENAPI_PATH, openapi_document, serialise
from harness.docs.settings_reference import settings_markdown, variables

pytestmark = pytest.mark.unit


def _example(tmp_path: Path) -> Path:
    results.record(
        "example",
        title="example",
        figures={"ratio": 0.82},
        tables={"t": results.table(["model", "sigma_mad"], [["a", 0.016], ["b", 0.0153]])},
        command="make example",
        directory=tmp_path,
    )
    return tmp_path


def test_markers_expand_to_the_files_figures(tmp_path: Path) -> None:
    folder = _example(tmp_path)
    text = render.expand("x <!-- figure: example ratio --> y\n\n<!-- results: example -->", folder)
    assert text.startswith("x 0.82 y")
    assert "| a | 0.0160 |" in text  # the column's decimals, although JSON stored 0.016
    assert "*Measured by `make example`" in text
    with pytest.raises(KeyError, match="figure 'absent'"):
        render.expand("<!-- figure: example absent -->", folder)


def test_the_cli_reference_holds_every_command_and_option() -> None:
    text = cli_markdown()
    root = typer.main.get_command(app)
    context = root.context_class(root, info_name="astrospect")
    for name in root.list_commands(context):  # type: ignore[attr-defined]
        assert f"`astrospect {name}`" in text
    assert "`--challenger`" in text
    # a default from the settings: its variable and the declared default, whatever the builder's environment
    assert "| `--seed` | integer | `ASTROSPECT_SEED`, else `42` |" in text


def test_the_settings_reference_finds_every_variable_with_its_default() -> None:
    found = {variable.name: variable for variable in variables()}
    assert found["ASTROSPECT_SEED"].default == "42" and found["ASTROSPECT_SEED"].setting == "seed"
    # read once, by the settings: the DAG and the CLI take it from there
    assert [place.split(":")[0] for place in found["ASTROSPECT_EPOCHS"].places] == ["astrospect/settings.py"]
    assert found["ASTROSPECT_EPOCHS"].default == "30"
    assert found["ASTROSPECT_GATE_MEMORY_MB"].default == "2048"  # as the variable is written: MB, not bytes
    assert found["ASTROSPECT_HOME"].default == "./data"  # the checkout's, not this machine's path
    assert "ASTROSPECT_DRIFT_ALPHA" in settings_markdown()


def test_the_committed_openapi_document_is_the_services() -> None:
    assert json.loads(OPENAPI_PATH.read_text()) == json.loads(serialise(openapi_document()))


def test_the_dag_diagram_has_every_challenger_of_the_default_set() -> None:
    from astrospect.models import registry

    diagram = hooks.dag_mermaid()
    for challenger in registry.for_session():
        assert f"train_{challenger.name}" in diagram


def test_the_readme_block_is_in_sync_and_detects_a_change(tmp_path: Path) -> None:
    assert readme.readme_in_sync()
    copy = tmp_path / "README.md"
    copy.write_text(readme.README.read_text().replace(readme.BEGIN, readme.BEGIN + "\nedited by hand", 1))
    assert not readme.readme_in_sync(copy)
    assert len(readme.README.read_text().splitlines()) <= 250
