"""Derive ``expectations/colour_reference.json``: the colour-calibration model and its tolerances
(``make colour-reference``; see ``astrospect/gate/colour_calibration.py`` and ``expectations/README.md``).

Two independent sets of clean simulated galaxies (``make run``'s settings: 5% LRG tail, the calibrated SDSS
night), rendered once and kept under ``--out``:

* the **fit** set (seed 100, 8,000 galaxies): per colour, a least-squares fit of the colour on
  :func:`~astrospect.gate.colour_calibration.design` (the redshift and the three other colours), three rounds
  clipping residuals beyond 4 robust sigma (blends, cosmic rays); its support is the redshift range up to the
  99.5th percentile and each colour's 0.5-99.5% range;
* the **scatter** set (seed 2000, 10,000 galaxies in 40 shards of 250): the covariance of the shards' four
  median residuals times their size is ``galaxy_covariance`` (so a shard of N has ``C / N``), and the galaxy
  mix floor is the largest |median residual| of its red or blue thirds (by the simulator's true colour
  score, LRGs counted red) or halves (by observed g-i about its median at the galaxy's redshift), plus the
  reference's own standard error ``sqrt(C / fit galaxies)``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd
import typer

from astrospect.data.summaries import summarize_shard
from astrospect.gate.colour_calibration import (
    COLOUR_REFERENCE_FILE,
    COLOURS,
    ColourReference,
    colours_of,
    design,
)
from astrospect.settings import PROJECT_ROOT, get_logger
from astrospect.simulate.conditions import ObservingConditions
from harness.drift_study import render

log = get_logger("harness.colour_reference")

FIT_SEED, FIT_N = 100, 8000
SCATTER_SEED, SCATTER_N, SCATTER_SHARD = 2000, 10000, 250
CLIP_SIGMA = 4.0
SUPPORT_PERCENTILES = (0.5, 99.5)


def summaries_with_truth(paths: list[Path]) -> list[pd.DataFrame]:
    """Each shard's summary table (as the gate computes it) with the simulator's ``truth_colour_score`` and
    ``truth_is_lrg``: what a galaxy *is*, so a red or blue selection does not select on measurement noise."""
    tables = []
    for path in paths:
        table = summarize_shard(path)
        with h5py.File(path, "r") as handle:  # a simulated shard of our own: not the gate's untrusted input
            truth = handle.get("truth")
            if truth is None or "colour_score" not in truth or "is_lrg" not in truth:
                raise ValueError(f"{path}: field 'truth': a simulated shard with its truth group is needed")
            table["truth_colour_score"] = np.asarray(truth["colour_score"][()], dtype=np.float64)
            table["truth_is_lrg"] = np.asarray(truth["is_lrg"][()], dtype=bool)
        tables.append(table)
    return tables


def fit_colour(
    redshift: npt.NDArray[np.float64], colours: npt.NDArray[np.float64], k: int
) -> npt.NDArray[np.float64]:
    """Coefficients of colour ``k`` on design(z, the other colours), refitted after clipping outliers."""
    features, target = design(redshift, np.delete(colours, k, axis=1)), colours[:, k]
    keep = np.ones(len(target), dtype=bool)
    for _ in range(3):
        coefficients, *_ = np.linalg.lstsq(features[keep], target[keep], rcond=None)
        residual = target - features @ coefficients
        spread = 1.4826 * np.median(np.abs(residual[keep] - np.median(residual[keep])))
        keep = np.abs(residual) < CLIP_SIGMA * spread
    # The gate judges median residuals, and the residuals are skewed (emission lines, dust): centre them on 0.
    coefficients[0] += np.median(target - features @ coefficients)
    return np.asarray(coefficients, dtype=np.float64)


def fit_model(table: pd.DataFrame) -> dict[str, object]:
    redshift, colours = table["redshift"].to_numpy(dtype=np.float64), colours_of(table)
    finite = np.isfinite(colours).all(axis=1) & np.isfinite(redshift)
    redshift, colours = redshift[finite], colours[finite]
    low, high = SUPPORT_PERCENTILES
    ranges = np.percentile(colours, [low, high], axis=0)
    inside = (colours >= ranges[0]).all(axis=1) & (colours <= ranges[1]).all(axis=1)
    z_max = float(np.percentile(redshift, high))
    inside &= redshift <= z_max
    return {
        "coefficients": {
            colour: [round(float(v), 8) for v in fit_colour(redshift[inside], colours[inside], k)]
            for k, colour in enumerate(COLOURS)
        },
        "support": {
            "redshift": [0.0, round(z_max, 4)],
            "colours": {
                colour: [round(float(ranges[0, k]), 4), round(float(ranges[1, k]), 4)]
                for k, colour in enumerate(COLOURS)
            },
        },
        "fit_galaxies": int(inside.sum()),
    }


def residual_medians(reference: ColourReference, table: pd.DataFrame) -> npt.NDArray[np.float64]:
    redshift, colours = table["redshift"].to_numpy(dtype=np.float64), colours_of(table)
    keep = reference.usable(redshift, colours)
    return np.asarray(np.median(reference.residuals(redshift[keep], colours[keep]), axis=0))


def mix_selections(table: pd.DataFrame) -> dict[str, npt.NDArray[np.bool_]]:
    """Unusual galaxy mixes cut from clean data: red/blue thirds by true colour score (LRGs red), red/blue
    halves by observed g-i about its running median in redshift."""
    score = table["truth_colour_score"].to_numpy()
    lrg = table["truth_is_lrg"].to_numpy(dtype=bool)
    low, high = np.nanpercentile(score, [100 / 3, 200 / 3])
    colours = colours_of(table)
    g_i = colours[:, 1] + colours[:, 2]
    redshift = table["redshift"].to_numpy()
    edges = np.quantile(redshift, np.linspace(0, 1, 21)[1:-1])
    bins = np.digitize(redshift, edges)
    typical = np.array([np.nanmedian(g_i[bins == b]) for b in range(20)])[bins]
    return {
        "red third (true colour)": (score > high) | lrg,
        "blue third (true colour)": score < low,
        "red half (observed g-i)": g_i > typical,
        "blue half (observed g-i)": g_i < typical,
    }


def derive(out: Path, workers: int) -> dict[str, object]:
    started = time.perf_counter()
    night = ObservingConditions()
    fit_paths = render(out / "reference", FIT_N, FIT_SEED, night, workers)
    scatter_paths = render(out / "clean", SCATTER_N, SCATTER_SEED, night, workers, shard_size=SCATTER_SHARD)
    fit_table = pd.concat(summaries_with_truth(fit_paths), ignore_index=True)
    model = fit_model(fit_table)
    # A provisional reference (no scatter yet) to take residuals with.
    spec: dict[str, object] = {
        "colours": list(COLOURS),
        **model,
        "scatter": {"galaxy_covariance": np.eye(4).tolist(), "mix_floor": dict.fromkeys(COLOURS, 0.0)},
        "source": "provisional",
    }
    provisional = out / "provisional-colour-reference.json"
    provisional.write_text(json.dumps(spec))
    reference = ColourReference.load(provisional)
    scatter_tables = summaries_with_truth(scatter_paths)
    medians = np.array([residual_medians(reference, table) for table in scatter_tables])
    sizes = np.array(
        [reference.usable(table["redshift"].to_numpy(), colours_of(table)).sum() for table in scatter_tables]
    )
    covariance = np.cov(medians, rowvar=False) * float(np.mean(sizes))
    pooled = pd.concat(scatter_tables, ignore_index=True)
    mixes = {
        name: residual_medians(reference, pooled[selection])
        for name, selection in mix_selections(pooled).items()
    }
    # What a mix moves, plus the reference's own standard error (a night's galaxies differ from the fit set's
    # by about that much: measured night means of i-z reach 0.0012, the mix alone 0.0008).
    fit_error = np.sqrt(np.diag(covariance) / float(model["fit_galaxies"]))  # type: ignore[arg-type]
    floor = np.max(np.abs(np.array(list(mixes.values()))), axis=0) + fit_error
    clean_mean = medians.mean(axis=0)
    log.info("derived in %.0f s", time.perf_counter() - started)
    return {
        "description": (
            "Colour-calibration reference of the data gate (issue 21): each adjacent-band aperture colour "
            "(colour_mag_<band> of astrospect.data.summaries) predicted from the spectroscopic redshift and "
            "the three other colours; per colour, a shard's median residual beyond mix_floor, over the "
            "clean-shard scatter sqrt(galaxy_covariance / N), is judged in shard_statistics.json"
        ),
        "source": (
            f"clean simulated galaxies (astrospect.simulate, LRG fraction 0.05): fit on {FIT_N} (seed {FIT_SEED}), "
            f"scatter from {len(scatter_tables)} shards of {SCATTER_SHARD} (seed {SCATTER_SEED})"
        ),
        "derivation": (
            "make colour-reference (python -m harness.colour_reference): see its docstring. Terms of the "
            "model: astrospect.gate.colour_calibration.design(z, the other three colours in u-g, g-r, r-i, i-z "
            "order)"
        ),
        "colours": list(COLOURS),
        **model,
        "scatter": {
            "galaxy_covariance": [[round(float(v), 8) for v in row] for row in covariance],
            "mix_floor": {colour: round(float(floor[k]), 5) for k, colour in enumerate(COLOURS)},
            "clean_shards": len(scatter_tables),
            "clean_shard_galaxies": float(np.mean(sizes)),
            "clean_shard_median_residual_sd": {
                colour: round(float(np.std(medians[:, k], ddof=1)), 5) for k, colour in enumerate(COLOURS)
            },
            "clean_shard_median_residual_mean": {
                colour: round(float(clean_mean[k]), 5) for k, colour in enumerate(COLOURS)
            },
            "mix_median_residuals": {
                name: {colour: round(float(values[k]), 5) for k, colour in enumerate(COLOURS)}
                for name, values in mixes.items()
            },
        },
    }


def main(
    out: Path = typer.Option(PROJECT_ROOT / "data" / "gate-study", help="Where the simulated sets are kept."),
    workers: int = typer.Option(1, help="Simulator worker processes."),
    target: Path = typer.Option(
        PROJECT_ROOT / "expectations" / COLOUR_REFERENCE_FILE, help="The reference file to write."
    ),
) -> None:
    spec = derive(out, workers)
    target.write_text(json.dumps(spec, indent=2) + "\n")
    ColourReference.load(target)  # what the gate will read must load
    print(json.dumps(spec["scatter"], indent=2))
    print(f"wrote {target}")


if __name__ == "__main__":
    typer.run(main)
