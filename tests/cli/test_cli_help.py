"""The CLI explains itself: every option has help, defaults show in every help, commands come panel by panel
in data-flow order, --version and -h work, and training defaults come from the settings."""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from rich.text import Text
from typer.testing import CliRunner

from astrospect.cli import app
from astrospect.cli.app import PANELS
from astrospect.models.registry import TrainConfig
from astrospect.settings import Settings

pytestmark = pytest.mark.unit

# Every command a user had before the CLI became a package: names never change.
COMMANDS = {
    "synth", "synth-check", "import npz", "import hdf5", "import fits", "ingest", "validate", "snapshot",
    "drift", "quarantine list", "quarantine release", "challengers", "train", "evaluate", "predict",
    "promote", "report", "deploy", "serve", "learning-curve", "colour-sweep",
}  # fmt: skip
WIDE = {"COLUMNS": "200"}  # help lines unwrapped, so a default is found whole


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(space-separated path, click command) for every leaf command of the tree."""
    children = getattr(command, "commands", None)
    if children is None:
        yield " ".join(path), command
        return
    for name, child in children.items():
        yield from _commands(child, (*path, name))


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_command_names_are_unchanged() -> None:
    assert {name for name, _ in _commands(typer.main.get_command(app))} == COMMANDS


def test_every_option_and_argument_has_help() -> None:
    missing = [
        f"astrospect {name} {param.name}"
        for name, command in _commands(typer.main.get_command(app))
        for param in command.params
        if not param.hidden and not (getattr(param, "help", None) or "").strip()
    ]
    assert missing == []


def test_no_help_text_is_eaten_as_rich_markup() -> None:
    """Rich reads `[word ...]` as a style tag and drops it: `[default: objID]` vanished that way."""
    eaten = [
        f"astrospect {name} {param.name}: {param.help!r}"
        for name, command in _commands(typer.main.get_command(app))
        for param in command.params
        if getattr(param, "help", None) and Text.from_markup(param.help).plain != param.help
    ]
    assert eaten == []


def test_import_npz_help_shows_the_column_defaults() -> None:
    text = _help("import", "npz")
    for option, default in [
        ("--objid", "objID"), ("--specz ", "z"), ("--specz-err", "zErr"), ("--ebv", "EBV"),
        ("--shard-size", "1000"), ("--flux-unit", "nanomaggies"), ("--pixel-scale", "0.396"),
    ]:  # fmt: skip
        line = next(line for line in text.splitlines() if option in line)
        assert f"[default: {default}]" in line, line
    assert "labels field with the SDSS objid (integers)." in text


def test_every_help_shows_its_defaults() -> None:
    for name, command in _commands(typer.main.get_command(app)):
        text = _help(*name.split())
        for param in command.params:
            shown = isinstance(param.default, int | float | str) and param.default not in ("", None)
            if not param.hidden and shown and not isinstance(param.default, bool):
                assert f"[default: {param.default}]" in text, f"astrospect {name} {param.name}"


def test_version_comes_from_the_installed_package() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"astrospect {importlib.metadata.version('astrospect')}"


def test_h_is_help_everywhere() -> None:
    for args in ([], ["import"], ["import", "npz"], ["train"]):
        result = CliRunner().invoke(app, [*args, "-h"], env=WIDE)
        assert result.exit_code == 0 and "Usage: " in result.output, args
        assert re.search(r"--help +-h ", result.output), args


def test_commands_are_listed_panel_by_panel_in_data_flow_order() -> None:
    text = _help()
    panels = [line.strip("╭─ ").split(" ─")[0] for line in text.splitlines() if line.startswith("╭─ ")]
    assert panels == ["Options", *PANELS]
    listed = re.findall(r"^│ ([a-z][a-z-]+) ", text, flags=re.MULTILINE)
    assert listed == [
        "synth", "synth-check", "import", "ingest", "validate", "snapshot", "drift", "quarantine",
        "challengers", "train", "evaluate", "predict", "promote", "report", "deploy", "serve",
        "learning-curve", "colour-sweep",
    ]  # fmt: skip


def test_every_input_is_data_and_every_output_out() -> None:
    """Inputs that were positional are --data now (the old form is hidden); predict writes with --out."""
    for name in ("synth-check", "import npz", "import hdf5", "import fits", "predict", "learning-curve",
                 "colour-sweep", "train", "evaluate", "ingest", "promote"):  # fmt: skip
        assert re.search(r"│ \*? *--data ", _help(*name.split())), name
    for name in (
        "synth",
        "synth-check",
        "import npz",
        "train",
        "evaluate",
        "predict",
        "learning-curve",
        "drift",
    ):
        assert re.search(r"│ \*? *--out ", _help(*name.split())), name
    for name, command in _commands(typer.main.get_command(app)):
        usage = command.collect_usage_pieces(typer.Context(command))
        assert not any(piece.startswith("[OLD") or "old_" in piece for piece in usage), (name, usage)


def _option(command: str, name: str) -> Any:
    root = typer.main.get_command(app)
    return next(param for param in root.commands[command].params if param.name == name)  # type: ignore[attr-defined]


def test_training_defaults_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ASTROSPECT_SEED", "ASTROSPECT_EPOCHS", "ASTROSPECT_PRECISION"):
        monkeypatch.delenv(name, raising=False)
    defaults = {name: Settings.default(name) for name in ("epochs", "seed", "precision")}
    assert {name: getattr(TrainConfig, name) for name in defaults} == defaults
    text = _help("train")
    assert f"[default: {defaults['seed']} (ASTROSPECT_SEED)]" in text
    assert f"[default: {defaults['epochs']} (ASTROSPECT_EPOCHS)]" in text
    assert f"[default: {TrainConfig.batch_size}]" in text and f"[default: {TrainConfig.patience}]" in text
    assert f"[default: {defaults['epochs']} (ASTROSPECT_EPOCHS)]" in _help("learning-curve")


def test_train_honours_the_environments_seed_and_epochs_in_value_and_help(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ASTROSPECT_SEED", "7")
    monkeypatch.setenv("ASTROSPECT_EPOCHS", "3")
    monkeypatch.setenv("ASTROSPECT_SERVING_PORT", "3456")
    context = typer.Context(typer.main.get_command(app))
    assert (
        _option("train", "seed").get_default(context),
        _option("train", "epochs").get_default(context),
    ) == (7, 3)
    assert _option("serve", "port").get_default(context) == 3456
    text = _help("train")
    assert "[default: 7 (ASTROSPECT_SEED)]" in text and "[default: 3 (ASTROSPECT_EPOCHS)]" in text
    assert "[default: 3456 (ASTROSPECT_SERVING_PORT)]" in _help("serve")
    monkeypatch.setenv("ASTROSPECT_EPOCHS", "0")
    with pytest.raises(ValueError, match="ASTROSPECT_EPOCHS='0': Input should be greater than 0"):
        _option("train", "epochs").get_default(context)


def test_the_importers_share_one_definition_of_their_options() -> None:
    from astrospect.cli.data import _shared_parameters
    from astrospect.importers.columns import PASQUET_NPZ

    shared = [parameter.name for parameter in _shared_parameters(PASQUET_NPZ, "field")]
    assert {"out", "name", "shard_size", "objid", "flux_unit", "pixel_scale", "progress"} <= set(shared)
    importers = typer.main.get_command(app).commands["import"]  # type: ignore[attr-defined]
    for name in ("npz", "hdf5", "fits"):
        params = [param.name for param in importers.commands[name].params]
        assert params[-len(shared) :] == shared, name
