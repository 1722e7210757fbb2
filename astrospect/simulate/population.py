"""Who the simulated galaxies are: redshift, luminosity, spectrum, dust, bulge fraction, size, shape.

The population follows the SDSS main galaxy sample. :func:`draw_population` draws it in this order, each
step in its own module:

1. **Redshift** from the luminosity function seen through the survey's flux limits and completeness
   (:mod:`.selection`), times the calibrated redshift weight (real over drawn n(z) inside the query, see
   :mod:`.calibrate`). The apparent magnitude is drawn from the spectral mixture, conditional on z,
   between 14.0 and the calibration query's 20: like the real catalogue, about 5% of the galaxies are
   fainter than 17.77 (its other target classes). Distances, volumes and angular sizes come from
   astropy's Planck18 cosmology (:mod:`.cosmology`).
2. **Colours** from the Gaussian mixture fitted to real SDSS galaxies, conditional on the galaxy's
   redshift and magnitude (:mod:`.mixture`); the template mix closest to them and the continuum's warp
   for the rest (:mod:`.template_fit`). Lines, dust and inclination act after the warp; the mixture was
   deconvolved of the colour scatter they add, so they do not add it twice.
3. **Morphology follows colour** (:mod:`.morphology`): red galaxies are bulge dominated, and bulges are
   redder than their disks.
4. **Emission lines** are scaled by a lognormal factor of the galaxy's own (mean 1, LINE_LOG10_SCATTER
   dex), so galaxies with one continuum differ in line strength.
5. **Dust** (:mod:`.dust`): the disk's own, following its inclination, and the Galactic foreground.
6. **Fluxes**: each component's share of the light, observed through all of the above, scaled to the
   drawn apparent r (or, for the LRG tail, to the LRG luminosity function).
7. **Sizes** from the SDSS size-luminosity relations at the galaxy's distance (:mod:`.sizes`), and the
   shapes: the disk's axis ratio follows its inclination, the bulge's and the position angle are random.

Every random number comes from one generator in a fixed order: moving a draw changes every galaxy after
it, so the helpers below are called in the order of the steps.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache

import numpy as np
import numpy.typing as npt

from astrospect.simulate.cosmology import arcsec_per_kpc, distance_modulus
from astrospect.simulate.dust import (
    disk_axis_ratio,
    foreground_transmission,
    galactic_ebv,
    inclination_dust,
    mean_inclination_dust,
)
from astrospect.simulate.mixture import ConditionalMixture, SpectralMixture, load_mixture
from astrospect.simulate.morphology import bulge_fraction_of, component_mixes, galaxy_type_of
from astrospect.simulate.selection import (
    R_BRIGHT_LIMIT,
    R_SAMPLE_FAINTEST,
    FaintExtension,
    SelectionTable,
    lrg_absolute_magnitude,
    lrg_mix,
    lrg_redshift_density,
    sample_from_density,
    selection_table,
)
from astrospect.simulate.sizes import component_half_light_arcsec, half_light_kpc
from astrospect.simulate.spectra import R_BAND, FloatArray, TemplateGrid, colours_of, template_grid
from astrospect.simulate.template_fit import mix_and_warp, rest_g_r, shares_to_mix, template_colours

LINE_LOG10_SCATTER = 0.2  # galaxy-to-galaxy scatter of line strength at fixed continuum (dex)
SPECZ_ERROR = 3e-5  # typical SDSS spectroscopic redshift error, times (1 + z)


@dataclass
class Population:
    """One row per galaxy (all arrays of length n)."""

    redshift: FloatArray
    abs_mag_r: FloatArray  # rest-frame r absolute magnitude (AB), before the galaxy's own extra dust
    colour_score: FloatArray  # standardised rest-frame g-r of the mix: <0 bluer than the typical galaxy
    bulge_fraction: FloatArray  # bulge share of the rest-frame r light
    bulge_mix: FloatArray  # (n, N_TEMPLATES), unit rest-frame r flux
    disk_mix: FloatArray  # (n, N_TEMPLATES)
    line_factor: FloatArray  # emission-line strength relative to the templates' own
    warp: FloatArray  # (n, N_WARP_KNOTS) coefficients of the continuum's warp (all ones: none)
    cos_inclination: FloatArray  # of the disk: 1 face-on, 0 edge-on
    disk_dust_r: FloatArray  # rest-frame r attenuation of the disk relative to the mean disk (mag)
    bulge_dust_r: FloatArray  # the same for the bulge, half behind the disk
    ebv: FloatArray  # Galactic foreground E(B-V)
    bulge_flux: FloatArray  # (n, 5) observed nanomaggies, SDSS system
    disk_flux: FloatArray  # (n, 5)
    r50_kpc: FloatArray
    bulge_hlr_arcsec: FloatArray
    disk_hlr_arcsec: FloatArray
    bulge_q: FloatArray
    disk_q: FloatArray
    position_angle_rad: FloatArray
    galaxy_type: npt.NDArray[np.int8]
    is_lrg: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.redshift.shape[0])

    @property
    def total_flux(self) -> FloatArray:
        return self.bulge_flux + self.disk_flux

    @property
    def magnitudes(self) -> FloatArray:
        """True total ugriz magnitudes (SDSS system), (n, 5)."""
        return 22.5 - 2.5 * np.log10(self.total_flux)

    def take(self, rows: npt.NDArray[np.int64]) -> Population:
        return Population(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


@dataclass(frozen=True)
class PopulationModel:
    """Everything a worker needs to draw galaxies: precomputed in the parent, ~1 MB to pickle."""

    grid: TemplateGrid
    mixture: SpectralMixture
    conditional: ConditionalMixture
    selection: SelectionTable
    lrg_z_grid: FloatArray
    lrg_z_density: FloatArray
    red_mix: FloatArray  # (N_TEMPLATES,) unit rest-r mix of the red galaxies
    mean_disk_dust_r: float  # mean attenuation of disks over random inclinations (rest r, mag)
    mean_bulge_dust_r: float
    faint: FaintExtension | None = None  # a night deeper than the calibration set (drift studies)


@cache
def population_model() -> PopulationModel:
    """Load the fitted mixture and tabulate the selection (~1 s once kcorrect's grid exists)."""
    return build_population_model(load_mixture())


def build_population_model(mixture: SpectralMixture) -> PopulationModel:
    grid = template_grid()
    knot_mixes = shares_to_mix(grid, mixture.knot_shares)
    lrg_z, lrg_density = lrg_redshift_density()
    mean_disk_dust, mean_bulge_dust = mean_inclination_dust()
    return PopulationModel(
        grid=grid,
        mixture=mixture,
        conditional=ConditionalMixture.of(mixture),
        selection=selection_table(mixture.knot_redshift, knot_mixes),
        lrg_z_grid=lrg_z,
        lrg_z_density=lrg_density,
        red_mix=shares_to_mix(grid, mixture.red_shares[None, :])[0],
        mean_disk_dust_r=mean_disk_dust,
        mean_bulge_dust_r=mean_bulge_dust,
    )


def draw_population(
    model: PopulationModel, rng: np.random.Generator, n: int, lrg_fraction: float = 0.0
) -> Population:
    """Draw ``n`` galaxies. Every random number comes from ``rng`` in a fixed order (deterministic)."""
    if not 0.0 <= lrg_fraction <= 1.0:
        raise ValueError(f"lrg_fraction must be in [0, 1], got {lrg_fraction}")
    is_lrg = rng.random(n) < lrg_fraction
    z, apparent_r = _draw_redshift_and_r(model, rng, n, is_lrg)
    score, bulge_fraction, bulge_mix, disk_mix, warp = _draw_mixes(model, rng, z, apparent_r, is_lrg)

    line_factor = line_factor_of(rng.standard_normal(n))
    cos_inclination = rng.random(n)
    disk_dust, bulge_dust = inclination_dust(cos_inclination)
    disk_dust = np.where(is_lrg, 0.0, disk_dust - model.mean_disk_dust_r)
    bulge_dust = np.where(is_lrg, 0.0, bulge_dust - model.mean_bulge_dust_r)
    ebv = galactic_ebv(rng.standard_normal(n))

    # Observed fluxes at absolute magnitude 0, each component its share of the rest-frame r light, then
    # scaled to the drawn apparent r (main sample) or to the LRG luminosity function.
    bulge_unit, disk_unit = _unit_fluxes(
        model.grid, z, ebv, (bulge_mix, disk_mix), bulge_fraction, (bulge_dust, disk_dust), line_factor, warp
    )
    r_at_zero = 22.5 - 2.5 * np.log10(bulge_unit[:, R_BAND] + disk_unit[:, R_BAND])
    abs_mag = np.where(is_lrg, lrg_absolute_magnitude(rng, z, r_at_zero), apparent_r - r_at_zero)
    luminosity = 10.0 ** (-0.4 * abs_mag)[:, None]

    r50_kpc = half_light_kpc(rng, abs_mag, bulge_fraction)
    bulge_hlr, disk_hlr = component_half_light_arcsec(r50_kpc, bulge_fraction, arcsec_per_kpc(z))
    bulge_q = rng.uniform(0.55, 1.0, n)
    position_angle = rng.uniform(0.0, np.pi, n)
    return Population(
        redshift=z,
        abs_mag_r=abs_mag,
        colour_score=np.where(is_lrg, np.nan, score),
        bulge_fraction=bulge_fraction,
        bulge_mix=bulge_mix,
        disk_mix=disk_mix,
        line_factor=line_factor,
        warp=warp,
        cos_inclination=cos_inclination,
        disk_dust_r=disk_dust,
        bulge_dust_r=bulge_dust,
        ebv=ebv,
        bulge_flux=bulge_unit * luminosity,
        disk_flux=disk_unit * luminosity,
        r50_kpc=r50_kpc,
        bulge_hlr_arcsec=bulge_hlr,
        disk_hlr_arcsec=disk_hlr,
        bulge_q=bulge_q,
        disk_q=disk_axis_ratio(cos_inclination),
        position_angle_rad=position_angle,
        galaxy_type=galaxy_type_of(bulge_fraction),
        is_lrg=is_lrg,
    )


def _draw_redshift_and_r(
    model: PopulationModel, rng: np.random.Generator, n: int, is_lrg: npt.NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray]:
    """Redshift from the selection's n(z) times the calibrated weight (or the LRGs' own), then the apparent
    r from the mixture given z, and from the luminosity function beyond the SDSS limit on a deeper night."""
    mixture, selection = model.mixture, model.selection
    main_z = sample_from_density(
        rng, selection.z, selection.z_density * mixture.redshift_weight_at(selection.z), n
    )
    lrg_z = sample_from_density(rng, model.lrg_z_grid, model.lrg_z_density, n)
    z = np.where(is_lrg, lrg_z, main_z)
    apparent_r = model.conditional.sample_r(
        z, rng.random(n), (R_BRIGHT_LIMIT, R_SAMPLE_FAINTEST), weighted_by=mixture
    )
    if model.faint is not None:
        apparent_r = model.faint.extend(rng, z, apparent_r)
    return z, apparent_r


def _draw_mixes(
    model: PopulationModel,
    rng: np.random.Generator,
    z: FloatArray,
    apparent_r: FloatArray,
    is_lrg: npt.NDArray[np.bool_],
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Colour score, bulge fraction, bulge and disk mixes, and warp of each galaxy.

    Colours given redshift and magnitude; the closest template mix, and the warp of the whole galaxy's
    continuum (bulge and disk alike) for the rest. The mix's rest-frame colour sets the bulge fraction.
    """
    grid, mixture, n = model.grid, model.mixture, len(z)
    colours = model.conditional.sample(rng, z, apparent_r)
    total_mix, warp = mix_and_warp(grid, mixture, z, colours)
    warp[is_lrg] = 1.0  # the LRG template is its own population, not fitted to the main sample
    score = (rest_g_r(grid, total_mix) - mixture.rest_g_r_mean) / mixture.rest_g_r_std
    bulge_fraction = bulge_fraction_of(score, rng.standard_normal(n))
    bulge_fraction = np.where(is_lrg, rng.uniform(0.85, 1.0, n), bulge_fraction)
    bulge_mix, disk_mix = component_mixes(total_mix, model.red_mix, bulge_fraction)
    lrg_mixes = lrg_mix(grid, n)
    bulge_mix = np.where(is_lrg[:, None], lrg_mixes, bulge_mix)
    disk_mix = np.where(is_lrg[:, None], lrg_mixes, disk_mix)
    return score, bulge_fraction, bulge_mix, disk_mix, warp


def _unit_fluxes(
    grid: TemplateGrid,
    z: FloatArray,
    ebv: FloatArray,
    mixes: tuple[FloatArray, FloatArray],
    bulge_fraction: FloatArray,
    dust: tuple[FloatArray, FloatArray],
    line_factor: FloatArray,
    warp: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Observed nanomaggies (n, 5) of the bulge and of the disk at absolute magnitude 0, through the
    galaxy's own dust and the Galactic foreground."""
    (bulge_mix, disk_mix), (bulge_dust, disk_dust) = mixes, dust
    mu = distance_modulus(z)
    foreground = foreground_transmission(ebv)
    bulge_unit = (
        1e9
        * foreground
        * grid.observed_maggies(z, bulge_mix * bulge_fraction[:, None], mu, bulge_dust, line_factor, warp)
    )
    disk_unit = (
        1e9
        * foreground
        * grid.observed_maggies(z, disk_mix * (1 - bulge_fraction)[:, None], mu, disk_dust, line_factor, warp)
    )
    return bulge_unit, disk_unit


def line_factor_of(unit_normal: FloatArray) -> FloatArray:
    """Line strength relative to the templates' own: lognormal, mean 1, LINE_LOG10_SCATTER dex."""
    return np.asarray(10.0 ** (LINE_LOG10_SCATTER * unit_normal - 0.5 * np.log(10) * LINE_LOG10_SCATTER**2))


def colour_perturbations(
    grid: TemplateGrid,
    mixture: SpectralMixture,
    z: FloatArray,
    total_mix: FloatArray,
    rng: np.random.Generator,
) -> FloatArray:
    """How much one random draw of what acts after the warp (bulge fraction and colour gradient, the
    disk's inclination and dust, the line strength) moves each galaxy's colours (n, 4), as
    :func:`draw_population` draws them. Calibration deconvolves the mixture of these."""
    n = len(z)
    score = (rest_g_r(grid, total_mix) - mixture.rest_g_r_mean) / mixture.rest_g_r_std
    bulge_fraction = bulge_fraction_of(score, rng.standard_normal(n))
    red_mix = shares_to_mix(grid, mixture.red_shares[None, :])[0]
    bulge_mix, disk_mix = component_mixes(total_mix, red_mix, bulge_fraction)
    mean_disk, mean_bulge = mean_inclination_dust()
    disk_dust, bulge_dust = inclination_dust(rng.random(n))
    line_factor = line_factor_of(rng.standard_normal(n))
    zero = np.zeros(n)
    light = grid.observed_maggies(
        z, bulge_mix * bulge_fraction[:, None], zero, bulge_dust - mean_bulge, line_factor
    ) + grid.observed_maggies(
        z, disk_mix * (1 - bulge_fraction)[:, None], zero, disk_dust - mean_disk, line_factor
    )
    return colours_of(light) - template_colours(grid, z, total_mix)


def draw_neighbours(model: PopulationModel, rng: np.random.Generator, n: int) -> Population:
    """Galaxies seen next to the target: the same population, 0-3 mag fainter (faint neighbours dominate)."""
    neighbours = draw_population(model, rng, n)
    dimming = 10.0 ** (-0.4 * rng.uniform(0.0, 3.0, n))[:, None]
    neighbours.bulge_flux = neighbours.bulge_flux * dimming
    neighbours.disk_flux = neighbours.disk_flux * dimming
    return neighbours


def specz_error(z: FloatArray, unit_normal: FloatArray) -> FloatArray:
    """Spectroscopic redshift errors: ~3e-5 (1 + z), lognormally scattered by 0.3 (given unit normals)."""
    return np.asarray(SPECZ_ERROR * (1 + z) * np.exp(0.3 * unit_normal))
