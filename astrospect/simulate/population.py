"""Who the simulated galaxies are: redshift, luminosity, spectrum, dust, bulge fraction, size, shape.

The population follows the SDSS main galaxy sample:

* **Redshift and luminosity**: n(z) from an evolving Schechter luminosity function (Blanton et al. 2003,
  r band) seen through the flux limits 14.0 <= r <= 17.77 (the main-sample target limit, applied to the
  observed total r): ``n(z) ∝ dV/dz * (fraction of the LF bright enough at z)``, times the calibrated
  redshift weight (real over drawn n(z) inside the query, see :mod:`.calibrate`). The apparent magnitude
  is drawn from the mixture below, conditional on z, between 14.0 and the calibration query's 20: like
  the real catalogue, about 5% of the galaxies are fainter than 17.77 (its other target classes). Distances, volumes and angular
  sizes come from astropy's Planck18 cosmology.
* **Spectra**: each galaxy's noiseless colours are drawn from a Gaussian mixture over (ln z, r, u-g, g-r,
  r-i, i-z) fitted to 20,594 real SDSS galaxies (``spectral_mixture.json``, written by :mod:`.calibrate`),
  conditional on its redshift and magnitude, so the joint colour distribution at each redshift is the real
  one and red galaxies are more luminous as they really are. The galaxy is the non-negative mix of
  kcorrect's five templates (see :mod:`.spectra`) closest to those colours (an NNLS fit, as kcorrect fits
  real galaxies), its continuum **warped** by a smooth positive function of wavelength for what five
  templates cannot span: a small correction, so the mix, which sets the galaxy's type and so its image,
  agrees with its colours. Lines, dust and inclination act after the warp; the mixture was deconvolved of
  the colour scatter they add, so they do not add it twice.
* **Emission lines** are scaled by a lognormal factor of the galaxy's own (mean 1, LINE_LOG10_SCATTER dex),
  so galaxies with one continuum differ in line strength.
* **Internal dust** follows the disk's inclination: disk light is attenuated in the rest frame by Calzetti's
  curve with ``A_r = 1.27 (log10 q)^2`` (Unterborn & Ryden 2008) in the disk's axis ratio q; the bulge sits
  half behind the disk. The real galaxies the mixture was fitted to are seen at random inclinations, so
  their mixes carry the mean attenuation: each component is attenuated by its own minus that mean.
* **Galactic extinction**: E(B-V) per galaxy from a lognormal like SFD's over the SDSS footprint (median
  0.03), applied with Schlafly & Finkbeiner (2011)'s SDSS coefficients. The real model magnitudes are not
  corrected for it, so the mixture was fitted to them de-reddened by the mean E(B-V).
* **Morphology follows colour**: red galaxies are bulge dominated. The bulge mix is moved toward the red
  galaxies' mix and the disk's away from it, keeping their light-weighted sum, so galaxies carry colour
  gradients.
* **Sizes** follow the SDSS size-luminosity relations of Shen et al. (2003): half-light radius in kpc from
  the absolute magnitude, early- or late-type relation weighted by bulge fraction, with their scatter;
  then converted to arcsec with the angular-diameter distance, so angular size shrinks with distance.
* An optional **luminous red galaxy tail** (SDSS LRG-like: kcorrect's LRG template, a narrow luminous
  Gaussian LF, r <= 19.5, 0.15 < z < 0.65) makes the full and clipped (z <= 0.4) training sets differ.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

from astrospect.simulate.spectra import (
    LRG_TEMPLATE,
    N_DEFAULT_TEMPLATES,
    N_TEMPLATES,
    R_BAND,
    SDSS_TO_AB_OFFSET_MAG,
    TemplateGrid,
    colours_of,
    template_grid,
)
from astrospect.simulate.targets import QUERY_MAG_LIMIT

FloatArray = npt.NDArray[np.float64]

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

# --- spectra ----------------------------------------------------------------------------------------------
MIXTURE_JSON = Path(__file__).with_name("spectral_mixture.json")
MIXTURE_VERSION = 4  # the layout load_mixture reads (calibrate writes it)
# The weights' neutral values (the selection's own n(z), the mixture's own r given z): calibration
# measures each weight on a model without it.
NO_REDSHIFT_WEIGHT: dict[str, Any] = {
    "redshift_weight_z": np.array([0.0]),
    "redshift_weight": np.array([1.0]),
}
NO_MAGNITUDE_WEIGHT: dict[str, Any] = {
    "magnitude_weight_z_edges": np.array([0.0, 1.0]),
    "magnitude_weight_r_edges": np.array([[R_BRIGHT_LIMIT, R_SAMPLE_FAINTEST]]),
    "magnitude_weight": np.array([[1.0]]),
}
# NNLS fits of the templates to colours weight the bands by typical SDSS model-magnitude errors at r ~ 17.
FIT_MAG_ERRORS = np.array([0.05, 0.02, 0.02, 0.02, 0.03])
NNLS_MAX_ITERATIONS = 200  # scipy's default (3 x templates) gives up on a few nearly collinear mixes
LINE_LOG10_SCATTER = 0.2  # galaxy-to-galaxy scatter of line strength at fixed continuum (dex)
# Bulge fraction: logistic in the galaxy's rest-frame g-r (standardised), with scatter.
BULGE_COLOUR_SLOPE, BULGE_OFFSET, BULGE_SCATTER = 1.6, -0.4, 0.6
COLOUR_GRADIENT = 0.5  # the bulge mix moves this far (times the disk's share) toward the red galaxies' mix

# --- dust -------------------------------------------------------------------------------------------------
DISK_THICKNESS_Q0 = 0.2  # intrinsic axis ratio of an edge-on disk (Unterborn & Ryden 2008 find ~0.2)
UNTERBORN_RYDEN_COEFF = 1.27  # disk r-band dimming 1.27 (log10 q)^2 in mag (Unterborn & Ryden 2008)
BULGE_SHARE_BEHIND_DISK = 0.5  # half the bulge's light comes through the disk
# Galactic foreground: E(B-V) lognormal over the SDSS footprint like SFD's (median ~0.03, tail past 0.1).
EBV_MEDIAN, EBV_LOG_SCATTER, EBV_MAX = 0.03, 0.6, 0.5
EBV_MEAN = EBV_MEDIAN * float(np.exp(0.5 * EBV_LOG_SCATTER**2))
# A_band / E(B-V) for SDSS ugriz, Schlafly & Finkbeiner (2011) Table 6 (R_V = 3.1).
SF11_COEFFICIENTS = np.array([4.239, 3.303, 2.285, 1.698, 1.263])

# --- morphology and sizes ---------------------------------------------------------------------------------
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


# --- the spectral mixture -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpectralMixture:
    """A Gaussian mixture over (ln z, r, u-g, g-r, r-i, i-z), deconvolved of the scatter that the
    simulator's own dust and line strengths add; and what calibration measured beside it (see
    :mod:`.calibrate`)."""

    weights: FloatArray  # (K,)
    means: FloatArray  # (K, 6): ln z, r, u-g, g-r, r-i, i-z (colours de-reddened, SDSS system)
    covariances: FloatArray  # (K, 6, 6)
    residual_range: FloatArray  # (2, 4) the smallest and largest colour changes a warp may make (mag)
    knot_redshift: FloatArray  # (n_knots,) median redshift of each calibration bin
    knot_shares: FloatArray  # (n_knots, 5) mean light shares there: the typical galaxy's K-correction
    red_shares: FloatArray  # (5,) mean light shares of the reddest quarter (rest-frame g-r)
    rest_g_r_mean: float  # of the real galaxies' mixes: standardises the colour score
    rest_g_r_std: float
    # The selection's n(z) times this weight is the real sample's n(z) (see :mod:`.calibrate`, step 6):
    # linear between knots, the end values beyond them.
    redshift_weight_z: FloatArray  # (n_weights,)
    redshift_weight: FloatArray  # (n_weights,)
    # The mixture's r given z times this weight is the real sample's r given z (step 6): constant in cells,
    # each redshift bin (edges ``magnitude_weight_z_edges``) with its own r edges.
    magnitude_weight_z_edges: FloatArray  # (n_z + 1,)
    magnitude_weight_r_edges: FloatArray  # (n_z, n_r + 1)
    magnitude_weight: FloatArray  # (n_z, n_r)

    def redshift_weight_at(self, z: FloatArray) -> FloatArray:
        return np.asarray(np.interp(z, self.redshift_weight_z, self.redshift_weight))

    def magnitude_weight_bin(self, z: FloatArray) -> npt.NDArray[np.intp]:
        """The magnitude weight's redshift bin of each z (the end bins beyond the edges)."""
        inner = self.magnitude_weight_z_edges[1:-1]
        return np.asarray(np.searchsorted(inner, z, side="right"), dtype=np.intp)

    def magnitude_weight_on(self, r: FloatArray) -> FloatArray:
        """The weight at each r of a grid, per redshift bin: (n_z, len(r))."""
        cells = [np.searchsorted(edges[1:-1], r, side="right") for edges in self.magnitude_weight_r_edges]
        return np.asarray([weight[cell] for weight, cell in zip(self.magnitude_weight, cells, strict=True)])

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> SpectralMixture:
        """From the fields of ``spectral_mixture.json`` (or of calibration's fit before it is written)."""

        def array(name: str) -> FloatArray:
            return np.asarray(document[name], dtype=np.float64)

        return cls(
            weights=array("weights"),
            means=array("means"),
            covariances=array("covariances"),
            residual_range=array("residual_range"),
            knot_redshift=array("knot_redshift"),
            knot_shares=array("knot_shares"),
            red_shares=array("red_shares"),
            rest_g_r_mean=float(document["rest_g_r_mean"]),
            rest_g_r_std=float(document["rest_g_r_std"]),
            redshift_weight_z=array("redshift_weight_z"),
            redshift_weight=array("redshift_weight"),
            magnitude_weight_z_edges=array("magnitude_weight_z_edges"),
            magnitude_weight_r_edges=array("magnitude_weight_r_edges"),
            magnitude_weight=array("magnitude_weight"),
        )


def load_mixture(path: Path = MIXTURE_JSON) -> SpectralMixture:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{path}: missing; run `python -m astrospect.simulate.calibrate`") from error

    if document.get("version") != MIXTURE_VERSION:
        raise ValueError(
            f"{path}: field 'version': {document.get('version')!r}, this simulator reads version "
            f"{MIXTURE_VERSION}; run `python -m astrospect.simulate.calibrate`"
        )

    return SpectralMixture.from_document(document)


def shares_to_mix(grid: TemplateGrid, shares: FloatArray) -> FloatArray:
    """Light shares (n, 5) of the default templates to a unit-rest-r mix over the combined basis."""
    mix = np.zeros((len(shares), N_TEMPLATES))
    mix[:, :N_DEFAULT_TEMPLATES] = shares / grid.maggies[0, R_BAND, :N_DEFAULT_TEMPLATES]
    return mix


def rest_g_r(grid: TemplateGrid, mixes: FloatArray) -> FloatArray:
    rest = np.atleast_2d(mixes) @ grid.maggies[0].T
    return np.asarray(-2.5 * np.log10(rest[:, 1] / rest[:, 2]))


@dataclass(frozen=True)
class ConditionalMixture:
    """The mixture conditioned on (ln z, r), precomputed per component (Gaussian conditioning)."""

    log_weights: FloatArray  # (K,)
    cond_means: FloatArray  # (K, 2)
    cond_precisions: FloatArray  # (K, 2, 2)
    cond_log_dets: FloatArray  # (K,)
    target_means: FloatArray  # (K, 4)
    regressions: FloatArray  # (K, 4, 2)
    target_cholesky: FloatArray  # (K, 4, 4)

    @classmethod
    def of(cls, mixture: SpectralMixture) -> ConditionalMixture:
        given, target = slice(0, 2), slice(2, None)
        precisions, log_dets, regressions, choleskys = [], [], [], []
        for cov in mixture.covariances:
            precision = np.linalg.inv(cov[given, given])
            regression = cov[target, given] @ precision
            residual = cov[target, target] - regression @ cov[given, target]
            precisions.append(precision)
            log_dets.append(np.linalg.slogdet(cov[given, given])[1])
            regressions.append(regression)
            choleskys.append(np.linalg.cholesky(residual))
        return cls(
            log_weights=np.log(mixture.weights),
            cond_means=mixture.means[:, given],
            cond_precisions=np.array(precisions),
            cond_log_dets=np.array(log_dets),
            target_means=mixture.means[:, target],
            regressions=np.array(regressions),
            target_cholesky=np.array(choleskys),
        )

    def sample_r(
        self,
        z: FloatArray,
        rank: FloatArray,
        limits: tuple[float, float],
        weighted_by: SpectralMixture,
    ) -> FloatArray:
        """Apparent r given z (the mixture's marginal over (z, r), conditioned on z, times the magnitude
        weight of ``weighted_by``), truncated to ``limits``, at quantile ``rank`` of each galaxy."""
        grid = np.linspace(*limits, 400)
        ln_z = np.log(z)  # the mixture's redshift coordinate
        mean_z, mean_r = self.cond_means[:, 0], self.cond_means[:, 1]
        covariance = np.linalg.inv(self.cond_precisions)  # (K, 2, 2): the (ln z, r) block
        var_z, cov_zr, var_r = covariance[:, 0, 0], covariance[:, 0, 1], covariance[:, 1, 1]
        log_w = self.log_weights - 0.5 * ((ln_z[:, None] - mean_z) ** 2 / var_z + np.log(var_z))
        w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
        r_mean = mean_r + cov_zr / var_z * (ln_z[:, None] - mean_z)  # (n, K)
        r_sigma = np.sqrt(var_r - cov_zr**2 / var_z)
        cdf = np.einsum(
            "nk,nkm->nm", w, special.ndtr((grid[None, None, :] - r_mean[:, :, None]) / r_sigma[None, :, None])
        )
        weight = weighted_by.magnitude_weight_on(0.5 * (grid[1:] + grid[:-1]))
        cell_mass = np.diff(cdf, axis=1) * weight[weighted_by.magnitude_weight_bin(z)]
        cdf = np.concatenate([np.zeros((len(cdf), 1)), np.cumsum(cell_mass, axis=1)], axis=1)
        cdf = (cdf - cdf[:, :1]) / np.maximum(cdf[:, -1:] - cdf[:, :1], 1e-300)
        return np.array([np.interp(q, row, grid) for q, row in zip(rank, cdf, strict=True)])

    def sample(self, rng: np.random.Generator, z: FloatArray, r: FloatArray) -> FloatArray:
        """Noiseless colours (n, 4: u-g, g-r, r-i, i-z) drawn from the mixture given each galaxy's z and r."""
        given = np.column_stack([np.log(z), r])
        offset = given[:, None, :] - self.cond_means[None, :, :]  # (n, K, 2)
        mahalanobis = np.einsum("nki,kij,nkj->nk", offset, self.cond_precisions, offset)
        log_p = self.log_weights - 0.5 * (mahalanobis + self.cond_log_dets)
        p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
        cumulative = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
        component = np.minimum((cumulative < rng.random(len(z))[:, None]).sum(axis=1), len(p[0]) - 1)
        unit = rng.standard_normal((len(z), self.target_means.shape[1]))
        mean = self.target_means[component] + np.einsum(
            "nij,nj->ni", self.regressions[component], offset[np.arange(len(z)), component]
        )
        return np.asarray(mean + np.einsum("nij,nj->ni", self.target_cholesky[component], unit))


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


def _sample_from_density(rng: np.random.Generator, x: FloatArray, density: FloatArray, n: int) -> FloatArray:
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(x))])
    return np.interp(rng.random(n) * cumulative[-1], cumulative, x)


# --- drawing galaxies -------------------------------------------------------------------------------------
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


def mean_inclination_dust() -> tuple[float, float]:
    """Mean rest-frame r attenuation of disks and of bulges over random orientations (cos i uniform): what
    the real galaxies the mixture was fitted to carry, and what each galaxy's own dust is taken relative to."""
    disk, bulge = inclination_dust((np.arange(2000) + 0.5) / 2000)
    return float(disk.mean()), float(bulge.mean())


def disk_axis_ratio(cos_inclination: npt.ArrayLike) -> FloatArray:
    """Projected axis ratio of an oblate disk of thickness DISK_THICKNESS_Q0 (Hubble 1926)."""
    cos_i = np.asarray(cos_inclination, dtype=np.float64)
    return np.asarray(np.sqrt((1 - DISK_THICKNESS_Q0**2) * cos_i**2 + DISK_THICKNESS_Q0**2))


def inclination_dust(cos_inclination: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Rest-frame r attenuation (mag) of the disk and of the bulge, against the same galaxy face-on.

    Disk: Unterborn & Ryden (2008)'s 1.27 (log10 q)^2. Bulge: the share behind the disk is dimmed by the
    disk's attenuation, the rest is not.
    """
    disk = UNTERBORN_RYDEN_COEFF * np.log10(disk_axis_ratio(cos_inclination)) ** 2
    behind = BULGE_SHARE_BEHIND_DISK
    bulge = -2.5 * np.log10((1.0 - behind) + behind * 10.0 ** (-0.4 * disk))
    return np.asarray(disk), np.asarray(bulge)


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
    grid, mixture = model.grid, model.mixture
    is_lrg = rng.random(n) < lrg_fraction
    selection = model.selection
    main_z = _sample_from_density(
        rng, selection.z, selection.z_density * mixture.redshift_weight_at(selection.z), n
    )
    lrg_z = _sample_from_density(rng, model.lrg_z_grid, model.lrg_z_density, n)
    z = np.where(is_lrg, lrg_z, main_z)
    apparent_r = model.conditional.sample_r(
        z, rng.random(n), (R_BRIGHT_LIMIT, R_SAMPLE_FAINTEST), weighted_by=mixture
    )
    if model.faint is not None:
        apparent_r = model.faint.extend(rng, z, apparent_r)

    # Colours given redshift and magnitude; the closest template mix, and the warp of the whole galaxy's
    # continuum (bulge and disk alike) for the rest. The mix's rest-frame colour sets the bulge fraction.
    colours = model.conditional.sample(rng, z, apparent_r)
    total_mix, warp = mix_and_warp(grid, mixture, z, colours)
    warp[is_lrg] = 1.0  # the LRG template is its own population, not fitted to the main sample
    score = (rest_g_r(grid, total_mix) - mixture.rest_g_r_mean) / mixture.rest_g_r_std
    bulge_fraction = bulge_fraction_of(score, rng.standard_normal(n))
    bulge_fraction = np.where(is_lrg, rng.uniform(0.85, 1.0, n), bulge_fraction)
    bulge_mix, disk_mix = _component_mixes(total_mix, model.red_mix, bulge_fraction)
    lrg_mix = _lrg_mix(grid, n)
    bulge_mix = np.where(is_lrg[:, None], lrg_mix, bulge_mix)
    disk_mix = np.where(is_lrg[:, None], lrg_mix, disk_mix)

    line_factor = line_factor_of(rng.standard_normal(n))
    cos_inclination = rng.random(n)
    disk_dust, bulge_dust = inclination_dust(cos_inclination)
    disk_dust = np.where(is_lrg, 0.0, disk_dust - model.mean_disk_dust_r)
    bulge_dust = np.where(is_lrg, 0.0, bulge_dust - model.mean_bulge_dust_r)
    ebv = np.minimum(EBV_MEDIAN * np.exp(EBV_LOG_SCATTER * rng.standard_normal(n)), EBV_MAX)

    # Observed fluxes at absolute magnitude 0, each component its share of the rest-frame r light, then
    # scaled to the drawn apparent r (main sample) or to the LRG luminosity function.
    mu = distance_modulus(z)
    foreground = 10.0 ** (-0.4 * np.outer(ebv, SF11_COEFFICIENTS))
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
    r_at_zero = 22.5 - 2.5 * np.log10(bulge_unit[:, R_BAND] + disk_unit[:, R_BAND])
    abs_mag = np.where(is_lrg, _lrg_absolute_magnitude(rng, z, r_at_zero), apparent_r - r_at_zero)
    luminosity = 10.0 ** (-0.4 * abs_mag)[:, None]

    r50_kpc = _half_light_kpc(rng, abs_mag, bulge_fraction)
    scale = arcsec_per_kpc(z)
    bulge_hlr = np.minimum(r50_kpc * (0.45 + 0.55 * bulge_fraction) * scale, MAX_HALF_LIGHT_ARCSEC)
    disk_hlr = np.minimum(r50_kpc * (1.0 + 0.3 * bulge_fraction) * scale, MAX_HALF_LIGHT_ARCSEC)
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
        galaxy_type=galaxy_type,
        is_lrg=is_lrg,
    )


def fit_light_shares(grid: TemplateGrid, z: FloatArray, magnitudes: FloatArray) -> FloatArray:
    """Shares of rest-frame r light (n, 5) of the five default templates (unattenuated, their own lines)
    in the NNLS fit to SDSS-system ``magnitudes`` (n, 5) at redshift ``z``, bands weighted by
    FIT_MAG_ERRORS. Only colours matter: the fit's normalisation is free."""
    from scipy.optimize import nnls

    ab_design = grid.design_matrix(z)[:, :, :N_DEFAULT_TEMPLATES]
    design = ab_design * 10.0 ** (0.4 * SDSS_TO_AB_OFFSET_MAG)[None, :, None]  # to the SDSS system
    relative = 10.0 ** (-0.4 * (magnitudes - magnitudes[:, R_BAND : R_BAND + 1]))
    weight = 1.0 / (0.4 * np.log(10.0) * FIT_MAG_ERRORS[None, :] * relative)
    scale = 1.0 / design[:, R_BAND, :].max(axis=1)  # keeps NNLS's tolerances on a unit scale
    coeffs = np.array(
        [
            nnls(
                design[i] * scale[i] * weight[i][:, None],
                relative[i] * weight[i],
                maxiter=NNLS_MAX_ITERATIONS,
            )[0]
            * scale[i]
            for i in range(len(z))
        ]
    )
    light = coeffs * grid.maggies[0, R_BAND, :N_DEFAULT_TEMPLATES]
    return np.asarray(light / light.sum(axis=1, keepdims=True))


def magnitudes_from_colours(colours: FloatArray) -> FloatArray:
    """(n, 5) magnitudes with r = 0 from (n, 4) adjacent colours u-g, g-r, r-i, i-z."""
    g = colours[:, 1]
    i = -colours[:, 2]
    return np.column_stack([colours[:, 0] + g, g, np.zeros(len(colours)), i, i - colours[:, 3]])


def template_colours(grid: TemplateGrid, z: FloatArray, mixes: FloatArray) -> FloatArray:
    """Noiseless colours (n, 4) of mixes at z: unwarped, unattenuated, their templates' own lines."""
    return colours_of(grid.observed_maggies(z, mixes, np.zeros(len(z))))


def mix_and_warp(
    grid: TemplateGrid, mixture: SpectralMixture, z: FloatArray, colours: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The template mix closest to ``colours`` (n, 4) at z, and the warp that makes up the rest, no larger
    than the calibration galaxies needed (``mixture.residual_range``)."""
    total_mix = shares_to_mix(grid, fit_light_shares(grid, z, magnitudes_from_colours(colours)))
    residuals = np.clip(colours - template_colours(grid, z, total_mix), *mixture.residual_range)
    return total_mix, grid.warp_for(z, total_mix, residuals)


def bulge_fraction_of(colour_score: FloatArray, unit_normal: FloatArray) -> FloatArray:
    """Bulge share of the r light: logistic in the standardised rest-frame g-r, with scatter."""
    return np.asarray(
        special.expit(BULGE_COLOUR_SLOPE * colour_score + BULGE_OFFSET + BULGE_SCATTER * unit_normal)
    )


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
    bulge_mix, disk_mix = _component_mixes(total_mix, red_mix, bulge_fraction)
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


def _component_mixes(
    total_mix: FloatArray, red_mix: FloatArray, bulge_fraction: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Bulge toward the red galaxies' mix, disk away from it, keeping B * bulge + (1 - B) * disk = total.

    The bulge moves COLOUR_GRADIENT * (1 - B) of the way; as far as the disk's coefficients stay
    non-negative (a disk cannot be bluer than its bluest template allows).
    """
    toward_red = red_mix[None, :] - total_mix
    step = COLOUR_GRADIENT * (1.0 - bulge_fraction)
    # disk = total - B / (1 - B) * step * toward_red must stay >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(toward_red > 0, total_mix / toward_red, np.inf).min(axis=1)
    disk_share = np.clip(1.0 - bulge_fraction, 1e-6, None)
    step = np.minimum(step, room * disk_share / np.clip(bulge_fraction, 1e-6, None))
    bulge = total_mix + step[:, None] * toward_red
    disk = total_mix - (bulge_fraction / disk_share * step)[:, None] * toward_red
    return bulge, np.clip(disk, 0.0, None)


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
