"""Every setting and environment variable, generated from the code that reads them.

Scans ``astrospect/`` and ``dags/`` for each read of an environment variable (``os.environ.get``,
``os.environ[...]``, ``os.getenv``, ``NAME in os.environ`` and ``settings.py``'s readers ``_env_path``,
``_fraction``, ``_one_of``) and writes one row per variable: its default as the code spells it, where it is
read, and what it means, from the comments beside the ``Settings`` field it fills (``settings.py``) or, for
the rest, the comment above it in ``.env.example``. ``python -m harness.docs.settings_reference`` prints it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("astrospect", "dags")


def _settings_readers() -> frozenset[str]:
    """settings.py's helpers that read one variable: its private functions whose first parameter is the
    variable's ``name`` (found in the code, so a new reader is documented without a list to keep)."""
    tree = ast.parse((ROOT / "astrospect" / "settings.py").read_text())
    return frozenset(
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and node.name.startswith("_")
        and node.args.args
        and node.args.args[0].arg == "name"
    )


SETTINGS_READERS = _settings_readers()
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]+$")


@dataclass
class Variable:
    name: str
    default: str | None = None
    places: list[str] = field(default_factory=list)
    setting: str | None = None  # the Settings field it fills
    meaning: str = ""
    reader_doc: str = ""  # the first line of the docstring of the function that reads it, outside settings.py


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and _name(node.value) == "os"


def _name(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def _literal(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.match(node.value):
        return node.value
    return None


def _default_text(node: ast.expr) -> str:
    """A default as the reader sees it: ``Settings.seed`` or ``str(Settings.seed)`` resolves to the
    dataclass field's default (the one place it is written), anything else is shown as written."""
    inner = node.args[0] if isinstance(node, ast.Call) and _name(node.func) == "str" and node.args else node
    if isinstance(inner, ast.Attribute) and _name(inner.value) == "Settings":
        from astrospect.settings import Settings

        value = getattr(Settings, inner.attr)
        return repr(str(value)) if inner is not node else repr(value)
    return ast.unparse(node)


def _reads(tree: ast.AST) -> list[tuple[str, str | None, ast.AST]]:
    """(variable, default as written or None, node) for every read of the environment in ``tree``."""
    found: list[tuple[str, str | None, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            function = node.func
            is_get = isinstance(function, ast.Attribute) and (
                (function.attr == "get" and _is_environ(function.value))
                or (function.attr == "getenv" and _name(function.value) == "os")
            )
            if is_get or _name(function) in SETTINGS_READERS:
                name = _literal(node.args[0])
                if name:
                    default = _default_text(node.args[1]) if len(node.args) > 1 else None
                    found.append((name, default, node))
        elif isinstance(node, ast.Subscript) and _is_environ(node.value) and isinstance(node.ctx, ast.Load):
            name = _literal(node.slice)
            if name:
                found.append((name, None, node))
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            name = _literal(node.left)
            if name:
                found.append((name, None, node))
    return found


def _comment_above(lines: list[str], index: int, skip_fields: bool = False) -> str:
    """The contiguous ``#`` comment lines right above line ``index`` (0-based), joined. A commented-out
    variable (``# NAME=...``) or a section rule (``# ----``) ends the comment; with ``skip_fields``,
    uncommented field lines between are stepped over (a comment above a group of fields covers each)."""
    comments: list[str] = []
    k = index - 1
    while skip_fields and k >= 0 and re.match(r"^\s+\w+: .*=", lines[k]) and "#" not in lines[k]:
        k -= 1
    while k >= 0 and lines[k].strip().startswith("#"):
        text = lines[k].strip().lstrip("#").strip()
        if re.match(r"^[A-Z][A-Z0-9_]+=", text) or text.startswith("----"):
            break
        comments.insert(0, text)
        k -= 1
    return " ".join(comments)


def _settings_fields(source: str) -> dict[str, str]:
    """``Settings`` field name -> its comments (above it and on its line)."""
    lines = source.splitlines()
    tree = ast.parse(source)
    meanings: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Settings":
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    inline = lines[item.lineno - 1].partition("#")[2].strip()
                    meanings[item.target.id] = " ".join(
                        part
                        for part in (_comment_above(lines, item.lineno - 1, skip_fields=not inline), inline)
                        if part
                    )
                elif isinstance(item, ast.FunctionDef) and ast.get_docstring(item):
                    meanings[item.name] = " ".join((ast.get_docstring(item) or "").split())
    return meanings


def _field_of(tree: ast.AST, node: ast.AST) -> str | None:
    """The ``Settings(...)`` keyword or the property whose value contains ``node``."""
    for outer in ast.walk(tree):
        if isinstance(outer, ast.Call) and _name(outer.func) == "Settings":
            for keyword in outer.keywords:
                if any(inner is node for inner in ast.walk(keyword.value)):
                    return keyword.arg
        if (
            isinstance(outer, ast.FunctionDef)
            and outer.name != "load_settings"
            and any(inner is node for inner in ast.walk(outer))
        ):
            return outer.name
    return None


def _reader_doc(tree: ast.AST, node: ast.AST) -> str:
    """The first line of the docstring of the innermost function around ``node``, if it has one."""
    best = ""
    for outer in ast.walk(tree):
        if isinstance(outer, ast.FunctionDef | ast.AsyncFunctionDef) and any(
            inner is node for inner in ast.walk(outer)
        ):
            doc = ast.get_docstring(outer)
            if doc:
                best = " ".join(doc.split("\n\n")[0].split())
    return best


def _env_example_comments(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    meanings: dict[str, str] = {}
    for index, line in enumerate(lines):
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=", line)
        if match and match[1] not in meanings:
            meanings[match[1]] = _comment_above(lines, index)
    return meanings


def variables() -> list[Variable]:
    """Every environment variable the package and the DAG read, sorted by name."""
    found: dict[str, Variable] = {}
    settings_source = (ROOT / "astrospect" / "settings.py").read_text()
    field_meanings = _settings_fields(settings_source)
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            source = path.read_text()
            tree = ast.parse(source)
            for name, default, node in _reads(tree):
                variable = found.setdefault(name, Variable(name))
                place = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
                if place not in variable.places:
                    variable.places.append(place)
                if default is not None and variable.default is None:
                    variable.default = default
                if path.name == "settings.py" and path.parent.name == "astrospect":
                    variable.setting = variable.setting or _field_of(tree, node)
                elif not variable.reader_doc:
                    variable.reader_doc = _reader_doc(tree, node)
    examples = _env_example_comments(ROOT / ".env.example")
    for variable in found.values():
        from_field = field_meanings.get(variable.setting or "", "")
        variable.meaning = from_field or examples.get(variable.name, "") or variable.reader_doc
        variable.places.sort()
    return sorted(found.values(), key=lambda v: v.name)


def settings_markdown() -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = [
        "| variable | default (as the code reads it) | `Settings` field | read in | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for v in variables():
        rows.append(
            f"| `{v.name}` | {cell(f'`{v.default}`') if v.default else '-'} | "
            f"{f'`{v.setting}`' if v.setting else '-'} | {'<br>'.join(f'`{p}`' for p in v.places)} | "
            f"{cell(v.meaning) or '-'} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_markdown())
