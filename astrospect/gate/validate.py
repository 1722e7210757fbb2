"""Validate: gate every pending shard of the raw store with the Great Expectations suites in ``expectations/``.

Every file came from the landing zone, so none is trusted: the gate never opens one in its own process. A
child process with limits on time and memory (:mod:`astrospect.gate.sandbox`) inspects each shard's header
(:func:`~astrospect.data.shards.inspect_shard`: the structure of docs/reference/shard-format.md, no references outside the file, no
declared size the file cannot back) and summarises its cutouts (:mod:`astrospect.data.summaries`), one
shard ahead of the judging. Then, in ingest order and in batches, four suites:

- ``shard_structure``: one row per shard, from the header (or the reader's reason for having none);
- ``shard_statistics``: one row per shard, statistics GE has no expectation for (labels against colours, and
  the colour calibration of :mod:`astrospect.gate.colour_calibration`: a zero-point error in any band);
- ``cutout_values``: one row per cutout, each value on its own;
- ``cutout_summaries``: each shard as a whole: size, objids against the ledger, distributions against the
  flux reference.

The first three hold row by row, so each runs once on a group of shards (a group passes exactly when each
shard does; a failing group is searched for its failing shards). The fourth runs once on the group too, in
its per-shard form (:mod:`astrospect.gate.shard_summaries`: each shard's statistics, computed as soon as the reader
hands the shard over, against the suite's bounds); a shard that does not pass that form, or whose objids'
owners changed since, gets the suite itself on its own rows, which decides. Great Expectations' fixed cost
per expectation is then paid once per group, not once per shard. A shard that
passes everything moves to ``accepted/`` and its objids and magnitudes go into the ledger; any other moves to
``quarantine/`` beside its GE results (JSON) and a Data Docs page (HTML) that names the failed expectations
and example rows. Whatever a file holds, it cannot stop the run: the reader's failures on a file (any
exception of the parser, a crash, a timeout, a limit) are that file's structural error.

A fault is not a verdict (:mod:`astrospect.faults`): the gate's own failures (a full disk while writing a
report, the ledger, the shard store, the reader's process failing to start, a Great Expectations error, a
bug, memory) stop the run with an :class:`~astrospect.faults.EnvironmentFault` naming the resource, or with
the bug's own traceback. The shards judged before it keep their verdicts; the one it hit, and the rest, stay
``raw`` in the ledger, pending for the retry. A shard an earlier version quarantined for such a fault is
pending again (:meth:`Ledger.reopen_environment_quarantines`). Nothing is deleted: files only move (hard
link, then unlink), never over an existing file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from astrospect.data.store import S3Store, open_store
from astrospect.data.summaries import magnitudes, summary_table
from astrospect.faults import guard
from astrospect.gate.colour_calibration import ColourCheck, ColourReference, colour_reference
from astrospect.gate.flux_reference import FluxReference, flux_reference
from astrospect.gate.ledger import QUARANTINED, RAW, RELEASED, Ledger, ShardRecord, gate_lock
from astrospect.gate.quarantine import failed_expectations, label, reason_text, write_report
from astrospect.gate.sandbox import Limits, Reading, Sandbox
from astrospect.gate.suites import (
    STATISTICS_SUITE,
    STRUCTURE_SUITE,
    SUMMARY_SUITE,
    VALUES_SUITE,
    Gate,
    gate_for,
)
from astrospect.gate.tables import (
    ColourRedshift,
    colour_redshift,
    statistics_row,
    structure_row,
    with_ledger_lookup,
)
from astrospect.settings import Settings, get_logger

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult

log = get_logger(__name__)

# Shards judged as a group: every suite runs once per group (their summary tables are held in memory).
GROUP_SHARDS = 16


# -- results ----------------------------------------------------------------------------------------------
@dataclass
class Verdict:
    """What became of one shard."""

    shard: str  # the store name
    sha256: str
    accepted: bool
    rows: int | None
    reason: str  # empty when accepted
    failed: list[str] = field(default_factory=list)  # "expectation_type(column)" of each failure
    report: str | None = None  # quarantine HTML report
    result: str | None = None  # GE result JSON


@dataclass
class ValidationResult:
    accepted: list[str] = field(default_factory=list)  # accepted shard paths
    quarantined: list[dict[str, Any]] = field(default_factory=list)  # shard, sha256, reason, failed, report
    cutouts: int = 0  # cutouts summarised and checked
    seconds: float = 0.0
    reference: str = ""  # which flux reference the distribution checks used

    @property
    def cutouts_per_s(self) -> float:
        return self.cutouts / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "cutouts_per_s": round(self.cutouts_per_s, 1)}


# -- moving shards ----------------------------------------------------------------------------------------
def locate(settings: Settings, record: ShardRecord) -> Path:
    """Where the shard is now (a killed run may have moved it before writing the ledger)."""
    for folder in (settings.raw_dir, settings.accepted_dir, settings.quarantine_dir):
        if (folder / record.name).is_file():
            return folder / record.name
    raise FileNotFoundError(f"{record.name} (sha256 {record.sha256}): in the ledger but in no store")


def move(source: Path, folder: Path) -> Path:
    """Move a shard into ``folder`` without ever replacing a file there."""
    target = folder / source.name
    if source == target:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    os.link(source, target)  # FileExistsError rather than overwrite
    source.unlink()
    return target


# -- the gate -----------------------------------------------------------------------------------------------
@dataclass
class Judging:
    """What judging a run's shards needs, gathered once per run."""

    settings: Settings
    ledger: Ledger
    gate: Gate
    reference: FluxReference
    colours: ColourRedshift
    calibration: ColourReference
    store: S3Store | None


@dataclass
class Held:
    """A shard read and summarised, waiting for its group's suites."""

    record: ShardRecord
    reading: Reading
    table: pd.DataFrame | None = None  # the summary table, when the reader produced one
    owners: list[str | None] | None = None  # objid_accepted_in as its summary statistics saw it
    statistics: dict[str, float] | None = None  # its row of the summary suite's per-shard form


def validate_pending(settings: Settings) -> ValidationResult:
    """Validate every shard of the raw store that has no verdict yet.

    Shards go through in groups of up to :data:`GROUP_SHARDS`, in ingest order. Each gets its summary
    statistics as soon as the reader hands it over (while the reader reads the next); every suite then runs
    once on the group, and the verdicts are given in order. A shard's statistics count the objids of the
    shards before it in the group as accepted; at its verdict they are looked up again in the ledger, where
    the group's earlier verdicts now are, and the summary suite runs on the shard itself if that changes the
    look-up (an earlier shard was refused). So the verdicts are those of one shard after another.
    """
    started = time.perf_counter()
    result = ValidationResult()
    with (
        guard(f"validate in {settings.home} (ledger {settings.ledger_path})"),  # what no inner guard named
        gate_lock(settings),
        Ledger(settings.ledger_path) as ledger,
        Sandbox(Limits.from_settings(settings)) as sandbox,
    ):
        reopened = ledger.reopen_environment_quarantines()
        if reopened:
            log.warning(
                "validate: %d shard(s) an earlier version quarantined for an environment fault are pending "
                "again: %s",
                len(reopened),
                ", ".join(reopened),
            )
        pending = ledger.with_status(RAW)
        if not pending:
            log.info("validate: nothing pending")
            return result
        # The reader starts reading (it imports numpy and h5py first) while GE is imported and set up.
        paths = [locate(settings, record) for record in pending]
        readings = sandbox.read_all(paths, ahead=GROUP_SHARDS)
        judging = Judging(
            settings,
            ledger,
            gate_for(settings.expectations_dir),
            flux_reference(settings, ledger),
            colour_redshift(settings),
            colour_reference(settings.expectations_dir),
            open_store(settings),
        )
        result.reference = judging.reference.source
        log.info("validate: %d pending shard(s); flux reference: %s", len(pending), result.reference)
        group: list[Held] = []
        provisional: dict[int, str] = {}  # objid -> the shard of this group holding it, not yet refuted
        for index, (record, reading) in enumerate(zip(pending, readings, strict=True)):
            group.append(_first_look(judging, record, reading, provisional))
            if len(group) == GROUP_SHARDS or index == len(pending) - 1:
                for verdict, checked in _finish_group(judging, group):
                    _tally(result, settings, verdict, checked, len(pending), started)
                group, provisional = [], {}
    result.seconds = time.perf_counter() - started
    log.info(
        "validate: %d accepted, %d quarantined, %d cutouts in %.1f s (%.0f cutouts/s)",
        len(result.accepted),
        len(result.quarantined),
        result.cutouts,
        result.seconds,
        result.cutouts_per_s,
    )
    return result


def _tally(
    result: ValidationResult, settings: Settings, verdict: Verdict, checked: int, pending: int, started: float
) -> None:
    result.cutouts += checked
    if verdict.accepted:
        result.accepted.append(str(settings.accepted_dir / verdict.shard))
    else:
        result.quarantined.append(
            {k: getattr(verdict, k) for k in ("shard", "sha256", "reason", "failed", "report")}
        )
    log.info(
        "validate: %d/%d %s %s (%d cutouts, %.0f cutouts/s)%s",
        len(result.accepted) + len(result.quarantined),
        pending,
        verdict.shard,
        "accepted" if verdict.accepted else "QUARANTINED",
        checked,
        result.cutouts / max(time.perf_counter() - started, 1e-9),
        "" if verdict.accepted else f": {verdict.reason}",
    )


def _first_look(judging: Judging, record: ShardRecord, reading: Reading, provisional: dict[int, str]) -> Held:
    """The summary table and summary statistics of one shard, as soon as it is read."""
    held = Held(record, reading)
    if reading.columns is None:
        return held
    # The reader's columns were checked (names, shapes, numeric dtypes): any value they hold is judged by the
    # suites, so an exception here is the gate's own failure, not this shard's verdict.
    held.table = summary_table(reading.columns)
    looked_up = with_ledger_lookup(held.table, judging.ledger, provisional)
    held.owners = looked_up["objid_accepted_in"].tolist()
    held.statistics = judging.gate.summaries.row(looked_up, judging.reference.parameters())
    provisional.update(dict.fromkeys(held.table["objid"].tolist(), record.name))
    return held


def _finish_group(judging: Judging, group: list[Held]) -> Iterator[tuple[Verdict, int]]:
    """Run every suite once on the group, then give the verdicts in order."""
    failing = _failing_rows(judging, group)
    statistics = {held.record.name: held.statistics for held in group if held.statistics is not None}
    passing = judging.gate.passing_summaries(statistics, judging.reference.parameters())
    for held in group:
        yield _verdict(judging, held, held.record.name in failing, held.record.name in passing)


def _failing_rows(judging: Judging, group: list[Held]) -> set[str]:
    """The shards of ``group`` that fail a row-wise suite (structure, statistics, values)."""
    gate = judging.gate
    structure = pd.DataFrame([structure_row(held.record.name, held.reading) for held in group])
    failing = gate.failing_shards(STRUCTURE_SUITE, structure)
    tables = {
        held.record.name: held.table
        for held in group
        if held.table is not None and held.record.name not in failing
    }
    if tables:
        statistics = [
            statistics_row(name, table, judging.colours, judging.calibration)
            for name, table in tables.items()
        ]
        failing |= gate.failing_shards(STATISTICS_SUITE, pd.DataFrame(statistics))
        values = pd.concat([table.assign(shard=name) for name, table in tables.items()], ignore_index=True)
        failing |= gate.failing_shards(VALUES_SUITE, values)
    return failing


def _verdict(judging: Judging, held: Held, failed_rows: bool, summary_passed: bool) -> tuple[Verdict, int]:
    """Judge one shard of a finished group (the group's shards before it have their verdicts) and move it."""
    record, reading = held.record, held.reading
    table = None if held.table is None else with_ledger_lookup(held.table, judging.ledger)
    # The group's run holds only if the objids' owners are still those its statistics counted.
    summary_passed = (
        summary_passed and table is not None and table["objid_accepted_in"].tolist() == held.owners
    )
    results = _results(judging, held, table, summary_passed, failed_rows)
    failures = [failure for outcome in results.values() for failure in failed_expectations(outcome)]
    # The zero-point estimate for the report: only a quarantined shard with cutouts needs it.
    calibration = judging.calibration.check(table) if failures and table is not None else None
    return _conclude(judging, record, reading, table, results, failures, calibration)


def _results(
    judging: Judging, held: Held, table: pd.DataFrame | None, summary_passed: bool, failed_rows: bool
) -> dict[str, ExpectationSuiteValidationResult]:
    """The suites' results for one shard: none when it passed every suite in its group's runs (the usual
    case); its summary suite on its own rows when only that suite's per-shard form left it in doubt (a
    statistic on a bound, owners that changed), and accepted if that passes; every suite on its own rows, with
    example rows, when anything failed."""
    gate, name = judging.gate, held.record.name
    if table is not None and summary_passed and not failed_rows:
        return {}
    summary = None if table is None else gate.run(SUMMARY_SUITE, table, name, judging.reference.parameters())
    if summary is not None and summary.success and not failed_rows:
        return {SUMMARY_SUITE: summary}
    results = {
        STRUCTURE_SUITE: gate.run(STRUCTURE_SUITE, pd.DataFrame([structure_row(name, held.reading)]), name)
    }
    if table is not None and summary is not None:
        statistics = pd.DataFrame([statistics_row(name, table, judging.colours, judging.calibration)])
        results[STATISTICS_SUITE] = gate.run(STATISTICS_SUITE, statistics, name)
        values = table.drop(columns="objid_accepted_in").assign(shard=name)
        results[VALUES_SUITE] = gate.run(VALUES_SUITE, values, name)
        results[SUMMARY_SUITE] = summary
    return results


def _conclude(
    judging: Judging,
    record: ShardRecord,
    reading: Reading,
    table: pd.DataFrame | None,
    results: dict[str, ExpectationSuiteValidationResult],
    failures: list[dict[str, Any]],
    calibration: ColourCheck | None = None,
) -> tuple[Verdict, int]:
    """Accept the shard (no failure) or quarantine it with its report (with the colours' zero-point estimate
    when there is one); returns the verdict and the number of cutouts checked."""
    settings, ledger = judging.settings, judging.ledger
    checked = 0 if table is None else len(table)
    # Each step names its resource should it fail; the ledger row comes last, so a fault before it leaves the
    # shard pending (a file already moved is found where it is by locate()).
    if table is not None and not failures:
        with guard(f"the accepted store {settings.accepted_dir}"):
            move(reading.path, settings.accepted_dir)
        objids = table["objid"].to_numpy(dtype=np.int64)
        with guard(f"the ledger {settings.ledger_path}"):
            ledger.mark_accepted(
                record.sha256, len(table), objids, magnitudes(table), f"passed ({judging.reference.source})"
            )
        return Verdict(record.name, record.sha256, True, len(table), ""), checked
    reason = reason_text(failures, calibration)
    with guard(f"the quarantine folder {settings.quarantine_dir} (writing {record.name}'s report)"):
        result_path, report_path = write_report(
            settings, record, results, failures, judging.reference, calibration
        )
    if judging.store is not None:  # the reports are readable wherever the shard store is
        with guard(f"the shard store {judging.store.uri('quarantine/')}"):
            for path in (result_path, report_path):
                judging.store.put_text(f"quarantine/{path.name}", path.read_text(), once=False)
    with guard(f"the quarantine folder {settings.quarantine_dir}"):
        move(reading.path, settings.quarantine_dir)
    rows = reading.info.n if reading.info else None
    with guard(f"the ledger {settings.ledger_path}"):
        ledger.mark_quarantined(record.sha256, rows, reason, str(report_path))
    verdict = Verdict(
        record.name,
        record.sha256,
        False,
        rows,
        reason,
        failed=[label(failure) for failure in failures],
        report=str(report_path),
        result=str(result_path),
    )
    return verdict, checked


# -- quarantine -----------------------------------------------------------------------------------------------
def quarantine_list(settings: Settings, include_released: bool = False) -> list[dict[str, Any]]:
    """What quarantine holds and why (and, optionally, what people have released and their reasons): data
    verdicts only. An entry an earlier version recorded for an environment fault is not one (the next
    validate takes the shard again)."""
    statuses = (QUARANTINED, RELEASED) if include_released else (QUARANTINED,)
    with Ledger(settings.ledger_path) as ledger:
        return [record.to_dict() for record in ledger.verdicts(*statuses)]


def skipped_landing_entries(settings: Settings) -> list[dict[str, Any]]:
    """The landing entries ingest left where they are and why (not a regular file, vanished, ...); an entry an
    earlier version recorded for an environment fault is not shown (ingest copies that object again)."""
    with Ledger(settings.ledger_path) as ledger:
        return ledger.landing_entries()


def release(settings: Settings, shard: str, reason: str) -> dict[str, Any]:
    """A person accepts a quarantined shard (a false positive): it moves to ``accepted/``, the reason is
    recorded in the ledger. A structurally broken shard cannot be released: training could not read it."""
    if not reason.strip():
        raise ValueError("a release needs a reason (--reason)")
    with gate_lock(settings), Ledger(settings.ledger_path) as ledger:
        record = ledger.find(shard)
        if record.status != QUARANTINED:
            raise ValueError(
                f"{record.name}: status is '{record.status}', only quarantined shards can be released"
            )
        path = locate(settings, record)
        with Sandbox(Limits.from_settings(settings)) as sandbox:
            reading = sandbox.read(path)
        if reading.columns is None:
            assert reading.error is not None
            raise reading.error  # a ShardFormatError naming the field
        table = summary_table(reading.columns)
        move(path, settings.accepted_dir)
        objids = table["objid"].to_numpy(dtype=np.int64)
        ledger.mark_released(record.sha256, len(table), objids, magnitudes(table), reason.strip())
        released = ledger.find(record.sha256)
        log.info("released %s (%d cutouts): %s", record.name, len(table), reason)
        return {**released.to_dict(), "events": ledger.events(record.sha256)}
