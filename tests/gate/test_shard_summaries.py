"""The summary suite's per-shard form (astrospect/gate/shard_summaries.py) passes a shard only where the suite itself,
run on that shard's rows by Great Expectations, passes it; and it passes the usual good shard, so the suite's
per-shard run is the exception. Checked on a good shard and on tables that break or graze each expectation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from astrospect.data.summaries import summarize_shard
from astrospect.gate.flux_reference import FluxReference
from astrospect.gate.shard_summaries import ShardSummaries
from astrospect.gate.suites import SUMMARY_SUITE, Gate, load_suite_json
from astrospect.settings import load_settings
from harness.corpus import write_fake_shard

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate(load_settings().expectations_dir)


@pytest.fixture(scope="module")
def parameters() -> dict[str, float]:
    shipped = json.loads((load_settings().expectations_dir / "flux_reference.json").read_text())
    tolerance = shipped["tolerance"]
    reference = FluxReference(
        shipped["quantiles"], tolerance["median_mag"], tolerance["range_margin_mag"], "shipped"
    )
    return reference.parameters()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    path = write_fake_shard(tmp_path_factory.mktemp("good") / "good.h5", 300, seed=3, objid_start=1)
    return summarize_shard(path).assign(objid_accepted_in=pd.Series([None] * 300, dtype=object))


def _set(column: str, values: Callable[[pd.DataFrame], object]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(table: pd.DataFrame) -> pd.DataFrame:
        table = table.copy()
        table[column] = values(table)
        return table

    return change


def _on_bound(column: str, quantity: str, bound: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Shift ``column`` so that its ``quantity`` (median, stdev) lands exactly on ``bound``."""

    def change(table: pd.DataFrame) -> pd.DataFrame:
        table = table.copy()
        if quantity == "median":
            table[column] = table[column] - table[column].median() + bound
        else:
            values = table[column]
            table[column] = (values - values.mean()) * (bound / values.std()) + values.mean()
        return table

    return change


CHANGES: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "good": lambda table: table,
    "duplicate objid": _set("objid", lambda t: np.r_[t["objid"].to_numpy()[:-1], t["objid"].iloc[0]]),
    "objid accepted elsewhere": _set(
        "objid_accepted_in", lambda t: pd.Series(["other.h5"] + [None] * (len(t) - 1), dtype=object)
    ),
    "constant redshift": _set("redshift", lambda t: np.full(len(t), 0.1)),
    "rounded redshift": _set("redshift", lambda t: t["redshift"].round(2)),
    "redshift stdev on its lower bound": _on_bound("redshift", "stdev", 0.01),
    "redshift stdev just above its lower bound": _on_bound("redshift", "stdev", 0.0100001),
    "high-z sample": _set("redshift", lambda t: t["redshift"] + 0.5),
    "NaN redshifts": _set("redshift", lambda t: np.where(np.arange(len(t)) % 3 == 0, np.nan, t["redshift"])),
    "every redshift NaN": _set("redshift", lambda t: np.full(len(t), np.nan)),
    "infinite magnitude": _set("mag_r", lambda t: np.r_[np.inf, t["mag_r"].to_numpy()[1:]]),
    "g median 2 mag faint": _set("mag_g", lambda t: t["mag_g"] + 2.0),
    "sky not subtracted in i (40% of cutouts)": _set(
        "sky_i", lambda t: np.where(np.arange(len(t)) % 5 < 2, 5.0, t["sky_i"])
    ),
    "sky off in exactly 10% of cutouts": _set(
        "sky_u", lambda t: np.where(np.arange(len(t)) % 10 == 0, 5.0, 0.0)
    ),
    "sky off in just over 10% of cutouts": _set(
        "sky_u", lambda t: np.where(np.arange(len(t)) < len(t) // 10 + 1, 5.0, 0.0)
    ),
    "an extra column": _set("extra", lambda t: 1.0),
    "one cutout": lambda table: table.head(1),
    "two cutouts": lambda table: table.head(2),
    "no cutouts": lambda table: table.head(0),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_the_per_shard_form_passes_only_what_the_suite_passes(
    change: str, good: pd.DataFrame, gate: Gate, parameters: dict[str, float]
) -> None:
    table = CHANGES[change](good)
    suite = gate.run(SUMMARY_SUITE, table, change, parameters).success
    passed = gate.passing_summaries({change: gate.summaries.row(table, parameters)}, parameters)
    if passed:
        assert suite, f"{change}: the per-shard form passed what the suite fails"
    if change in ("good", "redshift stdev just above its lower bound"):
        assert suite and passed, f"{change}: the suite {suite}, the per-shard form {bool(passed)}"
    if change == "sky off in exactly 10% of cutouts":  # on the bound: left to the suite, which passes it
        assert suite and not passed


def test_one_run_judges_many_shards_each_on_its_own(
    good: pd.DataFrame, gate: Gate, parameters: dict[str, float]
) -> None:
    rows = {name: gate.summaries.row(change(good), parameters) for name, change in CHANGES.items()}
    passed = gate.passing_summaries(rows, parameters)
    for name in CHANGES:
        alone = gate.passing_summaries({name: rows[name]}, parameters)
        assert (name in passed) == bool(alone), name


def test_an_expectation_without_a_per_shard_statistic_is_refused(tmp_path: Path) -> None:
    spec = load_suite_json(load_settings().expectations_dir / f"{SUMMARY_SUITE}.json")
    spec["expectations"].append(
        {"type": "expect_column_kl_divergence_to_be_less_than", "kwargs": {"column": "mag_r"}}
    )
    with pytest.raises(
        ValueError, match="expect_column_kl_divergence_to_be_less_than has no per-shard statistic"
    ):
        ShardSummaries(spec, "derived")
