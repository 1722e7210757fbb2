"""Validate: gate every pending shard of the raw store with the Great Expectations suites in ``expectations/``.

Per shard, in ingest order: the structure suite runs on a one-row table from the HDF5 header (the DESIGN.md
§3 check of :func:`~astrospect.data.shards.inspect_shard` plus the file attributes); a shard that passes is
summarised per cutout (:mod:`astrospect.data.summaries`) and the summary suite runs on that table, its flux
bounds filled in from the flux reference. A shard that passes everything moves to ``accepted/`` and its
objids and magnitudes go into the ledger; any other moves to ``quarantine/`` beside its GE result (JSON) and
a Data Docs page (HTML) that names the failed expectations and example rows. One bad shard never stops the
others, and nothing is deleted: files only move (hard link, then unlink), never over an existing file.
"""

from __future__ import annotations

import html
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from astrospect.data.shards import ShardFormatError, ShardInfo, inspect_shard
from astrospect.data.summaries import magnitudes, summarize_shard
from astrospect.ledger import QUARANTINED, RAW, RELEASED, Ledger, ShardRecord, gate_lock
from astrospect.settings import BANDS, Settings, get_logger
from astrospect.store import S3Store, open_store

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult

log = get_logger(__name__)

STRUCTURE_SUITE = "shard_structure"
SUMMARY_SUITE = "cutout_summaries"
REFERENCE_FILE = "flux_reference.json"
EXAMPLE_ROWS = 10  # unexpected rows quoted per failed expectation
# Which columns identify an unexpected row in the reports.
INDEX_COLUMNS = {STRUCTURE_SUITE: ["shard", "format_error"], SUMMARY_SUITE: ["row", "objid"]}


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


# -- the flux reference -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FluxReference:
    """Per-band magnitude quantiles (p01, p50, p99) and tolerances the distribution expectations compare to."""

    quantiles: dict[str, dict[str, float]]
    median_tolerance: float
    range_margin: float
    source: str

    def parameters(self) -> dict[str, float]:
        """The ``$PARAMETER`` values of the summary suite."""
        values = {}
        for band in BANDS:
            q = self.quantiles[band]
            values[f"mag_{band}_median_min"] = q["p50"] - self.median_tolerance
            values[f"mag_{band}_median_max"] = q["p50"] + self.median_tolerance
            values[f"mag_{band}_min"] = q["p01"] - self.range_margin
            values[f"mag_{band}_max"] = q["p99"] + self.range_margin
        return {name: round(value, 4) for name, value in values.items()}


def flux_reference(settings: Settings, ledger: Ledger) -> FluxReference:
    """The accepted data's own magnitude quantiles once there are ``reference_min_rows`` accepted cutouts;
    until then the reference shipped in ``expectations/flux_reference.json`` (from real SDSS galaxies).

    Not the first batch: a batch cannot vouch for itself, and a shifted first batch would become the norm.
    """
    shipped = json.loads((settings.expectations_dir / REFERENCE_FILE).read_text())
    tolerance = shipped["tolerance"]
    accepted = ledger.accepted_magnitudes()
    if len(accepted) >= settings.reference_min_rows:
        p01, p50, p99 = np.percentile(accepted, [1, 50, 99], axis=0)
        quantiles = {
            band: {"p01": float(p01[b]), "p50": float(p50[b]), "p99": float(p99[b])}
            for b, band in enumerate(BANDS)
        }
        source = f"accepted data ({len(accepted)} cutouts)"
    else:
        quantiles = shipped["quantiles"]
        source = f"shipped SDSS reference ({len(accepted)} accepted cutouts < {settings.reference_min_rows})"
    return FluxReference(
        quantiles, float(tolerance["median_mag"]), float(tolerance["range_margin_mag"]), source
    )


# -- Great Expectations -----------------------------------------------------------------------------------
def load_suite_json(path: Path) -> dict[str, Any]:
    suite: dict[str, Any] = json.loads(path.read_text())
    return suite


class Gate:
    """An ephemeral GE context holding the two suites, each bound to a pandas dataframe batch."""

    def __init__(self, expectations_dir: Path) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self.context.data_sources.add_pandas("astrospect")
        self.definitions = {}
        for name in (STRUCTURE_SUITE, SUMMARY_SUITE):
            batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(f"{name}_table")
            suite = self.context.suites.add(load_suite(expectations_dir / f"{name}.json"))
            self.definitions[name] = self.context.validation_definitions.add(
                gx.ValidationDefinition(name=name, data=batch, suite=suite)
            )

    def run(
        self, suite: str, table: pd.DataFrame, shard: str, parameters: dict[str, float] | None = None
    ) -> ExpectationSuiteValidationResult:
        """Validate ``table``; a failing result carries the example rows. Most shards pass, and a pass/fail
        run costs half of one that collects unexpected rows (measured), so the rows are collected only on
        a second run of a failing shard."""
        quick = self._validate(suite, table, shard, parameters, "BOOLEAN_ONLY")
        if quick.success:
            return quick
        detailed = {
            "result_format": "SUMMARY",
            "unexpected_index_column_names": INDEX_COLUMNS[suite],
            "partial_unexpected_count": EXAMPLE_ROWS,
        }
        return self._validate(suite, table, shard, parameters, detailed)

    def _validate(
        self,
        suite: str,
        table: pd.DataFrame,
        shard: str,
        parameters: dict[str, float] | None,
        result_format: Literal["BOOLEAN_ONLY"] | dict[str, Any],
    ) -> ExpectationSuiteValidationResult:
        from great_expectations.core.run_identifier import RunIdentifier

        return self.definitions[suite].run(
            batch_parameters={"dataframe": table},
            expectation_parameters=parameters or {},
            result_format=result_format,
            run_id=RunIdentifier(run_name=shard),
        )


def load_suite(path: Path) -> Any:
    """An ExpectationSuite from its JSON. GE logs and drops an invalid expectation; here that is an error."""
    import great_expectations as gx

    spec = load_suite_json(path)
    suite = gx.ExpectationSuite(**spec)
    if len(suite.expectations) != len(spec["expectations"]):
        raise ValueError(
            f"{path}: {len(spec['expectations']) - len(suite.expectations)} expectation(s) are not valid "
            "Great Expectations 1.x configurations (see the log above)"
        )
    return suite


# -- tables -------------------------------------------------------------------------------------------------
def structure_table(
    path: Path, name: str, read_error: ShardFormatError | None = None
) -> tuple[pd.DataFrame, ShardInfo | None]:
    """One row describing the shard's structure: the inspect_shard verdict (or ``read_error``, when the
    header was fine but the pixels could not be read) and the file attributes."""
    info: ShardInfo | None = None
    error = read_error
    try:
        info = inspect_shard(path)
    except ShardFormatError as caught:
        error = caught
    attrs = info.attrs if info else {}
    row = {
        "shard": name,
        "format_error_field": error.field if error else None,
        "format_error": error.reason if error else None,
        "n_cutouts": info.n if info else None,
        "cutout_size": info.size if info else None,
        "bands_attr": str(attrs["bands"]) if "bands" in attrs else None,
        "pixel_scale_arcsec": _number(attrs["pixel_scale_arcsec"]) if "pixel_scale_arcsec" in attrs else None,
    }
    return pd.DataFrame([row]), info


def _number(value: object) -> float:
    """An attribute as a float; one that is not a number becomes -1, which fails the range expectation."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return -1.0


def with_ledger_lookup(table: pd.DataFrame, ledger: Ledger) -> pd.DataFrame:
    """Add ``objid_accepted_in``: the accepted shard already holding each objid (None when new). Shards are
    admitted to the ledger one by one, so this also catches a duplicate of a shard accepted earlier in the batch.
    """
    objids = table["objid"].to_numpy(dtype=np.int64)
    owners = ledger.accepted_owner(objids)
    table = table.copy()
    table["objid_accepted_in"] = pd.Series([owners.get(int(o)) for o in objids], dtype=object)
    return table


# -- reports --------------------------------------------------------------------------------------------------
def failed_expectations(result: ExpectationSuiteValidationResult) -> list[dict[str, Any]]:
    """The failed expectations of a GE result: type, column, why, unexpected count, example rows."""
    failed = []
    for item in to_jsonable(result.to_json_dict())["results"]:
        if item["success"]:
            continue
        config = item["expectation_config"]
        outcome = item.get("result", {})
        failed.append(
            {
                "expectation": config["type"],
                "column": config["kwargs"].get("column"),
                "why": config.get("meta", {}).get("why"),
                "unexpected_count": outcome.get("unexpected_count"),
                "observed_value": outcome.get("observed_value"),
                "examples": outcome.get("partial_unexpected_index_list", [])[:EXAMPLE_ROWS],
                "exception": item.get("exception_info", {}).get("exception_message"),
            }
        )
    return failed


def label(failure: dict[str, Any]) -> str:
    column = f"({failure['column']})" if failure["column"] else ""
    return f"{failure['expectation']}{column}"


def reason_text(failures: list[dict[str, Any]]) -> str:
    parts = []
    for failure in failures:
        if failure["column"] == "format_error_field" and failure["examples"]:
            example = failure["examples"][0]
            parts.append(f"structure: field '{example['format_error_field']}': {example['format_error']}")
            continue
        detail = (
            f"{failure['unexpected_count']} row(s)"
            if failure["unexpected_count"] is not None
            else f"observed {failure['observed_value']}"
        )
        parts.append(f"{label(failure)}: {detail}")
    return "; ".join(parts)


def to_jsonable(value: Any) -> Any:
    """Plain JSON types (GE's results carry numpy scalars that json cannot write)."""
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def render_data_docs(result: ExpectationSuiteValidationResult, header: str) -> str:
    """GE's Data Docs validation page for one result, with a short plain header of what failed and why."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    # GE 1.24's number formatting parses repr(value); numpy 2 writes repr(np.float64(1.5)) as
    # "np.float64(1.5)", which it cannot parse. The legacy repr is scoped to this block.
    with np.printoptions(legacy="1.25"):
        document = ValidationResultsPageRenderer().render(result)
        page = str(DefaultJinjaPageView().render(document))
    body = page.find("<body")
    insert_at = page.find(">", body) + 1 if body >= 0 else 0
    return page[:insert_at] + header + page[insert_at:]


def report_header(record: ShardRecord, failures: list[dict[str, Any]], reference: FluxReference) -> str:
    items = []
    for failure in failures:
        examples = ", ".join(
            "{" + ", ".join(f"{key}: {value}" for key, value in example.items()) + "}"
            for example in failure["examples"][:5]
        )
        facts = [
            f"{name}: {failure[key]}"
            for name, key in (("unexpected rows", "unexpected_count"), ("observed", "observed_value"))
            if failure[key] is not None
        ]
        if examples:
            facts.append(f"example rows: {examples}")
        items.append(
            f"<li><b>{html.escape(label(failure))}</b>: {html.escape(str(failure['why']))}"
            + "".join(f"<br>{html.escape(fact)}" for fact in facts)
            + "</li>"
        )
    return (
        '<div style="margin:1em;padding:1em;border:2px solid #c00;font-family:sans-serif">'
        f"<h2>AstroSpect quarantine: {html.escape(record.name)}</h2>"
        f"<p>sha256 {record.sha256}<br>source {html.escape(record.source)}<br>"
        f"flux reference: {html.escape(reference.source)}</p>"
        f"<p>Failed expectations:</p><ul>{''.join(items)}</ul>"
        f"<p>Release a false positive with <code>astrospect quarantine release {html.escape(record.name)}"
        ' --reason "..."</code></p></div>'
    )


def write_report(
    settings: Settings,
    record: ShardRecord,
    results: dict[str, ExpectationSuiteValidationResult],
    failures: list[dict[str, Any]],
    reference: FluxReference,
) -> tuple[Path, Path]:
    """``quarantine/<shard>.result.json`` (the GE results and the failures) and ``<shard>.report.html``."""
    folder = settings.quarantine_dir
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "shard": record.name,
        "sha256": record.sha256,
        "source": record.source,
        "failed": failures,
        "flux_reference": asdict(reference),
        "great_expectations": {name: result.to_json_dict() for name, result in results.items()},
    }
    result_path = folder / f"{record.name}.result.json"
    _write_text_atomic(result_path, json.dumps(to_jsonable(payload), indent=2))
    failing = next(result for result in results.values() if not result.success)
    report_path = folder / f"{record.name}.report.html"
    _write_text_atomic(report_path, render_data_docs(failing, report_header(record, failures, reference)))
    return result_path, report_path


def _write_text_atomic(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.part")
    temp.write_text(text)
    os.replace(temp, path)  # reports are ours to refresh; shards are never replaced


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
def validate_pending(settings: Settings) -> ValidationResult:
    """Validate every shard of the raw store that has no verdict yet."""
    started = time.perf_counter()
    result = ValidationResult()
    with gate_lock(settings), Ledger(settings.ledger_path) as ledger:
        pending = ledger.with_status(RAW)
        if not pending:
            log.info("validate: nothing pending")
            return result
        gate = Gate(settings.expectations_dir)
        store = open_store(settings)
        reference = flux_reference(settings, ledger)
        result.reference = reference.source
        log.info("validate: %d pending shard(s); flux reference: %s", len(pending), reference.source)
        for index, record in enumerate(pending, start=1):
            verdict, checked = _judge(settings, ledger, gate, reference, record, store)
            result.cutouts += checked
            if verdict.accepted:
                result.accepted.append(str(settings.accepted_dir / verdict.shard))
            else:
                result.quarantined.append(
                    {k: getattr(verdict, k) for k in ("shard", "sha256", "reason", "failed", "report")}
                )
            elapsed = time.perf_counter() - started
            log.info(
                "validate: %d/%d %s %s (%d cutouts, %.0f cutouts/s)%s",
                index,
                len(pending),
                verdict.shard,
                "accepted" if verdict.accepted else "QUARANTINED",
                checked,
                result.cutouts / max(elapsed, 1e-9),
                "" if verdict.accepted else f": {verdict.reason}",
            )
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


def _judge(
    settings: Settings,
    ledger: Ledger,
    gate: Gate,
    reference: FluxReference,
    record: ShardRecord,
    store: S3Store | None,
) -> tuple[Verdict, int]:
    """Run both suites on one shard and move it; returns the verdict and the number of cutouts checked."""
    path = locate(settings, record)
    structure, info = structure_table(path, record.name)
    table = None
    if info is not None:
        try:
            table = with_ledger_lookup(summarize_shard(path), ledger)
        except OSError as error:  # the header reads but the pixels do not (e.g. a corrupt compressed chunk)
            unreadable = ShardFormatError(path, "images", f"pixel data unreadable: {error}")
            structure, info = structure_table(path, record.name, read_error=unreadable)
    results = {STRUCTURE_SUITE: gate.run(STRUCTURE_SUITE, structure, record.name)}
    if results[STRUCTURE_SUITE].success and table is not None:
        results[SUMMARY_SUITE] = gate.run(SUMMARY_SUITE, table, record.name, reference.parameters())
    checked = 0 if table is None else len(table)
    if all(outcome.success for outcome in results.values()) and table is not None:
        move(path, settings.accepted_dir)
        objids = table["objid"].to_numpy(dtype=np.int64)
        ledger.mark_accepted(
            record.sha256, len(table), objids, magnitudes(table), f"passed ({reference.source})"
        )
        return Verdict(record.name, record.sha256, True, len(table), ""), checked
    failures = [failure for outcome in results.values() for failure in failed_expectations(outcome)]
    reason = reason_text(failures)
    result_path, report_path = write_report(settings, record, results, failures, reference)
    if store is not None:  # the reports are readable wherever the shard store is (the shard is in raw/ there)
        for path in (result_path, report_path):
            store.put_text(f"quarantine/{path.name}", path.read_text(), once=False)
    move(path, settings.quarantine_dir)
    ledger.mark_quarantined(record.sha256, info.n if info else None, reason, str(report_path))
    verdict = Verdict(
        record.name,
        record.sha256,
        False,
        info.n if info else None,
        reason,
        failed=[label(failure) for failure in failures],
        report=str(report_path),
        result=str(result_path),
    )
    return verdict, checked


# -- quarantine -----------------------------------------------------------------------------------------------
def quarantine_list(settings: Settings, include_released: bool = False) -> list[dict[str, Any]]:
    """What quarantine holds and why (and, optionally, what people have released and their reasons)."""
    statuses = (QUARANTINED, RELEASED) if include_released else (QUARANTINED,)
    with Ledger(settings.ledger_path) as ledger:
        return [record.to_dict() for record in ledger.with_status(*statuses)]


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
        inspect_shard(path)  # raises ShardFormatError naming the field
        try:
            table = summarize_shard(path)
        except OSError as error:
            raise ShardFormatError(path, "images", f"pixel data unreadable: {error}") from error
        move(path, settings.accepted_dir)
        objids = table["objid"].to_numpy(dtype=np.int64)
        ledger.mark_released(record.sha256, len(table), objids, magnitudes(table), reason.strip())
        released = ledger.find(record.sha256)
        log.info("released %s (%d cutouts): %s", record.name, len(table), reason)
        return {**released.to_dict(), "events": ledger.events(record.sha256)}
