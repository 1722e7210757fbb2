"""The Great Expectations suites in expectations/: each bad input of the corpus is quarantined, named by the
expectation (or structural field) that caught it; good shards in the same batch are accepted; release works."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from astrospect.data.shards import ShardFormatError
from astrospect.data.summaries import COLUMNS, summarize_shard
from astrospect.gate.flux_reference import FluxReference, flux_reference
from astrospect.gate.ingest import ingest, sha256_file
from astrospect.gate.ledger import ACCEPTED, QUARANTINED, RELEASED, Ledger
from astrospect.gate.quarantine import failed_expectations, label
from astrospect.gate.snapshot import create_snapshot
from astrospect.gate.suites import STRUCTURE_SUITE, SUMMARY_SUITE, Gate, load_suite, load_suite_json
from astrospect.gate.validate import (
    ValidationResult,
    quarantine_list,
    release,
    validate_pending,
)
from astrospect.settings import Settings, load_settings
from harness.corpus import CorpusCase, build_corpus, reuse_name

pytestmark = pytest.mark.data

SHARD_ROWS = 40


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate(load_settings().expectations_dir)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> FluxReference:
    """The reference shipped in expectations/ (what an empty ledger gets)."""
    settings = load_settings().replace(home=tmp_path_factory.mktemp("empty-home"))
    with Ledger(settings.ledger_path) as ledger:
        return flux_reference(settings, ledger)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Five shards of the simulator's galaxies (GalSim + kcorrect), the good inputs everything starts from."""
    from astrospect.simulate import synthesize

    return synthesize(
        tmp_path_factory.mktemp("sim"), 5 * SHARD_ROWS, seed=1, shard_size=SHARD_ROWS, workers=1
    )


@pytest.fixture
def good_table(simulated: list[Path]) -> pd.DataFrame:
    table = summarize_shard(simulated[0])
    table["objid_accepted_in"] = pd.Series([None] * len(table), dtype=object)
    return table


# -- the suites themselves ----------------------------------------------------------------------------------
def test_every_expectation_of_every_suite_is_valid_ge_1x() -> None:
    folder = load_settings().expectations_dir
    for name in (STRUCTURE_SUITE, SUMMARY_SUITE):
        spec = load_suite_json(folder / f"{name}.json")
        suite = load_suite(folder / f"{name}.json")
        assert len(suite.expectations) == len(spec["expectations"]) > 0
        assert all(expectation["meta"]["why"] for expectation in spec["expectations"])  # reviewed: says why


def test_an_invalid_expectation_is_an_error_not_silently_dropped(tmp_path: Path) -> None:
    bad = {
        "name": "bad",
        "expectations": [{"type": "expect_column_values_to_be_bogus", "kwargs": {"column": "x"}}],
    }
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="1 expectation"):
        load_suite(tmp_path / "bad.json")


def test_a_suite_run_on_batches_of_shards_takes_only_row_wise_expectations(tmp_path: Path) -> None:
    """cutout_values runs once on many shards: an expectation judging the table as a whole (or with
    'mostly') would judge the batch, not each shard, so Gate refuses it."""
    folder = tmp_path / "expectations"
    shutil.copytree(load_settings().expectations_dir, folder)
    spec = load_suite_json(folder / "cutout_values.json")
    spec["expectations"][0]["kwargs"]["mostly"] = 0.9
    (folder / "cutout_values.json").write_text(json.dumps(spec))
    with pytest.raises(
        ValueError,
        match=r"cutout_values.json: expect_column_values_to_be_between\(redshift\) does not judge rows one by one",
    ):
        Gate(folder)


def test_the_summary_suite_reads_only_columns_the_table_has_and_parameters_the_reference_gives(
    shipped: FluxReference,
) -> None:
    spec = load_suite_json(load_settings().expectations_dir / f"{SUMMARY_SUITE}.json")
    columns = {e["kwargs"]["column"] for e in spec["expectations"] if "column" in e["kwargs"]}
    assert columns <= {*COLUMNS, "objid_accepted_in"}
    parameters = set(re.findall(r'"\$PARAMETER": "(\w+)"', json.dumps(spec)))
    assert parameters == set(shipped.parameters())


def test_a_good_shard_passes_both_suites(
    good_table: pd.DataFrame, gate: Gate, shipped: FluxReference
) -> None:
    result = gate.run(SUMMARY_SUITE, good_table, "good", shipped.parameters())
    assert result.success, [label(failure) for failure in failed_expectations(result)]
    structure = pd.DataFrame(
        [
            {
                "shard": "good",
                "format_error_field": None,
                "format_error": None,
                "n_cutouts": 40,
                "cutout_size": 32,
                "objid_dtype": "int64",
                "bands_attr": "ugriz",
                "pixel_scale_arcsec": 0.396,
            }
        ]
    )
    assert gate.run(STRUCTURE_SUITE, structure, "good").success


def test_row_count_limit(good_table: pd.DataFrame, gate: Gate, shipped: FluxReference) -> None:
    table = good_table
    big = table.iloc[np.arange(100_001) % len(table)].reset_index(drop=True)
    big["objid"] = np.arange(len(big))
    big["row"] = np.arange(len(big))
    big["redshift"] += np.arange(len(big)) * 1e-9  # distinct labels, as a real shard's are
    result = gate.run(SUMMARY_SUITE, big, "too-big", shipped.parameters())
    assert [label(failure) for failure in failed_expectations(result)] == [
        "expect_table_row_count_to_be_between"
    ]


def test_the_reference_becomes_the_accepted_data_once_there_is_enough(tmp_path: Path) -> None:
    settings = load_settings().replace(home=tmp_path, reference_min_rows=50)
    with Ledger(settings.ledger_path) as ledger:
        assert flux_reference(settings, ledger).source.startswith("shipped SDSS reference (0 accepted")
        ledger.add_shard(sha256="a" * 64, name="a.h5", source="/a.h5", fingerprint="f", size=1, rows=60)
        mags = np.full((60, 5), 20.0) + np.linspace(-1, 1, 60)[:, None]
        ledger.mark_accepted("a" * 64, 60, np.arange(60), mags, "passed")
        reference = flux_reference(settings, ledger)
    assert reference.source == "accepted data (60 cutouts)"
    assert reference.quantiles["r"]["p50"] == pytest.approx(20.0)
    assert reference.parameters()["mag_r_median_max"] == pytest.approx(20.75)


def test_a_shard_is_judged_against_the_accepted_reference(good_table: pd.DataFrame, gate: Gate) -> None:
    # Accepted data 3 mag fainter than these galaxies: the same shard that passes the shipped reference fails.
    faint = FluxReference(
        {b: {"p01": 18.0, "p50": 20.0, "p99": 22.0} for b in "ugriz"}, 0.75, 0.5, "accepted"
    )
    result = gate.run(SUMMARY_SUITE, good_table, "good", faint.parameters())
    failed = {label(failure) for failure in failed_expectations(result)}
    assert {f"expect_column_median_to_be_between(mag_{b})" for b in "griz"} <= failed


# -- the corpus, through ingest and validate ----------------------------------------------------------------
@dataclass
class GateRun:
    settings: Settings
    landing: Path
    first: ValidationResult
    second: ValidationResult
    third: ValidationResult
    cases: list[CorpusCase]
    reused: CorpusCase
    good_second_batch: list[str]


@pytest.fixture(scope="module")
def gate_run(tmp_path_factory: pytest.TempPathFactory, simulated: list[Path]) -> GateRun:
    root = tmp_path_factory.mktemp("gate")
    settings = load_settings().replace(home=root / "home")
    landing = root / "landing"
    (landing / "night2").mkdir(parents=True)
    # Night 1: two good shards are accepted.
    shutil.copy(simulated[0], landing / "night1-a.h5")
    shutil.copy(simulated[1], landing / "night1-b.h5")
    ingest(landing, settings)
    first = validate_pending(settings)
    # Night 2: the corpus of bad inputs, mixed with good shards in the same batch.
    cases = build_corpus(landing / "night1-a.h5", landing / "night1-b.h5", landing / "night2")
    good = [
        Path(shutil.copy(shard, landing / "night2" / name))
        for shard, name in zip(simulated[2:], ("good-c.h5", "good-d.h5", "zz-good-e.h5"), strict=True)
    ]
    ingest(landing, settings)
    second = validate_pending(settings)
    # Night 3: a producer re-uses an accepted file's name for different content.
    reused = reuse_name(landing / "night1-a.h5")
    ingest(landing, settings)
    third = validate_pending(settings)
    return GateRun(settings, landing, first, second, third, cases, reused, [p.name for p in good])


def _verdict(result: ValidationResult, original: str) -> dict[str, Any]:
    stem = original.removesuffix(".h5")
    matches = [q for q in result.quarantined if q["shard"].rsplit(".", 2)[0] == stem]
    assert len(matches) == 1, f"{original}: expected one quarantine verdict, got {matches}"
    return matches[0]


def test_good_shards_are_accepted(gate_run: GateRun) -> None:
    assert len(gate_run.first.accepted) == 2 and gate_run.first.quarantined == []
    accepted = sorted(Path(p).name.rsplit(".", 2)[0] for p in gate_run.second.accepted)
    assert accepted == sorted(name.removesuffix(".h5") for name in gate_run.good_second_batch)


def test_each_bad_input_is_quarantined_naming_what_caught_it(gate_run: GateRun) -> None:
    assert len(gate_run.second.quarantined) == len(gate_run.cases)
    for case in gate_run.cases:
        verdict = _verdict(gate_run.second, case.file)
        assert case.caught_by in verdict["failed"], (case.file, verdict["failed"])
        if case.field is not None:
            assert f"structure: field '{case.field}'" in str(verdict["reason"]), (
                case.file,
                verdict["reason"],
            )


def test_reports_name_the_failed_expectation_and_example_rows(gate_run: GateRun) -> None:
    for case in gate_run.cases:
        verdict = _verdict(gate_run.second, case.file)
        report = Path(str(verdict["report"]))
        page = report.read_text()
        expectation, column = case.caught_by.rstrip(")").split("(")
        assert f"{expectation}({column})" in page  # our header
        assert "Expectation Validation Result" in page  # GE's Data Docs page below it
        result = json.loads(report.with_name(report.name.replace(".report.html", ".result.json")).read_text())
        failure = next(
            f for f in result["failed"] if (f["expectation"], f["column"]) == (expectation, column)
        )
        if case.field is not None:
            assert failure["examples"][0]["format_error_field"] == case.field
        elif failure["unexpected_count"] is not None:  # a row-wise expectation quotes the rows that broke it
            example = failure["examples"][0]
            assert column in example
            if column in COLUMNS or column == "objid_accepted_in":  # a cutout: its row and objid
                assert {"row", "objid"} <= set(example)
                assert str(example["objid"]) in page
            else:  # the shard's structure row
                assert example["shard"] == verdict["shard"]
        else:  # an aggregate (the median) reports what it observed
            assert failure["observed_value"] is not None
        assert result["great_expectations"][STRUCTURE_SUITE]["suite_name"] == STRUCTURE_SUITE


def test_the_dead_band_and_the_calibration_shift_name_their_band(gate_run: GateRun) -> None:
    dead = _verdict(gate_run.second, "dead-band.h5")
    assert "expect_column_median_to_be_between(mag_g)" in dead["failed"]
    shift = _verdict(gate_run.second, "calibration-shift.h5")
    # The colour checks fail too (each colour's prediction uses the others), and their offset fit names z.
    colours = [label for label in shift["failed"] if "(colour_shift_sigma_" in label]
    assert colours and all(label.endswith("_z)") for label in shift["failed"] if label not in colours)
    assert re.search(r"colour calibration: zero point of z off by -2\.[45]", shift["reason"]), shift["reason"]


def test_a_reused_name_is_kept_and_its_duplicate_objids_refused(gate_run: GateRun) -> None:
    assert gate_run.third.accepted == []
    verdict = _verdict(gate_run.third, gate_run.reused.file)
    assert gate_run.reused.caught_by in verdict["failed"]
    versions = sorted(p.name for p in gate_run.settings.home.rglob("night1-a.*.h5"))
    assert len(versions) == 2 and versions[0] != versions[1]


def test_nothing_is_lost_every_shard_is_where_the_ledger_says(gate_run: GateRun) -> None:
    settings = gate_run.settings
    folders = {
        ACCEPTED: settings.accepted_dir,
        QUARANTINED: settings.quarantine_dir,
        RELEASED: settings.accepted_dir,
    }
    with Ledger(settings.ledger_path) as ledger:
        records = ledger.with_status(ACCEPTED, QUARANTINED, RELEASED)
    stored = [
        p
        for folder in (settings.raw_dir, settings.accepted_dir, settings.quarantine_dir)
        for p in folder.glob("*.h5")
    ]
    assert len(stored) == len(records) == 2 + len(gate_run.cases) + 3 + 1
    for record in records:
        path = folders[record.status] / record.name
        assert sha256_file(path) == record.sha256


def test_quarantine_release_is_recorded_and_the_shard_accepted(gate_run: GateRun) -> None:
    settings = gate_run.settings
    held = {record["name"]: record for record in quarantine_list(settings)}
    absurd = next(name for name in held if name.startswith("absurd-redshift."))
    assert "expect_column_values_to_be_between(redshift)" in held[absurd]["reason"]

    released = release(settings, absurd, reason="z = 9 is a known quasar; keep it")
    assert released["status"] == RELEASED and released["reason"] == "z = 9 is a known quasar; keep it"
    assert [event["event"] for event in released["events"]] == ["ingested", "quarantined", "released"]
    assert (settings.accepted_dir / absurd).is_file() and not (settings.quarantine_dir / absurd).exists()
    assert (settings.quarantine_dir / f"{absurd}.report.html").is_file()  # the report stays as history
    assert absurd not in {record["name"] for record in quarantine_list(settings)}
    assert absurd in {record["name"] for record in quarantine_list(settings, include_released=True)}
    assert str(settings.accepted_dir / absurd) in create_snapshot(settings).shards

    broken = next(name for name in held if name.startswith("cutout-31x31."))
    with pytest.raises(ShardFormatError, match="field 'images'"):
        release(settings, broken, reason="looks fine to me")
    assert (settings.quarantine_dir / broken).is_file()
    with pytest.raises(ValueError, match="only quarantined shards"):
        release(settings, absurd, reason="twice")
    with pytest.raises(ValueError, match="needs a reason"):
        release(settings, broken, reason="  ")


def test_the_cli_lists_the_quarantine_and_snapshots(
    gate_run: GateRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from astrospect.cli import app

    monkeypatch.setenv("ASTROSPECT_HOME", str(gate_run.settings.home))
    listing = CliRunner().invoke(app, ["quarantine", "list"])
    assert listing.exit_code == 0, listing.output
    assert f"quarantine: {len(quarantine_list(gate_run.settings))} shard(s)" in listing.output
    records = json.loads(CliRunner().invoke(app, ["quarantine", "list", "--json"]).output)["shards"]
    dead = next(record for record in records if record["name"].startswith("dead-band."))
    assert "noise_g" in dead["reason"] and Path(dead["report"]).is_file()
    snapshot = CliRunner().invoke(app, ["snapshot"])
    assert snapshot.exit_code == 0, snapshot.output
    assert (
        json.loads(snapshot.output)["n_rows"]
        == sum(
            record["rows"]
            for record in quarantine_list(gate_run.settings, include_released=True)
            if record["status"] == RELEASED
        )
        + 5 * SHARD_ROWS
    )
    refused = CliRunner().invoke(app, ["quarantine", "release", "not-a-shard.h5", "--reason", "why not"])
    assert refused.exit_code != 0 and "no such shard" in str(refused.exception)
