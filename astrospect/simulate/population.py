"""Who the simulated galaxies are: redshift, luminosity, spectrum (template mix), bulge fraction, size, shape.

The population follows the SDSS main galaxy sample:

* **Redshift and luminosity** come together from an evolving Schechter luminosity function (Blanton et al.
  2003, r band) seen through the flux limits 14.0 <= r <= 17.77 (the main-sample target limit, applied to
  the true total r): ``n(z) ∝ dV/dz * (fraction of the LF bright enough at z)``, then the absolute
  magnitude is drawn from the LF truncated to the limits at that redshift, with each galaxy's own
  K-correction. Distances, volumes and angular sizes come from astropy's Planck18 cosmology.
* **Spectra** are non-negative mixes of kcorrect's templates (see :mod:`.spectra`). At each redshift knot
  (the median redshift of each calibration bin) three mixes are kcorrect NNLS fits to the 16th, 50th and
  84th percentile SDSS colours of that bin (minus the measurement offsets in ``colour_corrections.csv``).
  A galaxy's colour score ``s ~ N(0, 1)`` picks its place between them (s = -1, 0, +1), so colours at any
  redshift follow from redshifting a rest-frame mix through ugriz, not from a lookup of colours.
* **Morphology follows colour**: red galaxies are bulge dominated. The bulge is given a redder mix than the
  disk (its score shifted up, the disk's down) so galaxies carry colour gradients, as real ones do.
* **Sizes** follow the SDSS size-luminosity relations of Shen et al. (2003): half-light radius in kpc from
  the absolute magnitude, early- or late-type relation weighted by bulge fraction, with their scatter;
  then converted to arcsec with the angular-diameter distance, so angular size shrinks with distance.
* An optional **luminous red galaxy tail** (SDSS LRG-like: kcorrect's LRG template, a narrow luminous
  Gaussian LF, r <= 19.5, 0.15 < z < 0.65) makes the full and clipped (z <= 0.4) training sets differ.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special

from astrospect.simulate.spectra import (
    LRG_TEMPLATE,
    N_TEMPLATES,
    R_BAND,
    SDSS_TO_AB_OFFSET_MAG,
    TemplateGrid,
    fit_mix_to_colours,
    template_grid,
)
from astrospect.simulate.targets import COLOURS, PERCENTILES, load_targets

FloatArray = npt.NDArray[np.float64]

# --- survey selection -------------------------------------------------------------------------------------
R_FAINT_LIMIT = 17.77  # SDSS main galaxy sample target limit (Strauss et al. 2002), on the true total r
R_BRIGHT_LIMIT = 14.0  # brighter galaxies are lost to saturation and fibre cross-talk limits
LRG_R_LIMIT = 19.5  # SDSS LRG "cut II" flux limit (Eisenstein et al. 2001)

# --- luminosity function (Blanton et al. 2003, ^0.1r band; h = Planck18's 0.677) --------------------------
# Blanton's M* - 5 log10 h = -20.44 is -21.29 at h = 0.677; calibration on the real redshift quantiles
# moved it 0.15 mag brighter, and preferred no luminosity evolution over 0 < z < 0.3 (with Blanton's
# Q = 1.62 the simulated n(z) has too long a high-redshift tail: p95/p50 = 2.2 against the real 1.98).
LF_M_STAR = -21.44
LF_ALPHA = -1.05
LF_EVOLUTION_Q = 0.0  # M*(z) = M* - Q (z - 0.1)
LRG_EVOLUTION_Q = 1.62  # LRGs (0.15 < z < 0.65) do brighten with look-back time: passive evolution
LF_M_BRIGHTEST = -24.0
LF_M_FAINTEST = -15.0  # dwarfs fainter than this hardly enter an r < 17.77 sample
# Sample completeness: the share of galaxies at true r that have a spectrum in the sample rolls off toward
# the limit (fibre collisions, low-S/N spectra, the sample's own cuts). Calibrated on the real r quantiles.
COMPLETENESS_HALF_MAG = 17.15
COMPLETENESS_WIDTH_MAG = 0.3
Z_MIN, Z_MAX_MAIN = 0.002, 0.45
LRG_M_MEAN, LRG_M_SIGMA = -22.6, 0.35  # LRGs: a narrow, luminous population (Wake et al. 2006)
LRG_Z_RANGE = (0.15, 0.65)

# --- colours ----------------------------------------------------------------------------------------------
SCORE_OF_PERCENTILE = {"p16": -1.0, "p50": 0.0, "p84": 1.0}
SCORE_LIMIT = 2.5  # colour scores are clipped to +-2.5 sigma
BULGE_DISK_SCORE_SPLIT = 0.8  # bulge mix is this much redder than the disk's (in score units)
MIX_JITTER = 0.12  # lognormal scatter of each template coefficient: stellar-population variety
LUMINOSITY_COLOUR_CORRELATION = 0.3  # redder galaxies are more luminous at fixed redshift
CORRECTIONS_CSV = Path(__file__).with_name("colour_corrections.csv")

# --- morphology and sizes ---------------------------------------------------------------------------------
DISK_THICKNESS_Q0 = 0.2  # intrinsic axis ratio of an edge-on disk
# Shen et al. (2003, MNRAS 343, 978) r-band size-luminosity relations, R50 in kpc:
SHEN_EARLY_A, SHEN_EARLY_B = 0.65, -5.06  # log R = -0.4 a M + b
SHEN_LATE_ALPHA, SHEN_LATE_BETA, SHEN_LATE_GAMMA, SHEN_LATE_M0 = 0.21, 0.53, -1.31, -20.52
SHEN_SIGMA1, SHEN_SIGMA2 = 0.48, 0.25  # sigma(ln R): faint galaxies scatter more
MAX_HALF_LIGHT_ARCSEC = 12.0  # nearby giants are capped: the cutout is 12.7" across anyway
GALAXY_TYPES = ("E", "S0/Sa", "Sb", "Sc", "Irr")  # by bulge fraction: >0.7, >0.4, >0.2, >0.07, else
TYPE_BULGE_EDGES = (0.7, 0.4, 0.2, 0.07)
SPECZ_ERROR = 3e-5  # typical SDSS spectroscopic redshift error, times (1 + z)


@cache
def cosmology() -> object:
    from astropy.cosmology import Planck18

    return Planck18


@dataclass
class Population:
    """One row per galaxy (all arrays of length n)."""

    redshift: FloatArray
    abs_mag_r: FloatArray  # rest-frame r absolute magnitude (AB)
    colour_score: FloatArray  # <0 bluer than the median galaxy at its redshift, >0 redder
    bulge_fraction: FloatArray  # bulge share of the r-band light
    bulge_mix: FloatArray  # (n, N_TEMPLATES), unit rest-frame r flux
    disk_mix: FloatArray  # (n, N_TEMPLATES)
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


# --- cosmology and K-corrections ------------------------------------------------------------------------
def m_star(z: npt.ArrayLike) -> FloatArray:
    return LF_M_STAR - LF_EVOLUTION_Q * (np.asarray(z, dtype=np.float64) - 0.1)


def distance_modulus(z: npt.ArrayLike) -> FloatArray:
    return np.asarray(cosmology().distmod(np.asarray(z, dtype=np.float64)).value)  # type: ignore[attr-defined]


def arcsec_per_kpc(z: npt.ArrayLike) -> FloatArray:
    kpc_per_arcmin = cosmology().kpc_proper_per_arcmin(np.asarray(z, dtype=np.float64)).value  # type: ignore[attr-defined]
    return 60.0 / np.asarray(kpc_per_arcmin)


def k_correction_r(grid: TemplateGrid, z: npt.ArrayLike, mixes: npt.ArrayLike) -> FloatArray:
    """r-band K-correction of each mix: m = M + DM + K (mixes normalised to unit rest-frame r)."""
    design = grid.design_matrix(z)
    observed_r = np.einsum("nt,nt->n", design[:, R_BAND, :], np.atleast_2d(mixes))
    return -2.5 * np.log10(observed_r / grid.rest_frame_r(mixes))


# --- colour knots -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColourKnots:
    """Template mixes of the p16/p50/p84 galaxy at knot redshifts: mixes (n_knots, 3, N_TEMPLATES)."""

    redshift: FloatArray
    mixes: FloatArray
    intrinsic_colours: pd.DataFrame  # the colours the mixes were fitted to


def load_corrections(path: Path = CORRECTIONS_CSV) -> pd.DataFrame:
    """Measured-minus-intrinsic colour offsets per bin (aperture, PSF, noise, gradients), from synth-check."""
    if not path.exists():
        return pd.DataFrame()
    return pd.read_csv(path, comment="#")


def intrinsic_colour_targets(corrections: pd.DataFrame | None = None) -> pd.DataFrame:
    """The SDSS percentile colours per bin minus the measurement offsets: what the mixes must produce."""
    bins = load_targets().bins.copy()
    corrections = load_corrections() if corrections is None else corrections
    for colour in COLOURS:
        for percentile in PERCENTILES:
            column = f"{colour}_{percentile}"
            if column in corrections:
                bins[column] = bins[column] - corrections[column].to_numpy()
    return bins


def fit_colour_knots(knot_z: FloatArray, intrinsic: pd.DataFrame) -> ColourKnots:
    """The p16/p50/p84 mixes at each knot: 24 kcorrect NNLS fits (~0.1 s)."""
    mixes = np.array(
        [
            [fit_mix_to_colours(float(z), _colours(row, p)) for p in PERCENTILES]
            for z, (_, row) in zip(knot_z, intrinsic.iterrows(), strict=True)
        ]
    )
    return ColourKnots(
        redshift=np.asarray(knot_z, dtype=np.float64), mixes=mixes, intrinsic_colours=intrinsic
    )


def _colours(row: pd.Series, percentile: str) -> FloatArray:
    return np.array([row[f"{colour}_{percentile}"] for colour in COLOURS], dtype=np.float64)


def _median_in(z: FloatArray, density: FloatArray, lo: float, hi: float) -> float:
    inside = (z >= lo) & (z < hi)
    cumulative = np.cumsum(density[inside])
    return float(np.interp(0.5 * cumulative[-1], cumulative, z[inside]))


def mixes_at(grid: TemplateGrid, knots: ColourKnots, z: FloatArray, score: FloatArray) -> FloatArray:
    """Mix of each galaxy: linear in redshift between knots, piecewise linear in colour score between the
    p16/p50/p84 mixes (extrapolated beyond, coefficients kept non-negative), unit rest-frame r flux."""
    position = np.interp(z, knots.redshift, np.arange(len(knots.redshift), dtype=np.float64))
    low = np.minimum(position.astype(np.int64), len(knots.redshift) - 2)
    weight = (position - low)[:, None, None]
    at_z = (1.0 - weight) * knots.mixes[low] + weight * knots.mixes[low + 1]  # (n, 3, T)
    s = np.clip(score, -SCORE_LIMIT, SCORE_LIMIT)[:, None]
    blue_side = at_z[:, 1] + s * (at_z[:, 1] - at_z[:, 0])
    red_side = at_z[:, 1] + s * (at_z[:, 2] - at_z[:, 1])
    mix = np.where(s < 0, blue_side, red_side)
    mix = np.clip(mix, 0.0, None)
    return grid.normalise_r(mix)


# --- redshift and apparent magnitude ----------------------------------------------------------------------
@dataclass(frozen=True)
class SelectionTable:
    """The joint density of (z, apparent r) of the selected sample on a grid, and its marginal n(z).

    At each z the apparent magnitude m maps to M = m - DM(z) - K(z) (K of the median galaxy), where the
    Schechter LF gives the density; times the sample completeness at m; times the comoving volume.
    """

    z: FloatArray  # (nz,)
    m: FloatArray  # (nm,)
    z_density: FloatArray  # (nz,)
    m_cdf: FloatArray  # (nz, nm): cumulative of m at each z, 0 at the bright limit, 1 at the faint one


def completeness(m: npt.ArrayLike) -> FloatArray:
    """Fraction of galaxies at true r = m that are in the sample (logistic roll-off toward the limit)."""
    m = np.asarray(m, dtype=np.float64)
    return np.asarray(special.expit(-(m - COMPLETENESS_HALF_MAG) / COMPLETENESS_WIDTH_MAG))


def schechter_density(abs_mag: npt.ArrayLike, mstar: npt.ArrayLike) -> FloatArray:
    x = 10.0 ** (-0.4 * (np.asarray(abs_mag) - np.asarray(mstar)))
    return np.asarray(x ** (LF_ALPHA + 1) * np.exp(-x))


def selection_table(
    median_mix_z: FloatArray, median_mixes: FloatArray, r_faint_limit: float = R_FAINT_LIMIT
) -> SelectionTable:
    """``r_faint_limit`` other than the SDSS one makes a deeper (or shallower) survey: the completeness
    roll-off moves with the limit, since it is what makes the effective depth."""
    grid = template_grid()
    z = np.linspace(Z_MIN, Z_MAX_MAIN, 900)
    m = np.linspace(R_BRIGHT_LIMIT, r_faint_limit, 200)
    mixes = _interp_mixes(median_mix_z, median_mixes, z)
    k_r = k_correction_r(grid, z, mixes)
    abs_mag = m[None, :] - (distance_modulus(z) + k_r - SDSS_TO_AB_OFFSET_MAG[R_BAND])[:, None]
    roll_off = completeness(m - (r_faint_limit - R_FAINT_LIMIT))
    density = schechter_density(abs_mag, m_star(z)[:, None]) * roll_off[None, :]
    density = np.where((abs_mag <= LF_M_FAINTEST) & (abs_mag >= LF_M_BRIGHTEST), density, 0.0)
    cumulative = np.concatenate(
        [np.zeros((len(z), 1)), np.cumsum(0.5 * (density[:, 1:] + density[:, :-1]) * np.diff(m), axis=1)],
        axis=1,
    )
    total = cumulative[:, -1]
    volume = np.asarray(cosmology().differential_comoving_volume(z).value)  # type: ignore[attr-defined]
    m_cdf = cumulative / np.where(total > 0, total, 1.0)[:, None]
    return SelectionTable(z=z, m=m, z_density=volume * total, m_cdf=m_cdf)


def _interp_mixes(knot_z: FloatArray, mixes: FloatArray, z: FloatArray) -> FloatArray:
    return np.stack([np.interp(z, knot_z, mixes[:, t]) for t in range(mixes.shape[1])], axis=1)


def _sample_from_density(rng: np.random.Generator, x: FloatArray, density: FloatArray, n: int) -> FloatArray:
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(x))])
    return np.interp(rng.random(n) * cumulative[-1], cumulative, x)


def _apparent_r(table: SelectionTable, z: FloatArray, rank: FloatArray) -> FloatArray:
    """Invert the m-CDF at each galaxy's redshift (nearest grid row) at quantile ``rank``."""
    rows = np.clip(
        np.rint((z - table.z[0]) / (table.z[1] - table.z[0])).astype(np.int64), 0, len(table.z) - 1
    )
    out = np.empty(len(z))
    for row in np.unique(rows):
        chosen = rows == row
        out[chosen] = np.interp(rank[chosen], table.m_cdf[row], table.m)
    return out


# --- drawing galaxies -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PopulationModel:
    """Everything a worker needs to draw galaxies: precomputed in the parent, ~1 MB to pickle."""

    grid: TemplateGrid
    knots: ColourKnots
    selection: SelectionTable
    lrg_z_grid: FloatArray
    lrg_z_density: FloatArray


@cache
def population_model() -> PopulationModel:
    """Fit the colour knots and tabulate the selection (~1 s once kcorrect's grid exists).

    Knots sit at each bin's median redshift under the model's own n(z), found with knots at the bin
    centres first (n(z) depends on the mixes only through the K-correction, so one pass is enough).
    """
    intrinsic = intrinsic_colour_targets()
    centres = 0.5 * (intrinsic["z_lo"] + intrinsic["z_hi"]).to_numpy()
    first = fit_colour_knots(centres, intrinsic)
    provisional = selection_table(first.redshift, first.mixes[:, 1])
    knot_z = np.array(
        [
            _median_in(provisional.z, provisional.z_density, lo, hi)
            for lo, hi in zip(intrinsic["z_lo"], intrinsic["z_hi"], strict=True)
        ]
    )
    knots = fit_colour_knots(knot_z, intrinsic)
    lrg_z, lrg_density = lrg_redshift_density()
    return PopulationModel(
        template_grid(), knots, selection_table(knots.redshift, knots.mixes[:, 1]), lrg_z, lrg_density
    )


def lrg_redshift_density() -> tuple[FloatArray, FloatArray]:
    grid = template_grid()
    z = np.linspace(*LRG_Z_RANGE, 300)
    lrg = _lrg_mix(grid, len(z))
    limit = LRG_R_LIMIT - distance_modulus(z) - k_correction_r(grid, z, lrg) + SDSS_TO_AB_OFFSET_MAG[R_BAND]
    selected = special.ndtr((limit - (LRG_M_MEAN - LRG_EVOLUTION_Q * (z - 0.1))) / LRG_M_SIGMA)
    volume = np.asarray(cosmology().differential_comoving_volume(z).value)  # type: ignore[attr-defined]
    return z, volume * selected


def _lrg_mix(grid: TemplateGrid, n: int) -> FloatArray:
    mix = np.zeros((n, N_TEMPLATES))
    mix[:, LRG_TEMPLATE] = 1.0
    return grid.normalise_r(mix)


def draw_population(
    model: PopulationModel, rng: np.random.Generator, n: int, lrg_fraction: float = 0.0
) -> Population:
    """Draw ``n`` galaxies. Every random number comes from ``rng`` in a fixed order (deterministic)."""
    if not 0.0 <= lrg_fraction <= 1.0:
        raise ValueError(f"lrg_fraction must be in [0, 1], got {lrg_fraction}")
    is_lrg = rng.random(n) < lrg_fraction
    main_z = _sample_from_density(rng, model.selection.z, model.selection.z_density, n)
    lrg_z = _sample_from_density(rng, model.lrg_z_grid, model.lrg_z_density, n)
    z = np.where(is_lrg, lrg_z, main_z)

    score = rng.standard_normal(n)
    bulge_fraction = _bulge_fraction(rng, score)
    bulge_fraction = np.where(is_lrg, rng.uniform(0.85, 1.0, n), bulge_fraction)
    bulge_mix, disk_mix = _component_mixes(model, rng, z, score, bulge_fraction)
    lrg_mix = _lrg_mix(model.grid, n)
    bulge_mix = np.where(is_lrg[:, None], lrg_mix, bulge_mix)
    disk_mix = np.where(is_lrg[:, None], lrg_mix, disk_mix)
    total_mix = bulge_fraction[:, None] * bulge_mix + (1.0 - bulge_fraction[:, None]) * disk_mix

    mu = distance_modulus(z)
    k_r = k_correction_r(model.grid, z, total_mix)
    # Gaussian copula: redder (higher score) galaxies sit nearer the bright end at their redshift.
    rho = LUMINOSITY_COLOUR_CORRELATION
    rank = special.ndtr(-rho * score + np.sqrt(1 - rho**2) * rng.standard_normal(n))
    apparent_r = _apparent_r(model.selection, z, rank)
    # The limits are in the SDSS magnitude system, the templates in AB: r_AB = r_SDSS + 0.010.
    dm_plus_k = mu + k_r - SDSS_TO_AB_OFFSET_MAG[R_BAND]
    abs_mag = np.where(is_lrg, _lrg_absolute_magnitude(rng, z, dm_plus_k), apparent_r - dm_plus_k)

    # Observed fluxes: each component scaled to its share of the rest-frame r light.
    luminosity = 10.0 ** (-0.4 * abs_mag)  # rest-frame r maggies at 10 pc
    bulge_flux = 1e9 * model.grid.observed_maggies(z, bulge_mix * (luminosity * bulge_fraction)[:, None], mu)
    disk_flux = 1e9 * model.grid.observed_maggies(
        z, disk_mix * (luminosity * (1 - bulge_fraction))[:, None], mu
    )

    r50_kpc = _half_light_kpc(rng, abs_mag, bulge_fraction)
    scale = arcsec_per_kpc(z)
    bulge_hlr = np.minimum(r50_kpc * (0.45 + 0.55 * bulge_fraction) * scale, MAX_HALF_LIGHT_ARCSEC)
    disk_hlr = np.minimum(r50_kpc * (1.0 + 0.3 * bulge_fraction) * scale, MAX_HALF_LIGHT_ARCSEC)
    cos_inclination = rng.random(n)
    disk_q = np.sqrt((1 - DISK_THICKNESS_Q0**2) * cos_inclination**2 + DISK_THICKNESS_Q0**2)
    bulge_q = rng.uniform(0.55, 1.0, n)
    position_angle = rng.uniform(0.0, np.pi, n)

    galaxy_type = np.searchsorted(-np.asarray(TYPE_BULGE_EDGES), -bulge_fraction, side="right").astype(
        np.int8
    )
    return Population(
        redshift=z,
        abs_mag_r=abs_mag,
        colour_score=np.where(is_lrg, np.nan, score),
        bulge_fraction=bulge_fraction,
        bulge_mix=bulge_mix,
        disk_mix=disk_mix,
        bulge_flux=bulge_flux,
        disk_flux=disk_flux,
        r50_kpc=r50_kpc,
        bulge_hlr_arcsec=bulge_hlr,
        disk_hlr_arcsec=disk_hlr,
        bulge_q=bulge_q,
        disk_q=disk_q,
        position_angle_rad=position_angle,
        galaxy_type=galaxy_type,
        is_lrg=is_lrg,
    )


def _bulge_fraction(rng: np.random.Generator, score: FloatArray) -> FloatArray:
    """Red galaxies are bulge dominated, blue ones disk dominated (logistic in colour score, with scatter)."""
    return np.asarray(special.expit(1.6 * score - 0.4 + 0.6 * rng.standard_normal(len(score))))


def _component_mixes(
    model: PopulationModel,
    rng: np.random.Generator,
    z: FloatArray,
    score: FloatArray,
    bulge_fraction: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Bulge redder, disk bluer than the galaxy's score, so that their light-weighted sum sits near it."""
    bulge_score = score + BULGE_DISK_SCORE_SPLIT * (1.0 - bulge_fraction)
    disk_score = score - BULGE_DISK_SCORE_SPLIT * bulge_fraction
    bulge = mixes_at(model.grid, model.knots, z, bulge_score)
    disk = mixes_at(model.grid, model.knots, z, disk_score)
    jitter = np.exp(MIX_JITTER * rng.standard_normal((len(z), N_TEMPLATES)))
    normalise = model.grid.normalise_r
    return normalise(bulge * jitter), normalise(disk * jitter)


def _lrg_absolute_magnitude(rng: np.random.Generator, z: FloatArray, dm_plus_k: FloatArray) -> FloatArray:
    """LRGs: a Gaussian LF, evolving like M*, truncated at the LRG flux limit."""
    mean = LRG_M_MEAN - LRG_EVOLUTION_Q * (z - 0.1)
    below_limit = special.ndtr((LRG_R_LIMIT - dm_plus_k - mean) / LRG_M_SIGMA)
    quantile = np.clip(rng.random(len(z)) * below_limit, 1e-12, 1 - 1e-12)
    return np.asarray(mean + LRG_M_SIGMA * special.ndtri(quantile))


def _half_light_kpc(rng: np.random.Generator, abs_mag: FloatArray, bulge_fraction: FloatArray) -> FloatArray:
    """Shen et al. (2003) R50(M): the early-type relation weighted by bulge fraction, lognormal scatter."""
    log_early = -0.4 * SHEN_EARLY_A * abs_mag + SHEN_EARLY_B
    log_late = (
        -0.4 * SHEN_LATE_ALPHA * abs_mag
        + (SHEN_LATE_BETA - SHEN_LATE_ALPHA) * np.log10(1 + 10 ** (-0.4 * (abs_mag - SHEN_LATE_M0)))
        + SHEN_LATE_GAMMA
    )
    sigma_ln = SHEN_SIGMA2 + (SHEN_SIGMA1 - SHEN_SIGMA2) / (1 + 10 ** (-0.8 * (abs_mag - SHEN_LATE_M0)))
    log_r = bulge_fraction * log_early + (1 - bulge_fraction) * log_late
    return np.asarray(10.0**log_r * np.exp(sigma_ln * rng.standard_normal(len(abs_mag))))


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
