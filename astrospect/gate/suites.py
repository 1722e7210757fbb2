"""The data gate's Great Expectations suites (``expectations/*.json``) and the context that runs them.

:class:`Gate` holds an ephemeral GE context with one pandas batch definition per suite. Three suites judge
each row on its own (:data:`BATCHED_SUITES`): on a group of shards they pass exactly when they pass on each,
so :mod:`astrospect.gate.validate` runs them once per group and asks :meth:`Gate.failing_shards` which shards broke
them; loading refuses any other kind of expectation into them. The summary suite judges one shard as a
whole; :mod:`astrospect.gate.shard_summaries` turns it into per-shard statistics and a row-wise suite over them
(:data:`SUMMARY_BY_SHARD`), so it too runs once per group (:meth:`Gate.passing_summaries`), and only a shard
that does not pass there gets the summary suite on its own rows. See ``expectations/README.md`` for what each
suite checks and why.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from astrospect.gate.shard_summaries import ShardSummaries

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult

STRUCTURE_SUITE = "shard_structure"
STATISTICS_SUITE = "shard_statistics"
VALUES_SUITE = "cutout_values"
SUMMARY_SUITE = "cutout_summaries"
BATCHED_SUITES = (STRUCTURE_SUITE, STATISTICS_SUITE, VALUES_SUITE)  # row by row: one run per batch
SUITES = (*BATCHED_SUITES, SUMMARY_SUITE)
SUMMARY_BY_SHARD = "cutout_summaries_by_shard"  # derived from SUMMARY_SUITE, not a file
EXAMPLE_ROWS = 10  # unexpected rows quoted per failed expectation
# Which columns identify an unexpected row in the reports.
INDEX_COLUMNS = {
    STRUCTURE_SUITE: ["shard", "format_error"],
    STATISTICS_SUITE: ["shard"],
    VALUES_SUITE: ["shard", "row", "objid"],
    SUMMARY_SUITE: ["row", "objid"],
}
# Expectations that judge each row on its own: on a batch of shards they fail exactly when they fail on one.
ROW_WISE = frozenset(
    {
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_null",
        "expect_column_values_to_not_be_null",
    }
)


def load_suite_json(path: Path) -> dict[str, Any]:
    suite: dict[str, Any] = json.loads(path.read_text())
    return suite


class Gate:
    """An ephemeral GE context holding the suites, each bound to a pandas dataframe batch."""

    def __init__(self, expectations_dir: Path) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self.context.data_sources.add_pandas("astrospect")
        self.batches = {}
        self.suites = {}
        for name in SUITES:
            asset = source.add_dataframe_asset(name)
            self.batches[name] = asset.add_batch_definition_whole_dataframe(f"{name}_table")
            path = expectations_dir / f"{name}.json"
            suite = load_suite(path)
            if name in BATCHED_SUITES:
                _require_row_wise(path, suite)
            self.suites[name] = self.context.suites.add(suite)
        self.summaries = ShardSummaries(
            load_suite_json(expectations_dir / f"{SUMMARY_SUITE}.json"), SUMMARY_BY_SHARD
        )
        asset = source.add_dataframe_asset(SUMMARY_BY_SHARD)
        self.batches[SUMMARY_BY_SHARD] = asset.add_batch_definition_whole_dataframe(
            f"{SUMMARY_BY_SHARD}_table"
        )
        derived = _suite_from_spec(self.summaries.suite(), f"{SUMMARY_SUITE}.json (per shard)")
        _require_row_wise(Path(SUMMARY_BY_SHARD), derived)
        self.suites[SUMMARY_BY_SHARD] = self.context.suites.add(derived)

    def run(
        self, suite: str, table: pd.DataFrame, shard: str, parameters: dict[str, float] | None = None
    ) -> ExpectationSuiteValidationResult:
        """Validate ``table``; a failing result carries the example rows. Most shards pass, and a pass/fail
        run costs half of one that collects unexpected rows (measured), so the rows are collected only on
        a second run of a failing shard."""
        quick = self._validate(suite, table, parameters, "BOOLEAN_ONLY")
        if quick.success:
            return quick
        detailed = {
            "result_format": "SUMMARY",
            "unexpected_index_column_names": INDEX_COLUMNS[suite],
            "partial_unexpected_count": EXAMPLE_ROWS,
        }
        return self._validate(suite, table, parameters, detailed, shard=shard)

    def passing_summaries(
        self, statistics: dict[str, dict[str, float]], parameters: dict[str, float]
    ) -> set[str]:
        """The shards whose summary table certainly passes the summary suite, from one run of its per-shard
        form on their statistics (``statistics``: shard -> :meth:`ShardSummaries.row`, computed with the same
        ``parameters``); the others need the suite itself (:mod:`astrospect.gate.shard_summaries`)."""
        if not statistics:
            return set()
        rows = pd.DataFrame([{"shard": name, **row} for name, row in statistics.items()])
        return set(statistics) - self.failing_shards(
            SUMMARY_BY_SHARD, rows, self.summaries.bounds(parameters)
        )

    def failing_shards(
        self, suite: str, table: pd.DataFrame, parameters: dict[str, float | None] | None = None
    ) -> set[str]:
        """The shards (``shard`` column) with a row that fails a row-wise suite: none after one pass/fail run
        when the whole batch passes, else every unexpected row's shard from a complete run."""
        if (
            table.empty
            or self._validate(suite, table.drop(columns="shard"), parameters, "BOOLEAN_ONLY").success
        ):
            return set()  # (without the text column of names, which only slows GE down by a fifth)
        complete = self._validate(
            suite,
            table,
            parameters,
            {"result_format": "COMPLETE", "unexpected_index_column_names": ["shard"]},
        )
        failing: set[str] = set()
        for item in complete.results:
            if item.success:
                continue
            rows = (item.result or {}).get("unexpected_index_list") or []
            if not rows:  # the expectation raised: GE names no row, so every shard of the batch is suspect
                return set(table["shard"])
            failing |= {str(row["shard"]) for row in rows}
        return failing

    def _validate(
        self,
        suite: str,
        table: pd.DataFrame,
        parameters: dict[str, float | None] | dict[str, float] | None,
        result_format: Literal["BOOLEAN_ONLY"] | dict[str, Any],
        shard: str | None = None,
    ) -> ExpectationSuiteValidationResult:
        from great_expectations.core.run_identifier import RunIdentifier

        # Batch.validate, not ValidationDefinition.run: the latter also stores every result in the context,
        # which costs a tenth of a run and keeps all of a night's results in memory.
        batch = self.batches[suite].get_batch(batch_parameters={"dataframe": table})
        result = batch.validate(
            self.suites[suite], result_format=result_format, expectation_parameters=parameters or {}
        )
        if shard is not None:  # names the page of a report
            result.meta["run_id"] = RunIdentifier(run_name=shard)
        return result


def gate_for(expectations_dir: Path) -> Gate:
    """The :class:`Gate` of ``expectations_dir``, built once per process while its suites stay as they are
    (a long-lived process, such as a worker validating night after night, pays GE's set-up once)."""
    files = tuple(
        (path.name, path.stat().st_mtime_ns, path.stat().st_size)
        for path in sorted(expectations_dir.glob("*.json"))
    )
    return _cached_gate(expectations_dir, files)


@functools.lru_cache(maxsize=1)
def _cached_gate(expectations_dir: Path, files: tuple[tuple[str, int, int], ...]) -> Gate:
    return Gate(expectations_dir)


def _require_row_wise(path: Path, suite: Any) -> None:
    for expectation in suite.expectations:
        configuration = expectation.configuration
        if configuration.type not in ROW_WISE or "mostly" in configuration.kwargs:
            raise ValueError(
                f"{path}: {configuration.type}({configuration.kwargs.get('column')}) does not judge rows one by "
                "one; this suite runs on batches of shards, so only row-wise expectations without 'mostly' belong here"
            )


def load_suite(path: Path) -> Any:
    """An ExpectationSuite from its JSON. GE logs and drops an invalid expectation; here that is an error."""
    return _suite_from_spec(load_suite_json(path), str(path))


def _suite_from_spec(spec: dict[str, Any], source: str) -> Any:
    import great_expectations as gx

    suite = gx.ExpectationSuite(**spec)
    if len(suite.expectations) != len(spec["expectations"]):
        raise ValueError(
            f"{source}: {len(spec['expectations']) - len(suite.expectations)} expectation(s) are not valid "
            "Great Expectations 1.x configurations (see the log above)"
        )
    return suite
