"""The import graph (docs/explanation/architecture.md, "Modules and what each owns"): no circles, nothing imports upward.

`make lint` runs `lint-imports` (import-linter) with the contracts in pyproject.toml. Here it runs on this
tree, and on copies with one planted import each, to show the contracts catch what they are for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from astrospect.settings import PROJECT_ROOT

pytestmark = pytest.mark.unit
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_package_keeps_its_import_contracts() -> None:
    result = lint_imports(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        # a circle inside one package, no layer crossed: ledger <- validate already
        ("gate/ledger.py", "from astrospect.gate import validate", "No import circles"),
        # a circle through a function-level import, as a lazy import would hide it
        (
            "models/registry.py",
            "def _f() -> None:\n    from astrospect.models import train",
            "No import circles",
        ),
        # an upward import: the data layer reaching into the models
        ("data/splits.py", "from astrospect.models import registry", "not allowed to import"),
    ],
)
def test_a_planted_circle_or_upward_import_is_caught(
    tmp_path: Path, module: str, planted: str, broken: str
) -> None:
    shutil.copytree(
        PROJECT_ROOT / "astrospect", tmp_path / "astrospect", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy2(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "astrospect" / module
    target.write_text(target.read_text() + f"\n{planted}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert broken in result.stdout and "BROKEN" in result.stdout, result.stdout
