"""Sizes: the SDSS size-luminosity relations of Shen et al. (2003), seen at the galaxy's distance.

Half-light radius in kpc from the absolute magnitude, the early- or late-type relation weighted by bulge
fraction, with their scatter; then converted to arcsec with the angular-diameter distance, so angular size
shrinks with distance. Bulges are more compact than the whole galaxy, disks more extended.
"""

from __future__ import annotations

import numpy as np

from astrospect.simulate.spectra import FloatArray

# Shen et al. (2003, MNRAS 343, 978) r-band size-luminosity relations, R50 in kpc:
SHEN_EARLY_A, SHEN_EARLY_B = 0.65, -5.06  # log R = -0.4 a M + b
SHEN_LATE_ALPHA, SHEN_LATE_BETA, SHEN_LATE_GAMMA, SHEN_LATE_M0 = 0.21, 0.53, -1.31, -20.52
SHEN_SIGMA1, SHEN_SIGMA2 = 0.48, 0.25  # sigma(ln R): faint galaxies scatter more
MAX_HALF_LIGHT_ARCSEC = 12.0  # nearby giants are capped: the cutout is 12.7" across anyway


def half_light_kpc(rng: np.random.Generator, abs_mag: FloatArray, bulge_fraction: FloatArray) -> FloatArray:
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


def component_half_light_arcsec(
    r50_kpc: FloatArray, bulge_fraction: FloatArray, arcsec_per_kpc: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Half-light radii (arcsec) of the bulge and of the disk, capped at MAX_HALF_LIGHT_ARCSEC."""
    bulge_hlr = np.minimum(r50_kpc * (0.45 + 0.55 * bulge_fraction) * arcsec_per_kpc, MAX_HALF_LIGHT_ARCSEC)
    disk_hlr = np.minimum(r50_kpc * (1.0 + 0.3 * bulge_fraction) * arcsec_per_kpc, MAX_HALF_LIGHT_ARCSEC)
    return bulge_hlr, disk_hlr
