"""Distances, angular sizes and the r-band K-correction: astropy's Planck18 cosmology.

The simulator places every galaxy in one flat Lambda-CDM universe, Planck 2018's, so that its distance
modulus, its angular size per kiloparsec and the comoving volume behind n(z) agree with each other.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

from astrospect.simulate.spectra import R_BAND, FloatArray, TemplateGrid


@cache
def cosmology() -> object:
    from astropy.cosmology import Planck18

    return Planck18


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
