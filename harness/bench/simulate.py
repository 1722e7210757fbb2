"""Simulator speed: rendering CPU time per galaxy beside GalSim's defaults, then galaxies/s on 1 and 2 workers.

The baseline renders the same galaxies the plain way: GalSim's default GSParams and OpenMP threads left at
their default (one per core). The shipped settings switch OpenMP off (we parallelise by process) and loosen
the accuracy parameters to sub-percent flux errors. Both are timed in this process, best of ``repeats``.
Wall-clock galaxies/s depend on what else the machine runs, so the load average is printed beside them.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import galsim
import numpy as np
import typer

from astrospect import results
from astrospect.simulate import render
from astrospect.simulate.population import draw_neighbours, draw_population, population_model
from astrospect.simulate.synth import synthesize


def _cpu_ms_per_galaxy(action: Callable[[], object], n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        action()
        best = min(best, time.process_time() - started)
    return 1000.0 * best / n


def _render_with_galsim_defaults(*args: object) -> object:
    shipped = render.GSPARAMS
    render.GSPARAMS = galsim.GSParams()
    try:
        return render._render(*args)  # type: ignore[arg-type]
    finally:
        render.GSPARAMS = shipped


def main(
    n_render: int = typer.Option(200, help="Galaxies for the CPU-time comparison."),
    n_synth: int = typer.Option(2000, help="Galaxies for each end-to-end synthesize() run."),
    repeats: int = typer.Option(2, help="Timings per configuration (best kept)."),
) -> None:
    first_load = results.load_average()
    model = population_model()
    rng = np.random.default_rng(0)
    galaxies = draw_population(model, rng, n_render)
    neighbours = draw_neighbours(model, rng, n_render)
    camera = render.sdss_camera()
    conditions = render.draw_conditions(rng, n_render, camera)
    shipped = _cpu_ms_per_galaxy(
        lambda: render.render_stamps(galaxies, neighbours, conditions, camera), n_render, repeats
    )
    galsim.set_omp_threads(os.cpu_count() or 1)
    plain = _cpu_ms_per_galaxy(
        lambda: _render_with_galsim_defaults(galaxies, neighbours, conditions, camera), n_render, repeats
    )
    typer.echo(
        f"render CPU time per galaxy (5 bands): shipped {shipped:.2f} ms, GalSim defaults {plain:.2f} ms"
    )
    typer.echo(f"  speed-up over the baseline: x{plain / shipped:.2f}")
    rates = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory(prefix="astrospect-bench-synth-") as folder:
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            synthesize(Path(folder), n_synth, seed=7, shard_size=1000, workers=workers)
            rates[workers] = n_synth / (time.perf_counter() - started)
        typer.echo(
            f"synthesize {n_synth} galaxies, {workers} worker(s): {rates[workers]:.0f} galaxies/s (load average before: {load_before:.1f})"
        )
    typer.echo(f"  2 workers / 1 worker: x{rates[2] / rates[1]:.2f}")
    written = results.record(
        "bench-simulate",
        title="Simulator: render CPU time and galaxies/s",
        figures={
            "render_cpu_ms_per_galaxy": round(shipped, 2),
            "render_cpu_ms_per_galaxy_galsim_defaults": round(plain, 2),
            "galaxies_per_s_1_worker": round(rates[1]),
            "galaxies_per_s_2_workers": round(rates[2]),
        },
        load_before=first_load,
    )
    typer.echo(f"results: {written}")


if __name__ == "__main__":
    typer.run(main)
