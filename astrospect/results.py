"""Measured figures, written once by the code that measures them: ``docs/results/<name>.json``.

Every benchmark and study (``make bench-*``, the drift study, the gate's power, the learning curve, the
report at the end of ``make run``) writes its figures through :func:`record`, with what a reader needs to
weigh them: the machine, the load average, the date and the command. The docs and the README render their
tables from these files (``harness/docs/``), so a figure is typed nowhere.

File shape (one JSON object)::

    {"name", "title", "command", "date" (UTC, ISO 8601), "machine": {"platform", "cpu_count"},
     "load_average": {"before", "after"} (1-minute), "provenance" (null, or where a figure recorded before
     this file existed came from), "figures": {name: number or string}, "tables": {name: {"columns": [...],
     "rows": [[...], ...]}}}
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from astrospect.atomic import write_replacing
from astrospect.settings import load_settings

Scalar = int | float | str | None


def results_dir() -> Path:
    """Where benchmarks and studies write their results files: ``ASTROSPECT_RESULTS_DIR``, else the
    checkout's ``docs/results``."""
    return load_settings().results_dir


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count()}


def load_average() -> float:
    """The 1-minute load average, rounded for a reader."""
    return round(os.getloadavg()[0], 2)


def this_command() -> str:
    """This process's command line as a person would type it: ``python -m module args`` for a module."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    head = ["python", "-m", spec.name] if spec is not None else [Path(sys.argv[0]).name]
    return " ".join(shlex.quote(part) for part in [*head, *sys.argv[1:]])


def table(columns: Sequence[str], rows: Sequence[Sequence[Scalar]]) -> dict[str, Any]:
    """One table of a results file; every row has one value per column. NaN (not measured) is stored as
    null, which the docs show as a dash: JSON has no NaN."""
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"table row {list(row)!r}: {len(row)} values for {len(columns)} columns")
    return {"columns": list(columns), "rows": [[_finite_or_none(value) for value in row] for row in rows]}


def _finite_or_none(value: Scalar) -> Scalar:
    return None if isinstance(value, float) and math.isnan(value) else value


def record(
    name: str,
    *,
    title: str,
    figures: Mapping[str, Scalar] | None = None,
    tables: Mapping[str, Mapping[str, Any]] | None = None,
    load_before: float | None = None,
    command: str | None = None,
    provenance: str | None = None,
    directory: Path | None = None,
) -> Path:
    """Write ``<directory>/<name>.json`` (replacing the previous measurement) and return its path.

    ``load_before`` is the 1-minute load average when the measurement started (:func:`load_average`);
    the load when it ended is read here. ``command`` defaults to this process's command line.
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"results name {name!r}: expected a plain file stem such as 'bench-serving'")
    folder = directory or results_dir()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: the results folder does not exist (set ASTROSPECT_RESULTS_DIR)")
    document = {
        "name": name,
        "title": title,
        "command": command or this_command(),
        "date": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "machine": machine(),
        "load_average": {"before": load_before, "after": load_average()},
        "provenance": provenance,
        "figures": dict(figures or {}),
        "tables": {key: dict(value) for key, value in (tables or {}).items()},
    }
    path = folder / f"{name}.json"
    write_replacing(path, (json.dumps(document, indent=1, allow_nan=False) + "\n").encode())
    return path


def read(name: str, directory: Path | None = None) -> dict[str, Any]:
    """A results file as written by :func:`record`; a missing file or field is a clear error."""
    path = (directory or results_dir()) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results file named {name!r}")
    document: dict[str, Any] = json.loads(path.read_text())
    for field in ("title", "command", "date", "machine", "load_average", "figures", "tables"):
        if field not in document:
            raise ValueError(f"{path}: field {field!r}: missing")
    return document
