"""``synth-check``: measure a simulated catalogue FROM ITS CUTOUTS and compare it with real SDSS figures.

Colours are luptitude differences in the colour aperture and r is the luptitude in the total aperture
(:mod:`astrospect.photometry`, the same measurement the colour baseline uses), never the truth table. The
result is one tidy table, one row per comparison: per redshift bin the median u-g, g-r, r-i, i-z and r
(plus p16/p84, shown but not judged), and for the whole sample the redshift p5/p50/p95 and r p50.

Pass criteria (issue 3): every median colour within 0.1 mag in every bin holding more than 500 real
galaxies; redshift p5/p50/p95 within 0.02; r p50 within 0.3 mag.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from astrospect.data.shards import inspect_shard, iter_shard, resolve_shards
from astrospect.photometry import colour_features
from astrospect.simulate.targets import COLOURS, PERCENTILES, load_targets

COLOUR_TOLERANCE_MAG = 0.1
MIN_REAL_GALAXIES = 500  # bins with fewer real galaxies are shown but not judged
REDSHIFT_TOLERANCE = 0.02
R_MEDIAN_TOLERANCE_MAG = 0.3
JUDGED_REDSHIFT_QUANTILES = ("p5", "p50", "p95")
QUANTITIES = (*COLOURS, "r")


def measure_catalogue(folder: Path | str) -> pd.DataFrame:
    """Per galaxy: spec-z and u-g, g-r, r-i, i-z, r measured from the cutouts (streamed shard by shard)."""
    rows: list[pd.DataFrame] = []
    for shard in resolve_shards(folder):
        for chunk in iter_shard(shard):
            assert chunk.redshift is not None  # iter_shard requires labels by default
            features = colour_features(chunk.images)
            frame = pd.DataFrame(features, columns=list(QUANTITIES))
            frame.insert(0, "redshift", chunk.redshift.astype(np.float64))
            frame.insert(0, "objid", chunk.objid)
            rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def _percentile(values: npt.NDArray[np.float64], percentile: str) -> float:
    return float(np.percentile(values, float(percentile[1:]))) if len(values) else float("nan")


def compare(catalogue: pd.DataFrame) -> pd.DataFrame:
    """The tidy comparison table: scope, quantity, statistic, simulated, real, offset, tolerance, judged, passed."""
    targets = load_targets()
    rows: list[dict[str, object]] = []
    for _, real in targets.bins.iterrows():
        in_bin = catalogue[(catalogue["redshift"] >= real["z_lo"]) & (catalogue["redshift"] < real["z_hi"])]
        scope = f"{real['z_lo']:.2f}-{real['z_hi']:.2f}"
        for quantity in QUANTITIES:
            for percentile in PERCENTILES:
                judged = percentile == "p50" and quantity in COLOURS and real["n"] > MIN_REAL_GALAXIES
                rows.append(
                    _row(
                        scope, quantity, percentile, in_bin[quantity].to_numpy(), float(real[f"{quantity}_{percentile}"]),
                        COLOUR_TOLERANCE_MAG if judged else None, n_sim=len(in_bin), n_real=int(real["n"]),
                    )
                )  # fmt: skip
    redshift = catalogue["redshift"].to_numpy()
    for level, value in targets.redshift_quantiles.items():
        tolerance = REDSHIFT_TOLERANCE if level in JUDGED_REDSHIFT_QUANTILES else None
        rows.append(_row("all", "redshift", level, redshift, value, tolerance, len(catalogue), -1))
    r_mag = catalogue["r"].to_numpy()
    for level, value in targets.r_quantiles.items():
        tolerance = R_MEDIAN_TOLERANCE_MAG if level == "p50" else None
        rows.append(_row("all", "r", level, r_mag, value, tolerance, len(catalogue), -1))
    return pd.DataFrame(rows)


def _row(
    scope: str,
    quantity: str,
    statistic: str,
    values: npt.NDArray[np.float64],
    real: float,
    tolerance: float | None,
    n_sim: int,
    n_real: int,
) -> dict[str, object]:
    simulated = _percentile(values, statistic)
    offset = simulated - real
    judged = tolerance is not None
    return {
        "scope": scope,
        "quantity": quantity,
        "statistic": statistic,
        "simulated": simulated,
        "real": real,
        "offset": offset,
        "tolerance": tolerance if judged else np.nan,
        "judged": judged,
        "passed": bool(abs(offset) <= tolerance)
        if tolerance is not None and np.isfinite(offset)
        else not judged,
        "n_sim": n_sim,
        "n_real": n_real,
    }


def synth_check(folder: Path | str) -> pd.DataFrame:
    """Measure the shards in ``folder`` and compare with the SDSS targets: the tidy table of :func:`compare`.

    ``table.attrs["lrg_fraction"]`` is the largest LRG fraction the shards were simulated with: the
    targets describe the main sample, so the check is meant for catalogues without the LRG tail.
    """
    table = compare(measure_catalogue(folder))
    fractions = [float(inspect_shard(path).attrs.get("lrg_fraction", 0.0)) for path in resolve_shards(folder)]  # type: ignore[arg-type]
    table.attrs["lrg_fraction"] = max(fractions)
    return table


def passed(table: pd.DataFrame) -> bool:
    return bool(table.loc[table["judged"], "passed"].all())


def render_report(table: pd.DataFrame) -> str:
    """Human-readable: per-bin median offsets (sim - real), whole-sample quantiles, then PASS/FAIL."""
    medians = table[(table["scope"] != "all") & (table["statistic"] == "p50")]
    lines = [
        "median offsets, simulated minus real SDSS (mag); * judged (real n > 500), ! judged and outside 0.1 mag",
        f"{'z bin':>10} {'n_sim':>7} {'n_real':>7} " + " ".join(f"{q:>9}" for q in QUANTITIES),
    ]
    for scope, rows in medians.groupby("scope", sort=False):
        cells = []
        for _, cell in rows.set_index("quantity").loc[list(QUANTITIES)].iterrows():
            mark = ("*" if cell["passed"] else "!") if cell["judged"] else " "
            cells.append(f"{cell['offset']:+8.3f}{mark}")
        first = rows.iloc[0]
        lines.append(f"{scope:>10} {first['n_sim']:>7d} {first['n_real']:>7d} " + " ".join(cells))
    lines += ["", "whole sample            simulated     real   offset  tolerance  result"]
    for _, row in table[table["scope"] == "all"].iterrows():
        verdict = ("PASS" if row["passed"] else "FAIL") if row["judged"] else ""
        tolerance = f"{row['tolerance']:.2f}" if row["judged"] else ""
        label = f"{row['quantity']} {row['statistic']}"
        lines.append(
            f"  {label:<20} {row['simulated']:>10.3f} {row['real']:>8.3f} {row['offset']:>+8.3f} {tolerance:>10}  {verdict}"
        )
    judged = table[table["judged"]]
    verdict = "PASS" if passed(table) else "FAIL"
    lines += ["", f"{int(judged['passed'].sum())}/{len(judged)} judged checks pass: {verdict}"]
    if table.attrs.get("lrg_fraction", 0.0) > 0:
        lines.append(
            f"note: simulated with an LRG tail (fraction {table.attrs['lrg_fraction']:.3f}); the real figures are"
            " for the main sample, so judge a catalogue made with --lrg-fraction 0"
        )
    return "\n".join(lines)
