"""The CLI reference, generated from the typer app itself (``astrospect.cli.app``), so it follows the code.

Walks the click command tree typer builds (typer ships its own copy of click, so the tree is read by its
attributes, not by isinstance against the ``click`` package) and writes, per command, its usage line, its help and a table of
its arguments and options with their types and defaults. ``python -m harness.docs.cli_reference`` prints it.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer.main

from astrospect.cli.app import FromSettings


def _default(param: Any) -> str:
    if param.required:
        return "required"
    default = param.default
    if isinstance(default, FromSettings):
        return default.documented()
    if callable(default):
        return "(computed)"
    if default is None or default == () or default == []:
        return "-"
    if getattr(param, "is_flag", False) and param.secondary_opts:
        return f"`{param.opts[0] if default else param.secondary_opts[0]}`"
    if isinstance(default, list | tuple):
        return ", ".join(f"`{value}`" for value in default)
    return f"`{default}`"


def _names(param: Any) -> str:
    if param.param_type_name == "argument":
        return f"`{(param.metavar or param.name or '').upper()}`"
    return " / ".join(f"`{name}`" for name in [*param.opts, *param.secondary_opts])


def _type(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        choices = descriptor.choices if descriptor.is_choice else None
        annotation = descriptor.annotation
        name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
    else:
        choices = getattr(param.type, "choices", None)
        name = param.type.name
    if choices:
        name = " \\| ".join(str(getattr(choice, "value", choice)) for choice in choices)
    name = {"Path": "path", "str": "text", "int": "integer", "float": "number"}.get(name, name)
    return name + (" (repeatable)" if getattr(param, "multiple", False) else "")


def _help(param: Any) -> str:
    text = getattr(param, "help", None) or ""
    return " ".join(text.split()).replace("|", "\\|")


def command_markdown(command: Any, path: list[str], parent: Any) -> list[str]:
    context = command.context_class(command, info_name=path[-1], parent=parent)
    heading = "#" * min(6, len(path) + 1)
    usage = command.get_usage(context).removeprefix("Usage: ")
    lines = [f"{heading} `{' '.join(path)}`", ""]
    if command.help:
        lines += [inspect.cleandoc(command.help), ""]
    lines += ["```text", usage, "```", ""]
    params = [param for param in command.get_params(context) if param.name != "help"]
    if params:
        lines += ["| argument or option | type | default | help |", "| --- | --- | --- | --- |"]
        lines += [f"| {_names(p)} | {_type(p)} | {_default(p)} | {_help(p)} |" for p in params]
        lines.append("")
    if hasattr(command, "list_commands"):
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            if sub is not None and not sub.hidden:
                lines += command_markdown(sub, [*path, name], context)
    return lines


def cli_markdown() -> str:
    """Every command of ``astrospect``, in the order the CLI lists them."""
    from astrospect.cli import app

    root = typer.main.get_command(app)
    return "\n".join(command_markdown(root, ["astrospect"], None))


if __name__ == "__main__":
    print(cli_markdown())
