"""Who enters the sample: the luminosity function, the flux limits and completeness, and so n(z).

n(z) follows from an evolving Schechter luminosity function (Blanton et al. 2003, r band) seen through the
flux limits 14.0 <= r <= 17.77 (the SDSS main galaxy sample's target limit, applied to the observed total
r): ``n(z) ∝ dV/dz * (fraction of the LF bright enough at z)``. The apparent magnitude itself is drawn
later, from the spectral mixture (:mod:`.mixture`), between 14.0 and the calibration query's 20.

An optional **luminous red galaxy tail** (SDSS LRG-like: kcorrect's LRG template, a narrow luminous
Gaussian LF, r <= 19.5, 0.15 < z < 0.65) makes the full and clipped (z <= 0.4) training sets differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from astrospect.simulate.cosmology import cosmology, distance_modulus, k_correction_r
from astrospect.simulate.spectra import (
    LRG_TEMPLATE,
    N_TEMPLATES,
    R_BAND,
    SDSS_TO_AB_OFFSET_MAG,
    FloatArray,
    TemplateGrid,
    template_grid,
)
from astrospect.simulate.targets import QUERY_MAG_LIMIT

# --- survey selection -------------------------------------------------------------------------------------
R_FAINT_LIMIT = 17.77  # SDSS main galaxy sample target limit (Strauss et al. 2002), on the observed total r
R_BRIGHT_LIMIT = 14.0  # brighter galaxies are lost to saturation and fibre cross-talk limits
# The calibration catalogue took every spectroscopic galaxy with all bands < 20, so 5.3% of it is fainter
# than the main sample's limit (other target classes: 37% at 0.2 < z < 0.3, and far bluer). The mixture's
# r given z holds that tail (times the calibrated magnitude weight, which gives it its real share at
# z > 0.2); cutting it at R_FAINT_LIMIT made the z > 0.2 galaxies 0.16 mag too red in u-g.
R_SAMPLE_FAINTEST = QUERY_MAG_LIMIT
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


def m_star(z: npt.ArrayLike) -> FloatArray:
    return LF_M_STAR - LF_EVOLUTION_Q * (np.asarray(z, dtype=np.float64) - 0.1)


@dataclass(frozen=True)
class SelectionTable:
    """The joint density of (z, apparent r) of the selected sample on a grid, and its marginal n(z).

    At each z the apparent magnitude m maps to M = m - DM(z) - K(z) (K of the median galaxy), where the
    Schechter LF gives the density; times the sample completeness at m; times the comoving volume.
    """

    z: FloatArray  # (nz,)
    m: FloatArray  # (nm,)
    z_density: FloatArray  # (nz,)


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
    z, m, cumulative = _selected_counts(median_mix_z, median_mixes, r_faint_limit)
    volume = np.asarray(cosmology().differential_comoving_volume(z).value)  # type: ignore[attr-defined]
    return SelectionTable(z=z, m=m, z_density=volume * cumulative[:, -1])


@dataclass(frozen=True)
class FaintExtension:
    """A night deeper than the calibration set: its galaxies fainter than R_FAINT_LIMIT.

    The calibration set's main sample stops at the SDSS limit: beyond it the fitted mixture holds only the
    catalogue's other target classes (its ~5% fainter galaxies), not the main sample's fainter members;
    for those only the luminosity function speaks. At each z, this is the share of the deeper sample that
    is fainter than R_FAINT_LIMIT and the distribution of their r.
    """

    z: FloatArray  # (nz,)
    fraction: FloatArray  # (nz,)
    m: FloatArray  # (nm,) from R_FAINT_LIMIT to the night's limit
    cumulative: FloatArray  # (nz, nm): the CDF of m at each z, 0 at R_FAINT_LIMIT, 1 at the limit

    def extend(self, rng: np.random.Generator, z: FloatArray, apparent_r: FloatArray) -> FloatArray:
        """Replace the r of the galaxies that fall in the deeper part by an r drawn from the LF there."""
        rows = np.clip(np.searchsorted(self.z, z), 0, len(self.z) - 1)
        fainter = rng.random(len(z)) < self.fraction[rows]
        rank = rng.random(len(z))
        drawn = np.array(
            [np.interp(q, self.cumulative[row], self.m) for q, row in zip(rank, rows, strict=True)]
        )
        return np.where(fainter, drawn, apparent_r)


def faint_extension(
    median_mix_z: FloatArray, median_mixes: FloatArray, r_faint_limit: float
) -> FaintExtension:
    if not r_faint_limit > R_FAINT_LIMIT:
        raise ValueError(f"a faint extension needs a limit fainter than {R_FAINT_LIMIT}, got {r_faint_limit}")
    z, m, cumulative = _selected_counts(median_mix_z, median_mixes, r_faint_limit)
    at_limit = np.array([np.interp(R_FAINT_LIMIT, m, row) for row in cumulative])
    total = cumulative[:, -1]
    fraction = np.where(total > 0, (total - at_limit) / np.where(total > 0, total, 1.0), 0.0)
    deeper = np.linspace(R_FAINT_LIMIT, r_faint_limit, 50)
    rows = np.array([np.interp(deeper, m, row) for row in cumulative]) - at_limit[:, None]
    span = np.maximum(rows[:, -1:], 1e-300)
    return FaintExtension(z=z, fraction=fraction, m=deeper, cumulative=np.clip(rows / span, 0.0, 1.0))


def _selected_counts(
    median_mix_z: FloatArray, median_mixes: FloatArray, r_faint_limit: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(z, m, cumulative): per unit comoving volume, the selected galaxies at z brighter than each m."""
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
    return z, m, cumulative


def _interp_mixes(knot_z: FloatArray, mixes: FloatArray, z: FloatArray) -> FloatArray:
    return np.stack([np.interp(z, knot_z, mixes[:, t]) for t in range(mixes.shape[1])], axis=1)


def sample_from_density(rng: np.random.Generator, x: FloatArray, density: FloatArray, n: int) -> FloatArray:
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(x))])
    return np.interp(rng.random(n) * cumulative[-1], cumulative, x)


# --- the luminous red galaxy tail ------------------------------------------------------------------------
def lrg_redshift_density() -> tuple[FloatArray, FloatArray]:
    grid = template_grid()
    z = np.linspace(*LRG_Z_RANGE, 300)
    lrg = lrg_mix(grid, len(z))
    limit = LRG_R_LIMIT - distance_modulus(z) - k_correction_r(grid, z, lrg) + SDSS_TO_AB_OFFSET_MAG[R_BAND]
    selected = special.ndtr((limit - (LRG_M_MEAN - LRG_EVOLUTION_Q * (z - 0.1))) / LRG_M_SIGMA)
    volume = np.asarray(cosmology().differential_comoving_volume(z).value)  # type: ignore[attr-defined]
    return z, volume * selected


def lrg_mix(grid: TemplateGrid, n: int) -> FloatArray:
    mix = np.zeros((n, N_TEMPLATES))
    mix[:, LRG_TEMPLATE] = 1.0
    return grid.normalise_r(mix)


def lrg_absolute_magnitude(rng: np.random.Generator, z: FloatArray, dm_plus_k: FloatArray) -> FloatArray:
    """LRGs: a Gaussian LF, evolving like M*, truncated at the LRG flux limit."""
    mean = LRG_M_MEAN - LRG_EVOLUTION_Q * (z - 0.1)
    below_limit = special.ndtr((LRG_R_LIMIT - dm_plus_k - mean) / LRG_M_SIGMA)
    quantile = np.clip(rng.random(len(z)) * below_limit, 1e-12, 1 - 1e-12)
    return np.asarray(mean + LRG_M_SIGMA * special.ndtri(quantile))
