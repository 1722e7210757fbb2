"""Simulate a catalogue of SDSS-like cutouts and write it as shards: ``synthesize(out_dir, n, seed)``.

Galaxies are made in blocks of ``BLOCK_SIZE``. Block ``b`` draws every random number from its own generator,
seeded by ``(seed, b)``, so a galaxy's pixels depend only on the seed and its index: the same whatever the
number of worker processes or the shard size. Blocks run in parallel (a process pool started with
``spawn``, safe inside Airflow or next to TensorFlow) and come back in order, so shards stream to disk as
they fill and memory holds at most a few shards.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import numpy.typing as npt

from astrospect.data.shards import write_shard
from astrospect.settings import BANDS, get_logger
from astrospect.simulate.conditions import ObservingConditions, population_for
from astrospect.simulate.morphology import GALAXY_TYPES
from astrospect.simulate.population import PopulationModel, draw_neighbours, draw_population, specz_error
from astrospect.simulate.render import Camera, draw_conditions, render_stamps, sdss_camera

log = get_logger(__name__)

BLOCK_SIZE = 100  # galaxies per random stream; fixed, so output never depends on how work is split
# objid = 2^62 + seed * 2^31 + index: unique across seeds and shards, above every real SDSS objid (< 2^61),
# and within int64 for any seed below 2^31 (so `date +%s` works as a seed until 2038).
MAX_SEED = 2**31
MAX_GALAXIES = 2**31
OBJID_BASE = 1 << 62
SHARD_PATTERN = "sim-s{seed}-{k:04d}.h5"
# The SDSS northern footprint, roughly: simulated positions are uniform on the sphere inside it.
RA_RANGE_DEG, DEC_RANGE_DEG = (110.0, 260.0), (-5.0, 70.0)


def simulated_objid(seed: int, index: npt.ArrayLike) -> npt.NDArray[np.int64]:
    return (OBJID_BASE + (seed << 31) + np.asarray(index, dtype=np.int64)).astype(np.int64)


@dataclass(frozen=True)
class BlockTask:
    seed: int
    block: int
    start: int
    stop: int
    lrg_fraction: float
    night: ObservingConditions


# Set once per worker process by the pool's initializer: the parent's precomputed tables, so workers never
# import kcorrect or project a spectrum (that would cost each worker ~5 s).
_WORKER_SETUP: tuple[PopulationModel, Camera] | None = None


def _init_worker(model: PopulationModel, camera: Camera) -> None:
    global _WORKER_SETUP
    _WORKER_SETUP = (model, camera)


def _run_block(task: BlockTask) -> dict[str, np.ndarray]:
    model, camera = _WORKER_SETUP or (population_for(task.night.r_limit_mag), sdss_camera())
    return simulate_block(model, camera, task)


def simulate_block(model: PopulationModel, camera: Camera, task: BlockTask) -> dict[str, np.ndarray]:
    """Galaxies ``task.start`` to ``task.stop`` of the catalogue of ``task.seed``: pixels, labels, truth."""
    rng = np.random.default_rng([task.seed, task.block])
    # Always draw a full block, then keep what is needed: a galaxy's random numbers must not depend on
    # whether its block is the catalogue's last, partial one.
    n = task.stop - task.start
    keep = np.arange(n)
    population = draw_population(model, rng, BLOCK_SIZE, task.lrg_fraction).take(keep)
    neighbours = draw_neighbours(model, rng, BLOCK_SIZE).take(keep)
    conditions = draw_conditions(rng, BLOCK_SIZE, camera, task.night.seeing_fwhm_arcsec).take(keep)
    redshift_err = specz_error(population.redshift, rng.standard_normal(BLOCK_SIZE)[keep])
    measured_z = np.clip(
        population.redshift + redshift_err * rng.standard_normal(BLOCK_SIZE)[keep], 0.0, None
    )
    ra = rng.uniform(*RA_RANGE_DEG, BLOCK_SIZE)[keep]
    sin_dec_low, sin_dec_high = np.sin(np.radians(DEC_RANGE_DEG))
    sin_dec = rng.uniform(float(sin_dec_low), float(sin_dec_high), BLOCK_SIZE)[keep]
    images, flags = render_stamps(population, neighbours, conditions, camera)
    images = task.night.calibrate(images)
    index = np.arange(task.start, task.stop, dtype=np.int64)
    magnitudes = population.magnitudes
    block: dict[str, np.ndarray] = {
        "images": images,
        "objid": simulated_objid(task.seed, index),
        "specz_redshift": measured_z.astype(np.float32),
        "specz_redshift_err": redshift_err.astype(np.float32),
        "ra": ra,
        "dec": np.degrees(np.arcsin(sin_dec)),
        "ebv": population.ebv.astype(np.float32),
        "truth/redshift": population.redshift,
        **{f"truth/mag_{band}": magnitudes[:, i] for i, band in enumerate(BANDS)},
        "truth/abs_mag_r": population.abs_mag_r,
        "truth/bulge_fraction": population.bulge_fraction,
        "truth/galaxy_type": population.galaxy_type,
        "truth/is_lrg": population.is_lrg,
        "truth/colour_score": population.colour_score,
        "truth/line_factor": population.line_factor,
        "truth/cos_inclination": population.cos_inclination,
        "truth/disk_dust_r": population.disk_dust_r,
        "truth/bulge_dust_r": population.bulge_dust_r,
        "truth/ebv": population.ebv,
        "truth/r50_kpc": population.r50_kpc,
        "truth/bulge_hlr_arcsec": population.bulge_hlr_arcsec,
        "truth/disk_hlr_arcsec": population.disk_hlr_arcsec,
        "truth/bulge_q": population.bulge_q,
        "truth/disk_q": population.disk_q,
        "truth/position_angle_rad": population.position_angle_rad,
        "truth/psf_fwhm_arcsec": conditions.psf_fwhm_arcsec,
        "truth/sky_nanomaggies": conditions.sky_nanomaggies,
        "truth/flags": flags,
        "truth/neighbour_mag_r": 22.5 - 2.5 * np.log10(neighbours.total_flux[:, 2]),
        "truth/seed": np.full(n, task.seed, dtype=np.int64),
        "truth/index": index,
    }
    return block


def _tasks(n: int, seed: int, lrg_fraction: float, night: ObservingConditions) -> list[BlockTask]:
    return [
        BlockTask(seed, block, start, min(start + BLOCK_SIZE, n), lrg_fraction, night)
        for block, start in enumerate(range(0, n, BLOCK_SIZE))
    ]


def _blocks(
    model: PopulationModel, camera: Camera, tasks: list[BlockTask], workers: int
) -> Iterator[dict[str, np.ndarray]]:
    if workers == 1:
        for task in tasks:
            yield simulate_block(model, camera, task)
        return
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=_init_worker,
        initargs=(model, camera),
    ) as pool:
        yield from pool.map(_run_block, tasks)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def synthesize(
    out_dir: Path,
    n: int,
    seed: int,
    shard_size: int = 1000,
    lrg_fraction: float = 0.0,
    workers: int | None = None,
    night: ObservingConditions | None = None,
) -> list[Path]:
    """Simulate ``n`` galaxies with ``seed`` into ``<out_dir>/sim-s<seed>-<k:04d>.h5``; returns the shard paths.

    ``lrg_fraction`` adds a luminous red galaxy tail to z ~ 0.6; ``night`` changes the observing conditions
    (seeing, depth, calibration; default: the calibrated SDSS ones). Refuses to overwrite existing shards.
    """
    night = night or ObservingConditions()
    if not 0 < n <= MAX_GALAXIES:
        raise ValueError(f"n must be in 1..{MAX_GALAXIES}, got {n}")
    if not 0 <= seed < MAX_SEED:
        raise ValueError(f"seed must be in 0..{MAX_SEED - 1} (it is part of the objid), got {seed}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    if not 0.0 <= lrg_fraction <= 1.0:
        raise ValueError(f"lrg_fraction must be in [0, 1], got {lrg_fraction}")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be positive, got {workers}")
    out_dir = Path(out_dir)
    paths = [
        out_dir / SHARD_PATTERN.format(seed=seed, k=k) for k in range((n + shard_size - 1) // shard_size)
    ]
    existing = [path for path in paths if path.exists()]
    if existing:
        raise FileExistsError(
            f"{existing[0]}: refusing to overwrite an existing shard ({len(existing)} in the way)"
        )

    started = time.perf_counter()
    model = population_for(night.r_limit_mag)
    log.info(
        "simulating %d galaxies (seed %d, LRG fraction %.3f) on %d worker(s)", n, seed, lrg_fraction, workers
    )
    written: list[Path] = []
    pending: list[dict[str, np.ndarray]] = []
    buffered = done = 0
    for block in _blocks(model, sdss_camera(), _tasks(n, seed, lrg_fraction, night), workers):
        pending.append(block)
        buffered += len(block["objid"])
        done += len(block["objid"])
        while buffered >= shard_size or (done == n and buffered > 0):
            shard, pending, buffered = _take(pending, min(shard_size, buffered))
            written.append(_write(paths[len(written)], shard, seed, lrg_fraction, night))
            elapsed = time.perf_counter() - started
            log.info(
                "wrote %s: %d/%d galaxies, %.0f galaxies/s",
                written[-1].name,
                done - buffered,
                n,
                (done - buffered) / elapsed,
            )
    log.info(
        "simulated %d galaxies in %.1f s (%.0f galaxies/s) into %d shard(s)",
        n,
        time.perf_counter() - started,
        n / (time.perf_counter() - started),
        len(written),
    )
    return written


def _take(
    pending: list[dict[str, np.ndarray]], count: int
) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]], int]:
    """Split ``count`` rows off the front of the pending blocks."""
    joined = {key: np.concatenate([block[key] for block in pending]) for key in pending[0]}
    shard = {key: value[:count] for key, value in joined.items()}
    rest = {key: value[count:] for key, value in joined.items()}
    remaining = len(rest["objid"])
    return shard, ([rest] if remaining else []), remaining


def _write(
    path: Path, shard: dict[str, np.ndarray], seed: int, lrg_fraction: float, night: ObservingConditions
) -> Path:
    truth = {key.removeprefix("truth/"): value for key, value in shard.items() if key.startswith("truth/")}
    return write_shard(
        path,
        shard["images"],
        shard["objid"],
        shard["specz_redshift"],
        shard["specz_redshift_err"],
        ra=shard["ra"],
        dec=shard["dec"],
        ebv=shard["ebv"],
        truth=truth,
        survey="SDSS-simulated",
        attrs={
            "simulator": "astrospect.simulate (GalSim + kcorrect + astropy Planck18)",
            "seed": seed,
            "lrg_fraction": lrg_fraction,
            "galaxy_types": ",".join(GALAXY_TYPES),
            "truth_flags": "1 blend, 2 cosmic ray, 4 bad column, 8 bright star, 16 saturated",
            **night.attrs(),
        },
    )
