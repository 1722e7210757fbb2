"""The summary suite (``expectations/cutout_summaries.json``) judged for many shards in one Great Expectations run.

That suite judges one shard's cutout table as a whole (its size, the uniqueness of its objids, its redshift
spread, each band's median magnitude), so it cannot run on a table of many shards' cutouts. Run once per
shard it was most of the gate's time, and almost all of that was GE's fixed cost per expectation (building
each expectation's metric graph, ~8 ms each whatever the table's size: ``make bench-ingest``'s profile). Here
each of its expectations becomes one or more statistics of a shard (a row per shard) and a row-wise
expectation on each statistic with the same bounds, so one GE run judges a whole group of shards
(:meth:`astrospect.gate.suites.Gate.passing_summaries`). The suite file stays the one place the bounds live.

One-sided on purpose: a shard passes here only where the per-shard suite would pass it. The statistics are
computed as GE computes them on pandas (the same ``Series`` methods, nulls dropped where GE drops them), every
bound is tightened by :data:`MARGIN`, and a statistic that cannot be measured (NaN, infinite) counts in
``unmeasured``, which must be 0. A shard that does not pass here is judged by ``cutout_summaries.json`` itself,
on its own rows: that run is its verdict and its quarantine report. So the verdicts are the per-shard suite's
and only the usual case, a shard that passes, got cheaper.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    import pandas as pd

# Bounds are tightened by this fraction of their size (at least of 1): a statistic on a bound, or off it by
# float rounding, is left to the per-shard suite.
MARGIN = 1e-9
UNMEASURED = "unmeasured"  # the count of a shard's statistics that are NaN or infinite

Bound = float | None
Interpolation = Literal["linear", "lower", "higher", "midpoint", "nearest"]
# (table, the expectation's kwargs with its $PARAMETERs resolved) -> one value per statistic
Measure = Callable[["pd.DataFrame", Mapping[str, Any]], list[float]]


@dataclass(frozen=True)
class Statistic:
    """One column of the per-shard table: what it measures, from which expectation, and its bounds."""

    column: str
    index: int  # of the expectation in the summary suite
    part: int  # which value of the expectation's measure (a quantile expectation has several)


def _resolve(value: Any, parameters: Mapping[str, Any]) -> Any:
    """``value`` with every ``{"$PARAMETER": name}`` replaced by ``parameters[name]``."""
    if isinstance(value, dict):
        if set(value) == {"$PARAMETER"}:
            return parameters[value["$PARAMETER"]]
        return {key: _resolve(item, parameters) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, parameters) for item in value]
    return value


def _tighten(
    low: Bound, high: Bound, strict_low: bool = False, strict_high: bool = False
) -> tuple[Bound, Bound]:
    """Inclusive bounds inside ``[low, high]`` (strict or not) by :data:`MARGIN`."""

    def inward(bound: Bound, sign: int) -> Bound:
        return None if bound is None else float(bound) + sign * MARGIN * max(1.0, abs(float(bound)))

    return inward(low, +1), inward(high, -1)


def _passing_fraction(passes: pd.Series, considered: int) -> float:
    """A map expectation as a statistic: the fraction of the rows it considers that pass (NaN for none)."""
    return float(passes.sum()) / considered if considered else math.nan


def _mostly_bound(kwargs: Mapping[str, Any]) -> float:
    """The lower bound of a map expectation's fraction: ``mostly`` tightened, or every row for GE's default 1."""
    mostly = float(kwargs.get("mostly", 1.0))
    low = _tighten(mostly, None)[0]
    return 1.0 if mostly >= 1.0 or low is None else low


def _column(table: pd.DataFrame, kwargs: Mapping[str, Any]) -> pd.Series:
    """The expectation's column without nulls, as GE's column aggregate metrics see it."""
    column: pd.Series = table[str(kwargs["column"])]
    return column.dropna()


def _column_between(table: pd.DataFrame, kwargs: Mapping[str, Any]) -> float:
    values = _column(table, kwargs)
    low, high = _tighten(
        kwargs.get("min_value"),
        kwargs.get("max_value"),
        kwargs.get("strict_min", False),
        kwargs.get("strict_max", False),
    )
    passes = values.notna()
    if low is not None:
        passes &= values >= low
    if high is not None:
        passes &= values <= high
    return _passing_fraction(passes, len(values))


def _column_unique(table: pd.DataFrame, kwargs: Mapping[str, Any]) -> float:
    values = _column(table, kwargs)
    return _passing_fraction(~values.duplicated(keep=False), len(values))


def _column_null(table: pd.DataFrame, kwargs: Mapping[str, Any]) -> float:
    values = table[str(kwargs["column"])]  # GE considers every row here, nulls included
    return _passing_fraction(values.isna(), len(values))


def _quantiles(table: pd.DataFrame, kwargs: Mapping[str, Any]) -> list[float]:
    interpolation: Interpolation = kwargs.get("allow_relative_error") or "nearest"  # GE's default for pandas
    if interpolation not in get_args(Interpolation):
        raise ValueError(
            f"allow_relative_error={interpolation!r}: not a pandas interpolation (GE refuses it too)"
        )
    values = _column(table, kwargs)
    return [
        float(values.quantile(q, interpolation=interpolation)) for q in kwargs["quantile_ranges"]["quantiles"]
    ]


def _unique_proportion(table: pd.DataFrame, kwargs: Mapping[str, Any]) -> list[float]:
    values = _column(table, kwargs)
    return [float(values.nunique()) / len(values) if len(values) else 0.0]


# Aggregate expectations: the statistics GE compares with min_value / max_value (or value_ranges), computed
# as GE's pandas metrics compute them.
AGGREGATES: dict[str, Measure] = {
    "expect_table_row_count_to_be_between": lambda table, _: [float(len(table))],
    "expect_column_stdev_to_be_between": lambda table, kw: [float(_column(table, kw).std())],
    "expect_column_median_to_be_between": lambda table, kw: [float(_column(table, kw).median())],
    "expect_column_proportion_of_unique_values_to_be_between": _unique_proportion,
    "expect_column_quantile_values_to_be_between": _quantiles,
}
# Map expectations (each row on its own, optionally ``mostly``): the fraction of rows that pass.
MAPS: dict[str, Callable[[pd.DataFrame, Mapping[str, Any]], float]] = {
    "expect_column_values_to_be_between": _column_between,
    "expect_column_values_to_be_unique": _column_unique,
    "expect_column_values_to_be_null": _column_null,
}
COLUMN_SET = "expect_table_columns_to_match_set"
SUPPORTED = frozenset({*AGGREGATES, *MAPS, COLUMN_SET})


def _aggregate_bounds(kind: str, kwargs: Mapping[str, Any], part: int) -> tuple[Bound, Bound]:
    if kind == "expect_column_quantile_values_to_be_between":
        low, high = kwargs["quantile_ranges"]["value_ranges"][part]
        return _tighten(low, high)
    return _tighten(
        kwargs.get("min_value"),
        kwargs.get("max_value"),
        kwargs.get("strict_min", False),
        kwargs.get("strict_max", False),
    )


class ShardSummaries:
    """The summary suite's expectations as per-shard statistics and a row-wise suite over them."""

    def __init__(self, suite: Mapping[str, Any], name: str) -> None:
        self.name = name
        self.expectations: list[tuple[str, dict[str, Any]]] = []
        self.statistics: list[Statistic] = []
        for index, expectation in enumerate(suite["expectations"]):
            kind, kwargs = expectation["type"], dict(expectation["kwargs"])
            if kind not in SUPPORTED:
                raise ValueError(
                    f"{suite['name']}: {kind} has no per-shard statistic in astrospect/gate/shard_summaries.py;"
                    f" add one there (supported: {', '.join(sorted(SUPPORTED))})"
                )
            self.expectations.append((kind, kwargs))
            parts = len(kwargs["quantile_ranges"]["quantiles"]) if "quantile_ranges" in kwargs else 1
            label = kind.removeprefix("expect_").removesuffix("_to_be_between")
            target = kwargs.get("column", "table")
            for part in range(parts):
                suffix = f"_q{part}" if parts > 1 else ""
                self.statistics.append(Statistic(f"s{index:02d}_{label}_{target}{suffix}", index, part))

    def suite(self) -> dict[str, Any]:
        """The row-wise suite: each statistic between its bounds (``$PARAMETER``s), and nothing unmeasured."""
        expectations = [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {
                    "column": statistic.column,
                    "min_value": {"$PARAMETER": f"{statistic.column}_min"},
                    "max_value": {"$PARAMETER": f"{statistic.column}_max"},
                },
                "meta": {"why": f"{self.expectations[statistic.index][0]} of the summary suite, per shard"},
            }
            for statistic in self.statistics
        ]
        expectations.append(
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": UNMEASURED, "min_value": 0, "max_value": 0},
                "meta": {
                    "why": "a statistic that is NaN or infinite passes no bound: the per-shard suite judges it"
                },
            }
        )
        return {"name": self.name, "expectations": expectations}

    def row(self, table: pd.DataFrame, parameters: Mapping[str, float]) -> dict[str, float]:
        """One shard's statistics, the bounds of this run (``parameters`` resolve the suite's own)."""
        values: dict[str, float] = {}
        measured: dict[int, list[float]] = {}
        for index, (kind, kwargs) in enumerate(self.expectations):
            resolved = _resolve(kwargs, parameters)
            if kind in MAPS:
                measured[index] = [MAPS[kind](table, resolved)]
            elif kind == COLUMN_SET:
                wanted, present = set(resolved["column_set"]), set(table.columns)
                exact = resolved.get("exact_match", True)
                measured[index] = [
                    1.0 if (present == wanted if exact is not False else wanted <= present) else 0.0
                ]
            else:
                measured[index] = AGGREGATES[kind](table, resolved)
        for statistic in self.statistics:
            values[statistic.column] = measured[statistic.index][statistic.part]
        values[UNMEASURED] = float(sum(not math.isfinite(value) for value in values.values()))
        return values

    def bounds(self, parameters: Mapping[str, float]) -> dict[str, Bound]:
        """The ``$PARAMETER`` values of :meth:`suite` for a run whose summary-suite parameters are ``parameters``."""
        bounds: dict[str, Bound] = {}
        for statistic in self.statistics:
            kind, kwargs = self.expectations[statistic.index]
            resolved = _resolve(kwargs, parameters)
            low: Bound
            high: Bound = None
            if kind in MAPS:
                low = _mostly_bound(resolved)
            elif kind == COLUMN_SET:
                low = 1.0
            else:
                low, high = _aggregate_bounds(kind, resolved, statistic.part)
            bounds[f"{statistic.column}_min"], bounds[f"{statistic.column}_max"] = low, high
        return bounds
