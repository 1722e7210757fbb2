"""The template mix closest to a galaxy's colours: an NNLS fit of kcorrect's five templates, and the warp.

A galaxy is the non-negative mix of kcorrect's five templates (see :mod:`.spectra`) closest to its colours
(an NNLS fit, as kcorrect fits real galaxies), its continuum **warped** by a smooth positive function of
wavelength for what five templates cannot span: a small correction, so the mix, which sets the galaxy's
type and so its image, agrees with its colours.
"""

from __future__ import annotations

import numpy as np

from astrospect.simulate.mixture import SpectralMixture
from astrospect.simulate.spectra import (
    N_DEFAULT_TEMPLATES,
    N_TEMPLATES,
    R_BAND,
    SDSS_TO_AB_OFFSET_MAG,
    FloatArray,
    TemplateGrid,
    colours_of,
)

# NNLS fits of the templates to colours weight the bands by typical SDSS model-magnitude errors at r ~ 17.
FIT_MAG_ERRORS = np.array([0.05, 0.02, 0.02, 0.02, 0.03])
NNLS_MAX_ITERATIONS = 200  # scipy's default (3 x templates) gives up on a few nearly collinear mixes


def shares_to_mix(grid: TemplateGrid, shares: FloatArray) -> FloatArray:
    """Light shares (n, 5) of the default templates to a unit-rest-r mix over the combined basis."""
    mix = np.zeros((len(shares), N_TEMPLATES))
    mix[:, :N_DEFAULT_TEMPLATES] = shares / grid.maggies[0, R_BAND, :N_DEFAULT_TEMPLATES]
    return mix


def rest_g_r(grid: TemplateGrid, mixes: FloatArray) -> FloatArray:
    rest = np.atleast_2d(mixes) @ grid.maggies[0].T
    return np.asarray(-2.5 * np.log10(rest[:, 1] / rest[:, 2]))


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
