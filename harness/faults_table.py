"""The fault table of docs/reference/faults.md, rendered from what the fault-injection suite recorded
(``docs/results/faults.json``, written by tests/faults/ each time it runs): fault x step, the exit status,
what the ledger and the store hold, and what the rerun after the fault clears gives.

``python -m harness.faults_table`` rewrites the table between its markers in docs/reference/faults.md;
tests/test_faults.py checks that the page shows what the JSON says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results" / "faults.json"
PAGE = ROOT / "docs" / "reference" / "faults.md"
START, END = "<!-- faults-table:start -->", "<!-- faults-table:end -->"
COLUMNS = (
    ("fault", "Fault"),
    ("step", "Step"),
    ("exit_status", "Exit status"),
    ("message", "Message (names the resource)"),
    ("ledger", "What the ledger records"),
    ("store", "What the store holds"),
    ("rerun", "Rerun after the fault clears"),
)


def load(path: Path = RESULTS) -> list[dict[str, Any]]:
    outcomes: list[dict[str, Any]] = json.loads(path.read_text())["outcomes"] if path.is_file() else []
    return outcomes


def render(outcomes: list[dict[str, Any]]) -> str:
    """A Markdown table, one row per recorded case, in the suite's order."""

    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(cell(outcome[key]) for key, _ in COLUMNS) + " |" for outcome in outcomes]
    return "\n".join(lines)


def with_table(page: str, outcomes: list[dict[str, Any]]) -> str:
    """``page`` with the text between the markers replaced by the table."""
    head, _, rest = page.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{render(outcomes)}\n{END}{tail}"


def write_page(outcomes: list[dict[str, Any]], page: Path = PAGE) -> None:
    page.write_text(with_table(page.read_text(), outcomes))


if __name__ == "__main__":
    write_page(load())
