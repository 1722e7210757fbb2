"""Every setting and environment variable, generated from the one place that reads them.

``astrospect/settings.py`` declares each setting once, as a field of :class:`~astrospect.settings.Settings`:
the variable it is read from (its alias), its default, its description. Nothing else in ``astrospect/`` or
``dags/`` reads the environment (``make lint`` fails on it), so these fields are every variable. This writes
one row per variable. ``python -m harness.docs.settings_reference`` prints it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from astrospect.settings import MB, PROJECT_ROOT, Settings

SETTINGS_PATH = PROJECT_ROOT / "astrospect" / "settings.py"


@dataclass
class Variable:
    name: str
    default: str | None = None
    places: list[str] = field(default_factory=list)  # where it is declared: astrospect/settings.py:LINE
    setting: str | None = None  # the Settings field it fills
    meaning: str = ""


def _declared_lines() -> dict[str, int]:
    """``Settings`` field name -> the line of its declaration in settings.py."""
    tree = ast.parse(SETTINGS_PATH.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Settings":
            return {
                item.target.id: item.lineno
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
            }
    raise LookupError(f"{SETTINGS_PATH}: no class Settings")


def _names(info: FieldInfo) -> list[str]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    return [alias] if isinstance(alias, str) else []


def _default_text(name: str, info: FieldInfo) -> str | None:
    """The default as a person sets the variable: MB for ``*_MB``, paths from the checkout, none if unset."""
    if info.default_factory is not None:
        return None  # computed on the machine: the meaning says how
    value: Any = info.get_default(call_default_factory=False)
    if value is None:
        return None
    if isinstance(value, Path):
        return f"./{value.relative_to(PROJECT_ROOT)}" if value.is_relative_to(PROJECT_ROOT) else str(value)
    if name.endswith("_MB"):
        return f"{value / MB:g}"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def variables() -> list[Variable]:
    """Every environment variable the settings read, sorted by name."""
    lines = _declared_lines()
    found = [
        Variable(
            name=name,
            default=_default_text(name, info),
            places=[f"{SETTINGS_PATH.relative_to(PROJECT_ROOT)}:{lines[setting]}"],
            setting=setting,
            meaning=info.description or "",
        )
        for setting, info in Settings.model_fields.items()
        for name in _names(info)
    ]
    return sorted(found, key=lambda v: v.name)


def settings_markdown() -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = [
        "| variable | default | `Settings` field | declared in | meaning |",
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
