"""SHA-256 digests of what the simulator makes from fixed seeds: pixels, truth, drawn populations, the
calibration's pieces and synth-check's report.

Each digest is taken over an array's raw bytes (with its dtype and shape), so a change in the last bit of
one pixel changes it: moving code leaves the digests alone, re-ordering floating-point arithmetic does not.
``test_simulator_unchanged.py`` compares them with ``simulator_digests.json``; regenerate that file (only
from code whose output is known to be right) with::

    python -m tests.simulate.simulator_digests

The digests hold for this locked environment on this kind of CPU: numpy's and GalSim's vectorised kernels
may round differently on another instruction set.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import fields
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt

from astrospect.settings import BANDS
from astrospect.simulate import check, population, spectra
from astrospect.simulate.catalogue import catalogue_from_magnitudes
from astrospect.simulate.conditions import ObservingConditions
from astrospect.simulate.dust import mean_inclination_dust
from astrospect.simulate.mixture import load_mixture
from astrospect.simulate.synth import synthesize
from astrospect.simulate.targets import load_calibration_galaxies
from astrospect.simulate.template_fit import (
    fit_light_shares,
    mix_and_warp,
    rest_g_r,
    shares_to_mix,
    template_colours,
)

DIGESTS_JSON = Path(__file__).with_name("simulator_digests.json")
MIXTURE_JSON = Path(population.__file__).with_name("spectral_mixture.json")
SEED = 35
N_RENDERED = 40  # galaxies per rendered night: a few dozen, through the public synth path
N_DRAWN = 300  # galaxies drawn without rendering (LRGs among them)
N_CALIBRATION = 60  # real calibration galaxies through the calibration's NNLS and perturbations
N_CATALOGUE = 2000  # galaxies in the catalogue-level synth-check report
# The default night, a deeper one (the faint extension) and a shallower, worse-seeing, miscalibrated one.
NIGHTS = {
    "default": ObservingConditions(),
    "deep": ObservingConditions(r_limit_mag=18.6),
    "shallow": ObservingConditions.with_offsets({"r": 0.05}, seeing_fwhm_arcsec=2.0, r_limit_mag=17.2),
}


def array_digest(values: npt.ArrayLike) -> str:
    array = np.ascontiguousarray(values)
    header = f"{array.dtype.str}{array.shape}".encode()
    return hashlib.sha256(header + array.tobytes()).hexdigest()


def _shard_digests(folder: Path) -> dict[str, str]:
    """Every dataset of every shard in ``folder``, images and truth alike."""
    digests: dict[str, str] = {}

    def visit(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset):
            digests[f"{path.name}/{name}"] = array_digest(item[()])

    for path in sorted(folder.glob("*.h5")):
        with h5py.File(path, "r") as handle:
            handle.visititems(visit)
    return digests


def rendered_digests() -> dict[str, str]:
    digests: dict[str, str] = {}
    for offset, (name, night) in enumerate(NIGHTS.items()):
        with tempfile.TemporaryDirectory() as folder:
            synthesize(Path(folder), N_RENDERED, SEED + offset, lrg_fraction=0.2, workers=1, night=night)
            digests.update(
                {f"rendered/{name}/{key}": value for key, value in _shard_digests(Path(folder)).items()}
            )
    return digests


def _population_digests(prefix: str, galaxies: population.Population) -> dict[str, str]:
    return {
        f"{prefix}/{field.name}": array_digest(getattr(galaxies, field.name)) for field in fields(galaxies)
    }


def drawn_digests() -> dict[str, str]:
    model = population.population_model()
    rng = np.random.default_rng(SEED)
    galaxies = population.draw_population(model, rng, N_DRAWN, lrg_fraction=0.2)
    neighbours = population.draw_neighbours(model, rng, N_DRAWN)
    return {**_population_digests("drawn", galaxies), **_population_digests("neighbours", neighbours)}


def calibration_digests() -> dict[str, str]:
    """The pieces :mod:`astrospect.simulate.calibrate` fits the mixture with, on real galaxies."""
    real = load_calibration_galaxies().iloc[:N_CALIBRATION]
    z = real["redshift"].to_numpy(dtype=np.float64)
    magnitudes = real[list(BANDS)].to_numpy(dtype=np.float64)
    grid = spectra.template_grid()
    mixture = load_mixture()
    shares = fit_light_shares(grid, z, magnitudes)
    mixes = shares_to_mix(grid, shares)
    colours = magnitudes[:, :-1] - magnitudes[:, 1:]
    total_mix, warp = mix_and_warp(grid, mixture, z, colours)
    perturbations = population.colour_perturbations(grid, mixture, z, mixes, np.random.default_rng(SEED))
    return {
        "calibration/light_shares": array_digest(shares),
        "calibration/template_colours": array_digest(template_colours(grid, z, mixes)),
        "calibration/rest_g_r": array_digest(rest_g_r(grid, mixes)),
        "calibration/mix": array_digest(total_mix),
        "calibration/warp": array_digest(warp),
        "calibration/colour_perturbations": array_digest(perturbations),
        "calibration/mean_inclination_dust": array_digest(np.array(mean_inclination_dust())),
    }


def report_digests() -> dict[str, str]:
    """synth-check's table and report on a catalogue drawn from the model (true magnitudes, no images)."""
    galaxies = population.draw_population(
        population.population_model(), np.random.default_rng(SEED), N_CATALOGUE
    )
    catalogue = catalogue_from_magnitudes(
        galaxies.magnitudes, galaxies.redshift, galaxies.disk_q, galaxies.bulge_fraction
    )
    table = check.compare(catalogue)
    return {
        "check/table": hashlib.sha256(table.to_csv().encode()).hexdigest(),
        "check/report": hashlib.sha256(check.render_report(table).encode()).hexdigest(),
    }


def mixture_file_digest() -> dict[str, str]:
    return {"spectral_mixture.json": hashlib.sha256(MIXTURE_JSON.read_bytes()).hexdigest()}


def all_digests() -> dict[str, str]:
    return {
        **mixture_file_digest(),
        **calibration_digests(),
        **drawn_digests(),
        **rendered_digests(),
        **report_digests(),
    }


def main() -> None:
    document = {
        "about": (
            "SHA-256 of the simulator's output from fixed seeds (see tests/simulate/simulator_digests.py), "
            "written by `python -m tests.simulate.simulator_digests` from the simulator before issue 35 split "
            "simulate/population.py and simulate/check.py (commit 187a514)."
        ),
        "digests": all_digests(),
    }
    DIGESTS_JSON.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(document['digests'])} digests to {DIGESTS_JSON}")


if __name__ == "__main__":
    main()
