"""Quarantine reports: what failed, why, with example rows, as JSON and as GE's Data Docs page.

For each quarantined shard, ``quarantine/<shard>.result.json`` holds the failed expectations (type, column,
the suite's ``meta.why``, unexpected counts, example rows by ``row`` and ``objid``) and the full GE results;
``<shard>.report.html`` is GE's Data Docs validation page of the first failing suite with a short header
naming what failed, or the header alone when no suite could judge the shard. When a shard's colours were
measured, both also carry the colour calibration (:mod:`astrospect.gate.colour_calibration`): the median residual
of each colour and, when the colours fail, the zero point they point to (band, offset, uncertainty).
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from astrospect.atomic import write_replacing
from astrospect.gate.ledger import ShardRecord
from astrospect.gate.suites import EXAMPLE_ROWS
from astrospect.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path

    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult

    from astrospect.gate.colour_calibration import ColourCheck
    from astrospect.gate.flux_reference import FluxReference

COLOUR_SHIFT_PREFIX = "colour_shift_sigma_"


def failed_expectations(result: ExpectationSuiteValidationResult) -> list[dict[str, Any]]:
    """The failed expectations of a GE result: type, column, why, unexpected count, example rows."""
    if result.success:  # the usual case: no need to turn the whole result into JSON
        return []
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


def colour_calibration_failed(failures: list[dict[str, Any]]) -> bool:
    """Whether a colour-calibration expectation (``colour_shift_sigma_<colour>``) failed."""
    return any(str(failure["column"] or "").startswith(COLOUR_SHIFT_PREFIX) for failure in failures)


def reason_text(failures: list[dict[str, Any]], calibration: ColourCheck | None = None) -> str:
    """The ledger's one-line reason: each failure, and the zero-point estimate when the colours failed."""
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
    if calibration is not None and calibration.estimate is not None and colour_calibration_failed(failures):
        parts.append(f"colour calibration: {calibration.estimate.text()}")
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


def calibration_html(calibration: ColourCheck | None, failures: list[dict[str, Any]]) -> str:
    """The colours' verdict on the zero points: which band, how much, how sure; the per-colour shifts."""
    if calibration is None:
        return ""
    shifts = ", ".join(
        f"{colour} {calibration.shifts[colour]:+.3f} ({calibration.significance(colour):+.1f} sigma beyond "
        f"the mix floor {calibration.floors[colour]:.3f})"
        for colour in calibration.shifts
    )
    estimate = calibration.estimate
    if estimate is None:
        verdict = f"too few cutouts in the colour reference's range ({calibration.galaxies}) to estimate"
    else:
        verdict = (
            f"<b>{html.escape(estimate.text())}</b> (measured - true: + is too faint; chi2 {estimate.chi2:.1f} "
            f"for 4 colours, against {estimate.chi2_none:.1f} with no offset; next best band "
            f"{estimate.runner_up}, chi2 {estimate.runner_up_chi2:.1f})"
        )
    heading = "Colour calibration failed" if colour_calibration_failed(failures) else "Colour calibration"
    return (
        f"<p>{heading}: {verdict}.<br>Median colour residuals about the reference, {calibration.galaxies} "
        f"cutouts: {html.escape(shifts)}</p>"
    )


def report_header(
    record: ShardRecord,
    failures: list[dict[str, Any]],
    reference: FluxReference,
    calibration: ColourCheck | None = None,
) -> str:
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
        f"{calibration_html(calibration, failures)}"
        f"<p>Release a false positive with <code>astrospect quarantine release {html.escape(record.name)}"
        ' --reason "..."</code></p></div>'
    )


def write_report(
    settings: Settings,
    record: ShardRecord,
    results: dict[str, ExpectationSuiteValidationResult],
    failures: list[dict[str, Any]],
    reference: FluxReference,
    calibration: ColourCheck | None = None,
) -> tuple[Path, Path]:
    """``quarantine/<shard>.result.json`` (the GE results and the failures) and ``<shard>.report.html``: GE's
    Data Docs page of the first failing suite, or the header alone when the shard could not be judged."""
    folder = settings.quarantine_dir
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "shard": record.name,
        "sha256": record.sha256,
        "source": record.source,
        "failed": failures,
        "flux_reference": asdict(reference),
        "colour_calibration": None if calibration is None else calibration.to_dict(),
        "great_expectations": {name: result.to_json_dict() for name, result in results.items()},
    }
    result_path = folder / f"{record.name}.result.json"
    write_replacing(result_path, json.dumps(to_jsonable(payload), indent=2).encode())
    header = report_header(record, failures, reference, calibration)
    failing = next((result for result in results.values() if not result.success), None)
    page = render_data_docs(failing, header) if failing is not None else f"<html><body>{header}</body></html>"
    report_path = folder / f"{record.name}.report.html"
    write_replacing(report_path, page.encode())  # reports are ours to refresh; shards are never replaced
    return result_path, report_path
