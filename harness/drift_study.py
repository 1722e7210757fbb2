"""Drift detection power and false alarms over simulated nights (``make drift-study``).

A reference (the champion's training data: ``--reference-size`` galaxies, one seed) and ``--nights`` nights
per condition, each its own seed, all simulated with :func:`astrospect.simulate.synthesize`:

* ``same``: the reference's own settings. Every flag here is a false alarm (target: at most 5%).
* ``seeing +0.3"``: the median r-band PSF FWHM 1.40" -> 1.70".
* ``deeper r < 18.3``: the target limit 17.77 -> 18.3 (the completeness roll-off moves with it).
* ``calibration +0.05 mag in <band>``, one band at a time: the ``same`` nights' pixels through
  :meth:`ObservingConditions.calibrate`, the very function ``synthesize`` applies after rendering (so these
  nights cost no rendering, and each is the ``same`` night observed with a wrong zero point).

Target for the shifted nights: flagged at least 95% of the time. Each night is judged by
:func:`astrospect.drift.compare` exactly as the nightly step judges one, against the reference's cached
features, with the project's colour k-NN (fitted on the reference) as the model whose predicted N(z) is
watched. The Great Expectations gate is also run on the calibration nights, to say whether it catches them.

Why these sizes. N = 40 nights per condition: with no miss in 40 the Wilson 95% interval of the detection
rate starts at 0.91, and with no false alarm it ends at 0.09; the table prints the interval beside each
rate. Nights of 500 galaxies, a sixth of a `make run` night (3,000): a two-sample test's power only grows
with the night, so a rate measured on 500 bounds the 3,000-galaxy rate from below, while the false-alarm
rate is set by ``ASTROSPECT_DRIFT_ALPHA`` whatever the size. A galaxy depends only on (seed, index), so the
first 500 of a night rendered with more are that night of 500.

Rendered nights are kept under ``--out`` (default ``data/drift-study``), so a rerun only recomputes the
statistics. Rendering dominates: 20-50 ms per galaxy per process on the shared 2-core machine, ~65k
galaxies in all; two processes can split the nights (``--render-only --render-from``).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import typer

from astrospect import results as results_files
from astrospect.data.clipping import UNCLIPPED
from astrospect.data.dataset import select_splits
from astrospect.data.shards import concat_cutouts, read_shard, write_shard
from astrospect.data.summaries import magnitudes as summary_magnitudes
from astrospect.data.summaries import summarize_shard
from astrospect.drift import compare
from astrospect.drift.features import LABEL, PREDICTION, Predictor, image_features
from astrospect.drift.report import is_drifting
from astrospect.drift.statistics import FeatureDrift
from astrospect.gate.flux_reference import REFERENCE_FILE, FluxReference
from astrospect.gate.validate import SUMMARY_SUITE, Gate
from astrospect.models.baselines import fit_colour_baseline
from astrospect.settings import BANDS, PROJECT_ROOT, Settings, get_logger, load_settings
from astrospect.simulate.conditions import ObservingConditions
from astrospect.simulate.synth import synthesize

log = get_logger("harness.drift_study")

REFERENCE_SEED = 100
LRG_FRACTION = 0.05  # as `make run`
DONE = ".done"  # written after a night's shards are complete


@dataclass(frozen=True)
class Condition:
    name: str
    first_seed: int
    night: ObservingConditions
    rendered: bool = True  # False: derived from the `same` nights by calibrate()


SAME = Condition("same", 1000, ObservingConditions())
RENDERED = (
    SAME,
    Condition('seeing +0.3"', 2000, ObservingConditions(seeing_fwhm_arcsec=1.70)),
    Condition("deeper r < 18.3", 3000, ObservingConditions(r_limit_mag=18.3)),
)
CALIBRATED = tuple(
    Condition(
        f"calibration +0.05 mag in {band}",
        SAME.first_seed,
        ObservingConditions.with_offsets({band: 0.05}),
        False,
    )
    for band in BANDS
)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def render(
    folder: Path, n: int, seed: int, night: ObservingConditions, workers: int, shard_size: int = 1000
) -> list[Path]:
    """The shards of one simulated night (or the reference), rendered once and kept."""
    if (folder / DONE).is_file() and json.loads((folder / DONE).read_text())["n"] >= n:
        # A galaxy depends only on (seed, index): the first n of a larger night are the night of n.
        return sorted(folder.glob("*.h5"))
    if folder.exists():  # a run killed mid-night: the study's own scratch, regenerated from its seed
        shutil.rmtree(folder)
    paths = synthesize(
        folder, n, seed, shard_size=shard_size, lrg_fraction=LRG_FRACTION, workers=workers, night=night
    )
    (folder / DONE).write_text(json.dumps({"n": n, "seed": seed}))
    return paths


def render_all(out: Path, nights: range, night_size: int, reference_size: int, workers: int) -> None:
    started = time.perf_counter()
    render(out / "reference", reference_size, REFERENCE_SEED, ObservingConditions(), workers)
    for index in nights:
        for condition in RENDERED:
            render(
                out / _slug(condition.name) / f"night-{index:03d}",
                night_size,
                condition.first_seed + index,
                condition.night,
                workers,
            )
        log.info("rendered night %d of every condition (%.0f s)", index, time.perf_counter() - started)


def night_images(paths: list[Path]) -> tuple[np.ndarray, np.ndarray | None]:
    """A night's cutouts (channels-last) and labels."""
    cutouts = concat_cutouts([read_shard(path) for path in paths])
    return cutouts.images, cutouts.redshift


def night_table(images: np.ndarray, redshift: np.ndarray | None, predict: Predictor) -> pd.DataFrame:
    """The features the nightly step computes (``shard_features``), from pixels already in memory."""
    table = pd.DataFrame(image_features(images))
    if redshift is not None:
        table[LABEL] = redshift.astype(np.float64)
    table[PREDICTION] = np.asarray(predict(images), dtype=np.float64)
    return table


def calibrated(images: np.ndarray, night: ObservingConditions) -> np.ndarray:
    """Channels-last cutouts through the simulator's own zero-point step (which works band-first)."""
    return np.ascontiguousarray(
        night.calibrate(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).transpose(0, 2, 3, 1)
    )


@dataclass
class Outcome:
    condition: str
    nights: int = 0
    flagged: int = 0
    prediction_flagged: int = 0
    drifted_counts: dict[str, int] = field(default_factory=dict)
    gate_checked: int = 0
    gate_quarantined: int = 0

    def add(self, features: list[FeatureDrift], share_threshold: float) -> None:
        drifted = [item.feature for item in features if item.drifted]
        self.nights += 1
        self.flagged += is_drifting(features, share_threshold)
        self.prediction_flagged += any(item.drifted for item in features if item.kind == "prediction")
        for name in drifted:
            self.drifted_counts[name] = self.drifted_counts.get(name, 0) + 1

    def results_row(self) -> list[results_files.Scalar]:
        """This condition's row of docs/results/drift-study.json."""
        common = sorted(self.drifted_counts.items(), key=lambda item: -item[1])[:3]
        low, high = wilson(self.flagged, self.nights)
        return [
            self.condition,
            f"{self.flagged} / {self.nights}",
            f"{low:.2f}-{high:.2f}",
            self.prediction_flagged,
            ", ".join(f"{name} ({count})" for name, count in common) or "-",
            f"{self.gate_quarantined} / {self.gate_checked}" if self.gate_checked else "-",
        ]

    def row(self) -> dict[str, object]:
        common = sorted(self.drifted_counts.items(), key=lambda item: -item[1])[:4]
        low, high = wilson(self.flagged, self.nights)
        return {
            "condition": self.condition,
            "nights": self.nights,
            "flagged": self.flagged,
            "rate": self.flagged / self.nights if self.nights else float("nan"),
            "95% interval": f"{low:.3f}-{high:.3f}",
            "N(z) pred drifted": self.prediction_flagged,
            "features drifted most often": ", ".join(f"{name} ({count})" for name, count in common) or "-",
            "GE gate quarantined": f"{self.gate_quarantined}/{self.gate_checked}"
            if self.gate_checked
            else "-",
        }


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


class GateCheck:
    """The Great Expectations summary suite, its flux reference from the reference's own magnitudes, as
    ``validate`` builds it once the ledger holds enough accepted cutouts."""

    def __init__(self, reference_paths: list[Path], settings: Settings) -> None:
        magnitudes = np.concatenate([summary_magnitudes(summarize_shard(path)) for path in reference_paths])
        shipped = json.loads((settings.expectations_dir / REFERENCE_FILE).read_text())["tolerance"]
        p01, p50, p99 = np.percentile(magnitudes, [1, 50, 99], axis=0)
        quantiles = {
            band: {"p01": float(p01[b]), "p50": float(p50[b]), "p99": float(p99[b])}
            for b, band in enumerate(BANDS)
        }
        self.reference = FluxReference(
            quantiles, float(shipped["median_mag"]), float(shipped["range_margin_mag"]), "study reference"
        )
        self.gate = Gate(settings.expectations_dir)

    def passes(self, images: np.ndarray, like: Path, folder: Path) -> bool:
        """Write the cutouts as a shard beside ``like``'s labels and ids, summarise it, run the suite."""
        source = read_shard(like)
        path = folder / f"gate-{like.stem}.h5"
        path.unlink(missing_ok=True)
        assert source.redshift is not None and source.redshift_err is not None
        n = len(images)
        write_shard(
            path, images.transpose(0, 3, 1, 2), source.objid[:n], source.redshift[:n], source.redshift_err[:n]
        )
        table = summarize_shard(path)
        table["objid_accepted_in"] = pd.Series([None] * len(table), dtype=object)
        path.unlink()
        return bool(self.gate.run(SUMMARY_SUITE, table, path.name, self.reference.parameters()).success)


def analyse(out: Path, nights: int, night_size: int, gate_nights: int, settings: Settings) -> list[Outcome]:
    reference_paths = sorted((out / "reference").glob("*.h5"))
    started = time.perf_counter()
    model = fit_colour_baseline(select_splits(reference_paths, UNCLIPPED))
    images, redshift = night_images(reference_paths)
    reference = night_table(images, redshift, model.predict)
    del images
    log.info(
        "reference: %d cutouts, features and k-NN in %.0f s", len(reference), time.perf_counter() - started
    )
    gate = GateCheck(reference_paths, settings) if gate_nights else None
    outcomes = {condition.name: Outcome(condition.name) for condition in (*RENDERED, *CALIBRATED)}
    for index in range(nights):
        for condition in RENDERED:
            folder = out / _slug(condition.name) / f"night-{index:03d}"
            if not (folder / DONE).is_file():
                raise FileNotFoundError(
                    f"{folder}: not rendered (run with --render-only first, or fewer --nights)"
                )
            paths = sorted(folder.glob("*.h5"))
            images, redshift = night_images(paths)
            images, redshift = images[:night_size], None if redshift is None else redshift[:night_size]
            table = night_table(images, redshift, model.predict)
            outcomes[condition.name].add(
                compare(reference, table, settings.drift_alpha), settings.drift_share
            )
            if condition is not SAME:
                continue
            for shifted in CALIBRATED:
                shifted_images = calibrated(images, shifted.night)
                table = night_table(shifted_images, redshift, model.predict)
                outcome = outcomes[shifted.name]
                outcome.add(compare(reference, table, settings.drift_alpha), settings.drift_share)
                if gate is not None and index < gate_nights:
                    outcome.gate_checked += 1
                    outcome.gate_quarantined += not gate.passes(shifted_images, paths[0], out)
        log.info(
            "judged night %d/%d of every condition (%.0f s)", index + 1, nights, time.perf_counter() - started
        )
    return list(outcomes.values())


def main(
    out: Path = typer.Option(
        PROJECT_ROOT / "data" / "drift-study", help="Where the simulated nights are kept."
    ),
    nights: int = typer.Option(40, help="Nights per condition."),
    night_size: int = typer.Option(500, help="Galaxies per night."),
    reference_size: int = typer.Option(
        12000, help="Galaxies in the reference (the champion's training data)."
    ),
    workers: int = typer.Option(1, help="Simulator worker processes."),
    render_only: bool = typer.Option(False, help="Only simulate the nights."),
    render_from: int = typer.Option(0, help="First night to simulate (two processes can split the nights)."),
    gate_nights: int = typer.Option(5, help="Calibration nights also run through the GE gate, per band."),
) -> None:
    render_all(out, range(render_from, nights), night_size, reference_size, workers)
    if render_only:
        return
    load_before = results_files.load_average()
    settings = load_settings()
    outcomes = analyse(out, nights, night_size, gate_nights, settings)
    table = pd.DataFrame([outcome.row() for outcome in outcomes])
    print(
        f"\ndrift detection over {nights} nights of {night_size} galaxies per condition, against a reference of "
        f"{reference_size} (ASTROSPECT_DRIFT_ALPHA={settings.drift_alpha}, ASTROSPECT_DRIFT_SHARE="
        f"{settings.drift_share}; targets: same <= 5%, shifted >= 95%)"
    )
    with pd.option_context("display.width", 250, "display.max_colwidth", 80):
        print(table.to_string(index=False))
    results = out / "results.json"
    results.write_text(json.dumps([outcome.row() | asdict(outcome) for outcome in outcomes], indent=2))
    print(f"\nper-condition counts in {results}")
    written = results_files.record(
        "drift-study",
        title="Drift detection power and false alarms",
        figures={
            "reference_galaxies": reference_size,
            "nights_per_condition": nights,
            "night_galaxies": night_size,
            "alpha": settings.drift_alpha,
            "share": settings.drift_share,
        },
        tables={
            "nights": results_files.table(
                [
                    "night",
                    "flagged",
                    "95% interval",
                    "watched N(z) drifted",
                    "drifted most often",
                    "GE gate quarantined",
                ],
                [outcome.results_row() for outcome in outcomes],
            )
        },
        load_before=load_before,
    )
    print(f"results: {written}")


if __name__ == "__main__":
    typer.run(main)
