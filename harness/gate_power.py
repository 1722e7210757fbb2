"""The data gate's power against zero-point errors, and its false quarantines (``make gate-power``).

Shards of clean simulated galaxies (``make run``'s settings, a seed used neither for the colour reference's
fit nor for its scatter: ``harness/colour_reference.py``), rendered once and kept under ``--out``. Each
condition is those shards observed with a zero-point error of ``--offsets`` mag in one band: the pixels go
through :meth:`ObservingConditions.calibrate`, the very step ``astrospect synth --calibration-offset``
applies after rendering, so each shifted shard is the clean one with a wrong zero point, and nothing is
rendered twice. Every shard is summarised as the gate's reader summarises it and judged by the real
``shard_statistics`` suite, all of a condition's shards in one batch as ``astrospect validate`` runs it;
the clean shards also by ``cutout_summaries`` against the shipped flux reference (the other content suite).

Printed per condition: quarantined / N with its Wilson 95% interval, how often the report names the right
band, and the mean estimated offset against its spread and the mean reported uncertainty. Then the same for
``make run``'s night (``astrospect synth --n 12000 --seed 1 --lrg-fraction 0.05``, shards of 1,000), which
must have none quarantined, for two clean nights of other conditions (seeing 1.70", a deeper r < 18.3), and
for many disjoint shards of ``--small-size`` cut from all these clean galaxies (the colour check only): its
false-quarantine rate with an interval narrow enough to say whether it is below 1%.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import typer

from astrospect import results as results_files
from astrospect.data.shards import Cutouts, read_shard
from astrospect.data.summaries import summarize_cutouts, summary_table
from astrospect.gate.colour_calibration import ColourReference, colour_reference
from astrospect.gate.flux_reference import flux_reference
from astrospect.gate.ledger import Ledger
from astrospect.gate.quarantine import colour_calibration_failed, failed_expectations
from astrospect.gate.suites import STATISTICS_SUITE, SUMMARY_SUITE, Gate
from astrospect.gate.validate import ColourRedshift, colour_redshift, statistics_row
from astrospect.settings import BANDS, PROJECT_ROOT, get_logger, load_settings
from astrospect.simulate.conditions import ObservingConditions
from harness.drift_study import calibrated, render, wilson

log = get_logger("harness.gate_power")

EVALUATION_SEED = 3000  # the colour reference used 100 (fit) and 2000 (scatter)
MAKE_RUN = {"n": 12000, "seed": 1, "shard_size": 1000}
# Clean nights the reference never saw: worse seeing, a deeper limit (the drift study's conditions).
OTHER_NIGHTS = (
    ("seeing-1.70", 4000, ObservingConditions(seeing_fwhm_arcsec=1.70)),
    ("deeper-18.3", 5000, ObservingConditions(r_limit_mag=18.3)),
)
OTHER_NIGHT_N = 2500


@dataclass
class Outcome:
    condition: str
    band: str | None = None  # the band given the offset, None when clean
    offset: float = 0.0
    shards: int = 0
    quarantined: int = 0
    by_colours: int = 0  # quarantined shards whose colour-calibration expectations failed
    named_right: int = 0  # quarantined shards whose report names the offset band
    estimates: list[float] = field(default_factory=list)  # the offset of the right band, when named
    errors: list[float] = field(default_factory=list)  # its reported uncertainty

    def row(self) -> dict[str, object]:
        low, high = wilson(self.quarantined, self.shards)
        estimate = (
            f"{np.mean(self.estimates):+.3f} (sd {np.std(self.estimates, ddof=1):.3f}, "
            f"reported +- {np.mean(self.errors):.3f})"
            if len(self.estimates) > 1
            else "-"
        )
        return {
            "condition": self.condition,
            "quarantined": f"{self.quarantined}/{self.shards}",
            "95% interval": f"{low:.3f}-{high:.3f}",
            "by the colour check": f"{self.by_colours}/{self.shards}",
            "band named": f"{self.named_right}/{self.quarantined}" if self.band else "-",
            "estimated offset": estimate,
        }


class Judge:
    """The gate's content suites, as ``astrospect validate`` runs them, on in-memory cutouts."""

    def __init__(self) -> None:
        settings = load_settings()
        self.gate = Gate(settings.expectations_dir)
        self.colours: ColourRedshift = colour_redshift(settings)
        self.calibration: ColourReference = colour_reference(settings.expectations_dir)
        with tempfile.TemporaryDirectory() as empty, Ledger(Path(empty) / "ledger.sqlite") as ledger:
            self.flux = flux_reference(settings, ledger)  # no accepted data: the shipped SDSS reference

    def table(self, cutouts: Cutouts) -> pd.DataFrame:
        return summary_table(summarize_cutouts([cutouts]))

    def statistics_failing(self, tables: dict[str, pd.DataFrame]) -> tuple[set[str], set[str]]:
        """The shards failing ``shard_statistics`` (the label and colour-calibration checks), judged in one
        batch; and those of them whose colour expectations failed (each failing shard's own GE result)."""
        rows = {
            name: statistics_row(name, table, self.colours, self.calibration)
            for name, table in tables.items()
        }
        failing = self.gate.failing_shards(STATISTICS_SUITE, pd.DataFrame(list(rows.values())))
        by_colours = {
            name
            for name in failing
            if colour_calibration_failed(
                failed_expectations(self.gate.run(STATISTICS_SUITE, pd.DataFrame([rows[name]]), name))
            )
        }
        return failing, by_colours

    def summary_passes(self, name: str, table: pd.DataFrame) -> bool:
        table = table.assign(objid_accepted_in=pd.Series([None] * len(table), dtype=object))
        return bool(self.gate.run(SUMMARY_SUITE, table, name, self.flux.parameters()).success)


def judge(judge: Judge, outcome: Outcome, shards: dict[str, Cutouts], with_summary: bool) -> None:
    tables = {name: judge.table(cutouts) for name, cutouts in shards.items()}
    failing, by_colours = judge.statistics_failing(tables)
    outcome.by_colours += len(by_colours)
    if with_summary:
        failing |= {name for name, table in tables.items() if not judge.summary_passes(name, table)}
    outcome.shards += len(tables)
    outcome.quarantined += len(failing)
    if outcome.band is None:
        return
    for name in failing:
        estimate = judge.calibration.check(tables[name]).estimate
        if estimate is not None and estimate.band == outcome.band:
            outcome.named_right += 1
            outcome.estimates.append(estimate.offset_mag)
            outcome.errors.append(estimate.uncertainty_mag)


def split(cutouts: list[Cutouts], size: int) -> dict[str, Cutouts]:
    """Disjoint shards of ``size`` cut from clean shards, for many independent false-quarantine trials."""
    out = {}
    for index, source in enumerate(cutouts):
        for start in range(0, len(source) - size + 1, size):
            part = slice(start, start + size)
            assert source.redshift is not None and source.redshift_err is not None
            out[f"part-{index}-{start}"] = replace(
                source,
                images=source.images[part],
                objid=source.objid[part],
                redshift=source.redshift[part],
                redshift_err=source.redshift_err[part],
            )
    return out


def with_offset(cutouts: Cutouts, band: str, offset: float) -> Cutouts:
    night = ObservingConditions.with_offsets({band: offset})
    return replace(cutouts, images=calibrated(cutouts.images, night))


def study(
    out: Path, shards: int, shard_size: int, offsets: list[float], small_size: int, workers: int
) -> list[Outcome]:
    started = time.perf_counter()
    paths = render(
        out / "evaluation", shards * shard_size, EVALUATION_SEED, ObservingConditions(), workers, shard_size
    )[:shards]
    clean = {path.stem: read_shard(path) for path in paths}
    gate = Judge()
    outcomes = [Outcome(f"clean, {len(clean)} shards of {shard_size}")]
    judge(gate, outcomes[0], clean, with_summary=True)
    for offset in offsets:
        for band in BANDS:
            outcome = Outcome(f"{offset:+.2f} mag in {band}", band, offset)
            shifted = {name: with_offset(cutouts, band, offset) for name, cutouts in clean.items()}
            judge(gate, outcome, shifted, with_summary=False)
            outcomes.append(outcome)
        log.info("offset %+.2f judged (%.0f s)", offset, time.perf_counter() - started)
    run_paths = render(
        out / "make-run",
        MAKE_RUN["n"],
        MAKE_RUN["seed"],
        ObservingConditions(),
        workers,
        MAKE_RUN["shard_size"],
    )
    run_night = {path.stem: read_shard(path) for path in run_paths}
    make_run = Outcome(f"make run night: {len(run_paths)} shards of {MAKE_RUN['shard_size']}")
    judge(gate, make_run, run_night, with_summary=True)
    outcomes.append(make_run)
    for name, seed, night in OTHER_NIGHTS:
        paths = render(out / name, OTHER_NIGHT_N, seed, night, workers, shard_size)
        other = Outcome(f"clean {name}: {len(paths)} shards of {shard_size}")
        judge(gate, other, {path.stem: read_shard(path) for path in paths}, with_summary=True)
        outcomes.append(other)
    # Many small disjoint shards from every clean galaxy the reference never saw: the colour check's own
    # false-quarantine rate with a usable interval (a shard of 50 is its noisiest regime).
    small = split([*clean.values(), *run_night.values()], small_size)
    trials = Outcome(f"clean, {len(small)} shards of {small_size} (shard_statistics only)")
    judge(gate, trials, small, with_summary=False)
    outcomes.append(trials)
    log.info("done in %.0f s", time.perf_counter() - started)
    return outcomes


def main(
    out: Path = typer.Option(
        PROJECT_ROOT / "data" / "gate-study", help="Where the simulated shards are kept."
    ),
    shards: int = typer.Option(40, help="Clean shards per condition."),
    shard_size: int = typer.Option(250, help="Galaxies per shard."),
    offsets: list[float] = typer.Option([0.05, 0.1, 0.2], help="Zero-point offsets (mag), each band alone."),
    small_size: int = typer.Option(50, help="Galaxies per shard of the many-shard false-quarantine trial."),
    workers: int = typer.Option(1, help="Simulator worker processes."),
) -> None:
    load_before = results_files.load_average()
    outcomes = study(out, shards, shard_size, offsets, small_size, workers)
    table = pd.DataFrame([outcome.row() for outcome in outcomes])
    print(f"\ngate quarantines over {shards} shards of {shard_size} per condition (Wilson 95% intervals)")
    with pd.option_context("display.width", 250, "display.max_colwidth", 80):
        print(table.to_string(index=False))
    results = out / "gate-power.json"
    results.write_text(json.dumps([outcome.row() for outcome in outcomes], indent=2))
    print(f"\nper-condition rows in {results}")
    print(f"results: {record_results(outcomes, shards, shard_size, load_before)}")


def record_results(outcomes: list[Outcome], shards: int, shard_size: int, load_before: float) -> Path:
    """docs/results/gate-power.json: every condition's row, and the false-quarantine figures the docs quote."""
    rows = [outcome.row() for outcome in outcomes]
    make_run = next(outcome for outcome in outcomes if outcome.condition.startswith("make run night"))
    trials = outcomes[-1]  # the many small clean shards (study's last outcome)
    low, high = wilson(trials.by_colours, trials.shards)
    return results_files.record(
        "gate-power",
        title=f"The gate against zero-point errors ({shards} shards of {shard_size} per condition)",
        figures={
            "false_quarantines_make_run_night": f"{make_run.quarantined} / {make_run.shards}",
            "colour_check_false_quarantines_small_shards": f"{trials.by_colours} / {trials.shards}",
            "colour_check_false_quarantine_interval": f"{low:.3f}-{high:.3f}",
        },
        tables={
            "conditions": results_files.table(
                list(rows[0]), [[str(value) for value in row.values()] for row in rows]
            )
        },
        load_before=load_before,
    )


if __name__ == "__main__":
    typer.run(main)
