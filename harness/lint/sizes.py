"""Size limits for the package: no function over 80 lines and no module over 450 (issue 35).

A long function hides several decisions, and a long module several concerns; past these sizes a piece is
split by concern. The count is of source lines from the ``def`` (decorators aside) or the module's first line
to the last, comments and docstrings included: what a reader has to read. The exceptions are named in
:data:`EXCEPTIONS`, each with its reason; nothing else is skipped.

    python -m harness.lint.sizes astrospect

prints every offender as ``path:line`` and exits 1 when there is one.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 450

# Modules (paths relative to the folder checked, as posix) allowed past the limits, and why.
# None today: every module of astrospect/ is hand-written code within the limits (data lives in .csv/.json).
EXCEPTIONS: dict[str, str] = {}


@dataclass(frozen=True, kw_only=True)
class Offence:
    path: Path
    line: int
    what: str  # "function name" or "module"
    lines: int
    limit: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what} has {self.lines} lines (limit {self.limit})"


def offences(root: Path, *, exceptions: dict[str, str] = EXCEPTIONS) -> Iterator[Offence]:
    """Every function over :data:`MAX_FUNCTION_LINES` and module over :data:`MAX_MODULE_LINES` under
    ``root``, except the modules named in ``exceptions``."""
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).as_posix() in exceptions:
            continue
        source = path.read_text(encoding="utf-8")
        n_lines = len(source.splitlines())
        if n_lines > MAX_MODULE_LINES:
            yield Offence(path=path, line=1, what="module", lines=n_lines, limit=MAX_MODULE_LINES)
        for node in ast.walk(ast.parse(source, filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    yield Offence(
                        path=path,
                        line=node.lineno,
                        what=f"function {node.name}",
                        lines=length,
                        limit=MAX_FUNCTION_LINES,
                    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path, help="package folders to check")
    arguments = parser.parse_args(argv)
    found = [offence for root in arguments.roots for offence in offences(root)]
    for offence in found:
        print(offence)
    if found:
        print(
            f"{len(found)} over the size limits: split them by concern "
            f"(or name a generated/data module in harness/lint/sizes.py's EXCEPTIONS, with its reason)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
