"""Deploy helpers that need no server: BentoML tag names, the bentofile, finding the Keras file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from astrospect.deploy import bento_config, bento_labels, included_files, source_digest
from astrospect.serving.card import bento_model_name, keras_file
from astrospect.settings import PROJECT_ROOT
from astrospect.tracking.registry import Champion

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("registered", "tag_name"),
    [
        ("astrospect-photoz", "astrospect-photoz"),
        ("AstroSpect PhotoZ v2", "astrospect-photoz-v2"),
        ("_x_", "x"),
    ],
)
def test_registered_names_become_bentoml_tag_names(registered: str, tag_name: str) -> None:
    assert bento_model_name(registered) == tag_name


def test_a_name_without_usable_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="no characters usable in a BentoML tag"):
        bento_model_name("!!!")


def test_the_bentofile_names_the_service_and_pins_no_packages_online() -> None:
    config = bento_config()
    assert config["service"] == "astrospect.serving.service:PhotoZ"
    assert config["python"]["lock_packages"] is False  # locking would resolve packages over the network
    assert "astrospect/serving/*.py" in config["include"]


def test_the_bento_packs_every_module_the_service_imports_and_nothing_of_the_harness() -> None:
    """The bentofile names modules one by one: a missing one would fail only when `bentoml serve` starts."""
    probe = (
        "import sys, json; import astrospect.serving.service, astrospect.models.cnn, astrospect.models.predict; "
        "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items() "
        "if n.split('.')[0] == 'astrospect' and getattr(m, '__file__', None))))"
    )
    imported = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
        ).stdout
    )
    packed = {str(path) for path in included_files(bento_config()["include"])}
    assert {str(Path(f).resolve()) for f in imported} <= packed, sorted(set(imported) - packed)
    assert not any("/harness/" in path or "/tracking/" in path for path in packed)


def test_the_bento_packs_the_service_s_whole_static_import_closure() -> None:
    """Every module the service can import, imports inside functions too (grimp's graph, the one
    `lint-imports` checks), is packed; the probe above sees only what one start imports."""
    import grimp

    graph = grimp.build_graph("astrospect", exclude_type_checking_imports=True)
    closure = {"astrospect.serving.service", *graph.find_upstream_modules("astrospect.serving.service")}
    files = set()
    for module in closure:
        parts = module.split(".")
        path = PROJECT_ROOT.joinpath(*parts)
        files.add(path / "__init__.py" if path.is_dir() else path.with_suffix(".py"))
        files.update(PROJECT_ROOT.joinpath(*parts[:depth], "__init__.py") for depth in range(1, len(parts)))
    packed = {path.resolve() for path in included_files(bento_config()["include"])}
    assert {path.resolve() for path in files} <= packed, sorted(
        map(str, {p.resolve() for p in files} - packed)
    )


def test_editing_the_harness_leaves_the_bento_source_digest_unchanged(tmp_path: Path) -> None:
    """The harness (benchmarks, topology) lives outside what the bento packs; serving code does not."""
    for part in ("bentofile.yaml", "astrospect", "harness"):
        source = PROJECT_ROOT / part
        if source.is_dir():
            shutil.copytree(source, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tmp_path / part)
    include = bento_config()["include"]
    before = source_digest(include, tmp_path)
    harness_file = tmp_path / "harness" / "bench" / "serving.py"
    harness_file.write_text(harness_file.read_text() + "\n# an edit to the harness\n")
    (tmp_path / "astrospect" / "simulate" / "render.py").write_text("# an edit to the simulator\n")
    assert source_digest(include, tmp_path) == before
    service = tmp_path / "astrospect" / "serving" / "service.py"
    service.write_text(service.read_text() + "\n# an edit to serving\n")
    assert source_digest(include, tmp_path) != before  # the check can fail: serving code is in the digest


def test_champion_labels_carry_the_registry_identity() -> None:
    champion = Champion("astrospect-photoz", "7", "abc123", "models:/astrospect-photoz/7", None, {"mae": 0.1})
    assert bento_labels(champion) == {
        "mlflow_model_name": "astrospect-photoz",
        "mlflow_model_version": "7",
        "mlflow_run_id": "abc123",
        "dataset_version": "unknown",
    }


def _mlmodel(folder: Path, text: str) -> Path:
    folder.mkdir()
    (folder / "MLmodel").write_text(text)
    return folder


def test_keras_file_is_found_through_the_flavor(tmp_path: Path) -> None:
    model_dir = _mlmodel(tmp_path / "m", "flavors:\n  keras:\n    data: data\n")
    (model_dir / "data").mkdir()
    (model_dir / "data" / "model.keras").write_bytes(b"zip")
    assert keras_file(model_dir) == model_dir / "data" / "model.keras"


@pytest.mark.parametrize(
    ("mlmodel", "message"),
    [
        (None, "no MLmodel file"),
        ("flavors:\n  sklearn:\n    pickled_model: model.pkl\n", "expected a keras or tensorflow flavor"),
        ("flavors:\n  tensorflow:\n    data: data\n", "no .keras file"),
    ],
)
def test_keras_file_errors_say_what_is_wrong(tmp_path: Path, mlmodel: str | None, message: str) -> None:
    folder = tmp_path / "m"
    if mlmodel is None:
        folder.mkdir()
    else:
        _mlmodel(folder, mlmodel)
    with pytest.raises((FileNotFoundError, ValueError), match=message):
        keras_file(folder)
