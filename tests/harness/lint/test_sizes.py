"""The size check of `make lint` (harness/lint/sizes.py): it fails on a planted long function or module."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.lint import sizes

pytestmark = pytest.mark.unit


def function_of(name: str, n_lines: int) -> str:
    body = "".join(f"    x{i} = {i}\n" for i in range(n_lines - 2))
    return f"def {name}() -> int:\n{body}    return 0\n"


def plant(root: Path, relative: str, source: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return path


def test_a_planted_long_function_fails_the_check_naming_its_path_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant(tmp_path, "pkg/short.py", function_of("fits", sizes.MAX_FUNCTION_LINES))
    long_one = plant(tmp_path, "pkg/deep/long.py", "X = 1\n\n\n" + function_of("too_long", 81))

    assert sizes.main([str(tmp_path / "pkg")]) == 1

    out = capsys.readouterr().out.splitlines()
    assert out == [f"{long_one}:4: function too_long has 81 lines (limit 80)"]


def test_a_long_method_and_a_long_module_are_both_found(tmp_path: Path) -> None:
    method = "\n".join("    " + line for line in function_of("method", 90).splitlines())
    plant(tmp_path, "big.py", "class Holder:\n" + method + "\n" + "Y = 2\n" * 400)

    found = {(o.what, o.line, o.lines) for o in sizes.offences(tmp_path, exceptions={})}

    assert found == {("function method", 2, 90), ("module", 1, 491)}


def test_a_named_exception_is_skipped_and_a_clean_tree_passes(tmp_path: Path) -> None:
    plant(tmp_path, "data/table.py", "Y = 2\n" * 500)
    assert list(sizes.offences(tmp_path, exceptions={"data/table.py": "generated table"})) == []
    assert [o.what for o in sizes.offences(tmp_path, exceptions={})] == ["module"]
    clean = tmp_path / "clean"
    plant(clean, "ok.py", function_of("fine", sizes.MAX_FUNCTION_LINES))
    assert sizes.main([str(clean)]) == 0
