"""What the fault-injection suite recorded (tests/faults/): fault x step, the exit status, what the ledger
and the store hold, and what the rerun after the fault clears gives.

The suite writes ``docs/results/faults.json`` through :mod:`astrospect.results` when it ends, like every
other measurement; docs/reference/faults.md shows it with the docs' ``<!-- results: faults -->`` marker.
"""

from __future__ import annotations

from typing import Any

from astrospect import results

NAME = "faults"
TABLE = "outcomes"
# (the outcome's key, the column's title); "case" first: the suite merges a partial run by case.
COLUMNS = (
    ("case", "Case"),
    ("fault", "Fault"),
    ("step", "Step"),
    ("exit_status", "Exit status"),
    ("message", "Message (names the resource)"),
    ("ledger", "What the ledger records"),
    ("store", "What the store holds"),
    ("rerun", "Rerun after the fault clears"),
)


def load() -> list[dict[str, Any]]:
    """The recorded outcomes, one dict per case; none before the suite first ran."""
    if not (results.results_dir() / f"{NAME}.json").is_file():
        return []
    table = results.read(NAME)["tables"][TABLE]
    keys = [key for key, _ in COLUMNS]
    if [title for _, title in COLUMNS] != table["columns"]:
        raise ValueError(f"{NAME}.json: table {TABLE!r}: columns {table['columns']} are not {keys}")
    return [dict(zip(keys, row, strict=True)) for row in table["rows"]]


def write(outcomes: list[dict[str, Any]]) -> None:
    """Replace the results file with ``outcomes`` (in the given order)."""
    rows = [[outcome[key] for key, _ in COLUMNS] for outcome in outcomes]
    results.record(
        NAME,
        title="Faults injected into each step, and what the rerun gives",
        tables={TABLE: results.table([title for _, title in COLUMNS], rows)},
        command="make test-faults",
    )
