"""Galaxy spectra as kcorrect template mixes, turned into SDSS ugriz fluxes at any redshift.

kcorrect (Blanton & Roweis 2007) does the physics: its five default v4 templates (plus its luminous red
galaxy template) are redshifted and projected through the SDSS ugriz response curves (2.5 m telescope,
airmass 1.3) into a design matrix ``A(z)`` of shape (bands, templates). A galaxy is a non-negative mix of
templates; its observed colours move with redshift as the 4000 A break crosses from g into r.

Projecting spectra is slow (~3 ms a redshift), so :func:`template_grid` projects once on a fine redshift grid
and galaxies interpolate linearly in it (a grid step of 0.01 keeps the interpolation error below
0.001 mag). The grid is a few kB of numbers, passed to worker processes instead of recomputed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from astrospect.settings import BANDS

FloatArray = npt.NDArray[np.float64]

SDSS_RESPONSES = [f"sdss_{band}0" for band in BANDS]  # kcorrect's SDSS 2.5 m curves at airmass 1.3
# kcorrect's own AB offsets (Eisenstein, sdss-calib/1152): m_AB = m_SDSS + offset. Pixels are in the SDSS
# (database) nanomaggy system, as the real cutouts are, so model AB fluxes are converted back with these.
SDSS_TO_AB_OFFSET_MAG = np.array([-0.036, 0.012, 0.010, 0.028, 0.040])
GRID_Z_MAX = 0.8
GRID_STEP = 0.01
N_DEFAULT_TEMPLATES = 5  # kcorrect-default-v4: the basis for ordinary galaxies
LRG_TEMPLATE = N_DEFAULT_TEMPLATES  # index of kcorrect-lrg1-v4 in the combined basis
N_TEMPLATES = N_DEFAULT_TEMPLATES + 1
R_BAND = BANDS.index("r")


@dataclass(frozen=True)
class TemplateGrid:
    """kcorrect's design matrix on a redshift grid: AB maggies at 10 pc per unit template coefficient."""

    redshift: FloatArray  # (nz,)
    maggies: FloatArray  # (nz, 5 bands, N_TEMPLATES)

    def design_matrix(self, z: npt.ArrayLike) -> FloatArray:
        """``A(z)`` for each galaxy, linearly interpolated in redshift: (n, 5, N_TEMPLATES)."""
        z = np.atleast_1d(np.asarray(z, dtype=np.float64))
        if np.any(z < 0) or np.any(z > self.redshift[-1]):
            raise ValueError(
                f"redshift outside the template grid [0, {self.redshift[-1]}]: {z.min()}..{z.max()}"
            )
        position = z / (self.redshift[1] - self.redshift[0])
        low = np.minimum(position.astype(np.int64), len(self.redshift) - 2)
        weight = (position - low)[:, None, None]
        return (1.0 - weight) * self.maggies[low] + weight * self.maggies[low + 1]

    def rest_frame_r(self, coeffs: npt.ArrayLike) -> FloatArray:
        """Rest-frame (z = 0) r-band maggies at 10 pc of each mix: the absolute-magnitude normalisation."""
        return np.asarray(coeffs, dtype=np.float64) @ self.maggies[0, R_BAND]

    def normalise_r(self, coeffs: npt.ArrayLike) -> FloatArray:
        """Scale each mix (rows) to unit rest-frame r flux, so coefficients mix r-band light."""
        coeffs = np.atleast_2d(np.asarray(coeffs, dtype=np.float64))
        return coeffs / self.rest_frame_r(coeffs)[:, None]

    def observed_maggies(
        self, z: npt.ArrayLike, coeffs: npt.ArrayLike, distance_modulus: npt.ArrayLike
    ) -> FloatArray:
        """Observed SDSS-system maggies (n, 5) of mixes ``coeffs`` (n, N_TEMPLATES) at redshift ``z``.

        kcorrect's templates are fluxes at 10 pc, redshifted conserving bolometric flux, so the observed flux
        is the projected template dimmed by the distance modulus (m = M + DM + K, Blanton & Roweis 2007).
        """
        design = self.design_matrix(z)
        ab_maggies = np.einsum("nbt,nt->nb", design, np.atleast_2d(coeffs))
        dimming = 10.0 ** (-0.4 * np.asarray(distance_modulus, dtype=np.float64))
        return ab_to_sdss(ab_maggies * np.atleast_1d(dimming)[:, None])


def ab_to_sdss(ab_maggies: npt.ArrayLike) -> FloatArray:
    """AB maggies to the SDSS (database) system, the inverse of ``kcorrect.utils.sdss_ab_correct``."""
    return np.asarray(ab_maggies, dtype=np.float64) * 10.0 ** (0.4 * SDSS_TO_AB_OFFSET_MAG)


def _template_path(name: str) -> str:
    import kcorrect

    return os.path.join(kcorrect.KCORRECT_DIR, "data", "templates", name)


@cache
def sdss_fitter() -> object:
    """kcorrect's SDSS fitter on the default v4 templates (for NNLS fits of mixes to colours)."""
    import kcorrect.kcorrect

    n_grid = round(GRID_Z_MAX / GRID_STEP) + 1
    return kcorrect.kcorrect.KcorrectSDSS(redshift_range=[0.0, GRID_Z_MAX], nredshift=n_grid)


@cache
def template_grid() -> TemplateGrid:
    """Project the default v4 templates and the LRG template through ugriz on the redshift grid (~2 s)."""
    import kcorrect.kcorrect
    import kcorrect.template

    n_grid = round(GRID_Z_MAX / GRID_STEP) + 1
    redshift = np.linspace(0.0, GRID_Z_MAX, n_grid)
    default = sdss_fitter()
    lrg = kcorrect.kcorrect.Kcorrect(
        responses=SDSS_RESPONSES,
        templates=kcorrect.template.Template(filename=_template_path("kcorrect-lrg1-v4.fits")),
        redshift_range=[0.0, GRID_Z_MAX],
        nredshift=n_grid,
    )
    maggies = np.concatenate([default.Amatrix(redshift), lrg.Amatrix(redshift)], axis=2)  # type: ignore[attr-defined]
    return TemplateGrid(redshift=redshift, maggies=maggies.astype(np.float64))


def fit_mix_to_colours(z: float, colours: npt.ArrayLike) -> FloatArray:
    """The non-negative default-template mix whose SDSS colours (u-g, g-r, r-i, i-z) at ``z`` are ``colours``.

    This is kcorrect's own NNLS fit, given maggies built from the colours (r = 1) with 1% errors. Returns
    the mix over the combined basis (LRG coefficient 0), scaled to unit rest-frame r flux.
    """
    u_g, g_r, r_i, i_z = np.asarray(colours, dtype=np.float64)
    magnitudes = np.array([g_r + u_g, g_r, 0.0, -r_i, -r_i - i_z])
    maggies = 10.0 ** (-0.4 * magnitudes)
    fitter = sdss_fitter()
    coeffs = np.asarray(fitter.fit_coeffs(redshift=z, maggies=maggies, ivar=1.0 / (0.01 * maggies) ** 2))  # type: ignore[attr-defined]
    full = np.zeros(N_TEMPLATES)
    full[:N_DEFAULT_TEMPLATES] = coeffs
    return template_grid().normalise_r(full)[0]


def colours_of(maggies: npt.ArrayLike) -> FloatArray:
    """u-g, g-r, r-i, i-z from maggies (n, 5)."""
    magnitudes = -2.5 * np.log10(np.atleast_2d(np.asarray(maggies, dtype=np.float64)))
    return magnitudes[:, :-1] - magnitudes[:, 1:]


@dataclass(frozen=True)
class Photometry:
    """Per-band detector facts derived from kcorrect's response curves (used for noise and stars)."""

    electrons_per_nanomaggy: FloatArray  # (5,) for one 53.907 s SDSS drift-scan exposure
    solar_magnitudes: FloatArray  # (5,) absolute magnitudes of the Sun (AB): a G-type star's colours
    effective_wavelength_angstrom: FloatArray  # (5,) for the wavelength dependence of seeing


# The SDSS 2.5 m primary is 2.5 m across with a 1.3 m central obstruction (secondary and baffles).
SDSS_COLLECTING_AREA_M2 = np.pi / 4.0 * (2.5**2 - 1.3**2)
SDSS_EXPOSURE_S = 53.907  # drift-scan time across one CCD
_PLANCK_J_S = 6.62607015e-34
_NANOMAGGY_W_M2_HZ = 3631e-9 * 1e-26  # 1 nanomaggy = 3.631 microJansky (AB)


@cache
def detector_photometry() -> Photometry:
    """Electrons per nanomaggy in each band: photons from a flat f_nu source through the response curve.

    The response curves give detected electrons per photon at the top of the atmosphere, so
    N_e = f_nu / h * integral(R(lambda) dlambda / lambda) * area * exposure. For r this is ~920 e-/nMgy,
    i.e. a 20th-magnitude galaxy yields ~9e4 electrons, about 2e4 counts at SDSS's gain of 4.7.
    """
    import kcorrect.response

    responses = kcorrect.response.ResponseDict()
    electrons = np.zeros(len(BANDS))
    solar = np.zeros(len(BANDS))
    wavelength = np.zeros(len(BANDS))
    for index, name in enumerate(SDSS_RESPONSES):
        responses.load_response(name)
        response = responses[name]
        wave = np.asarray(response.wave, dtype=np.float64)
        throughput = np.asarray(response.response, dtype=np.float64)
        photons_per_m2_s = _NANOMAGGY_W_M2_HZ / _PLANCK_J_S * np.trapezoid(throughput / wave, wave)
        electrons[index] = photons_per_m2_s * SDSS_COLLECTING_AREA_M2 * SDSS_EXPOSURE_S
        solar[index] = float(response.solar_magnitude)
        wavelength[index] = float(response.lambda_eff)
    return Photometry(
        electrons_per_nanomaggy=electrons, solar_magnitudes=solar, effective_wavelength_angstrom=wavelength
    )
