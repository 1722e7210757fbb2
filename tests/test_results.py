"""astrospect.results: the one writer of docs/results/*.json, and its reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from astrospect import results

pytestmark = pytest.mark.unit


def test_record_writes_the_documented_shape_and_read_returns_it(tmp_path: Path) -> None:
    path = results.record(
        "bench-example",
        title="an example",
        figures={"rate": 12.5, "name": "x"},
        tables={"t": results.table(["a", "b"], [[1, 0.5], [2, float("nan")]])},
        load_before=1.25,
        command="make bench-example",
        directory=tmp_path,
    )
    assert path == tmp_path / "bench-example.json"
    document = results.read("bench-example", tmp_path)
    assert document["command"] == "make bench-example"
    assert document["figures"] == {"rate": 12.5, "name": "x"}
    assert document["tables"]["t"] == {"columns": ["a", "b"], "rows": [[1, 0.5], [2, None]]}
    assert document["load_average"]["before"] == 1.25
    assert isinstance(document["load_average"]["after"], float)
    assert document["machine"]["cpu_count"] >= 1
    assert document["date"].endswith("Z")
    assert document["provenance"] is None
    json.loads(path.read_text())  # plain JSON: no NaN


def test_a_row_of_the_wrong_length_names_the_row() -> None:
    with pytest.raises(ValueError, match=r"\[1\]: 1 values for 2 columns"):
        results.table(["a", "b"], [[1]])


def test_a_missing_folder_or_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="results folder does not exist"):
        results.record("x", title="x", directory=tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="no results file named 'absent'"):
        results.read("absent", tmp_path)
    with pytest.raises(ValueError, match="plain file stem"):
        results.record("../escape", title="x", directory=tmp_path)


def test_every_committed_results_file_reads() -> None:
    names = sorted(path.stem for path in results.results_dir().glob("*.json"))
    assert "make-run" in names and "bench-serving" in names and "bench-serving-paths" in names
    for name in names:
        document = results.read(name)
        for spec in document["tables"].values():
            assert all(len(row) == len(spec["columns"]) for row in spec["rows"]), name
