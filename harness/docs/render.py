"""Results files (``docs/results/*.json``, :mod:`astrospect.results`) rendered as Markdown.

Pages and the README never type a measured figure; they name it with a marker that this module expands:

- ``<!-- results: NAME -->``: every table of ``NAME.json`` and a line saying how, where and when it was
  measured; ``<!-- results: NAME table=KEY -->`` one table only;
- ``<!-- figure: NAME KEY -->``: one figure of ``NAME.json``, inline;
- ``<!-- measured: NAME -->``: only the line saying how, where and when.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from astrospect import results

RESULTS_MARKER = re.compile(r"<!--\s*results:\s*(?P<name>[\w.-]+)(?:\s+table=(?P<table>[\w.-]+))?\s*-->")
FIGURE_MARKER = re.compile(r"<!--\s*figure:\s*(?P<name>[\w.-]+)\s+(?P<key>[\w.-]+)\s*-->")
MEASURED_MARKER = re.compile(r"<!--\s*measured:\s*(?P<name>[\w.-]+)\s*-->")


def format_value(value: Any) -> str:
    """A cell: integers with thousands separators, floats as recorded, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _decimals(value: Any) -> int:
    if isinstance(value, float) and not isinstance(value, bool):
        text = repr(value)
        return len(text.split(".")[1]) if "." in text and "e" not in text else 0
    return 0


def markdown_table(columns: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table; the floats of a column share its largest number of decimals (JSON drops
    trailing zeros: 0.0160 comes back as 0.016)."""
    places = [max((_decimals(row[k]) for row in rows), default=0) for k in range(len(columns))]

    def cell(value: Any, k: int) -> str:
        if isinstance(value, float) and places[k]:
            return f"{value:,.{places[k]}f}"
        return format_value(value).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(cell(value, k) for k, value in enumerate(row)) + " |" for row in rows]
    return "\n".join(lines)


def measured_line(document: dict[str, Any]) -> str:
    """How, where and when: the command, the machine, the load average and the date (and provenance)."""
    machine = document["machine"]
    load = document["load_average"]
    loads = ", ".join(f"{when} {value}" for when, value in load.items() if value is not None)
    line = (
        f"*Measured by `{document['command']}` on {document['date'][:10]}: {machine.get('cpu_count')} CPUs"
        f" ({machine.get('platform')})" + (f", 1-minute load average {loads}" if loads else "") + ".*"
    )
    if document.get("provenance"):
        line += f" *{document['provenance']}*"
    return line


def results_block(name: str, table: str | None = None, directory: Path | None = None) -> str:
    document = results.read(name, directory)
    tables: dict[str, Any] = document["tables"]
    if table is not None:
        if table not in tables:
            raise KeyError(f"{name}.json: table {table!r}: not there (it has {', '.join(tables) or 'none'})")
        tables = {table: tables[table]}
    parts = [markdown_table(spec["columns"], spec["rows"]) for spec in tables.values()]
    return "\n\n".join([*parts, measured_line(document)])


def figure(name: str, key: str, directory: Path | None = None) -> str:
    document = results.read(name, directory)
    if key not in document["figures"]:
        raise KeyError(f"{name}.json: figure {key!r}: not there (it has {', '.join(document['figures'])})")
    return format_value(document["figures"][key])


def expand(text: str, directory: Path | None = None) -> str:
    """Replace every results, figure and measured marker in ``text`` with what it names."""
    text = RESULTS_MARKER.sub(lambda m: results_block(m["name"], m["table"], directory), text)
    text = FIGURE_MARKER.sub(lambda m: figure(m["name"], m["key"], directory), text)
    return MEASURED_MARKER.sub(lambda m: measured_line(results.read(m["name"], directory)), text)
