"""Galaxy spectra as kcorrect template mixes, turned into SDSS ugriz fluxes at any redshift.

kcorrect (Blanton & Roweis 2007) does the physics: its five default v4 templates (plus its luminous red
galaxy template) are redshifted and projected through the SDSS ugriz response curves (2.5 m telescope,
airmass 1.3) by kcorrect's own projection into a design matrix ``A(z)`` of shape (bands, templates). A
galaxy is a non-negative mix of templates; its observed colours move with redshift as the 4000 A break
crosses from g into r.

Each default template is split into its **continuum** and its **emission lines** (the template minus a
running median, kept only within 20 A of the strong nebular lines), so that a galaxy's line strength can
differ from what its continuum implies: the design matrix is ``continuum + line_factor * lines``. And each
is projected **attenuated in its rest frame**, before redshifting, by Calzetti et al. (2000)'s attenuation
curve (the ``extinction`` package), at a few attenuations ``dust`` (rest-frame r magnitudes), so internal
dust reddens a galaxy as its own spectrum would be reddened.

Real galaxies' colours are not all inside what five templates can span, so a galaxy's continuum can be
**warped** (spectral "mangling", as supernova light-curve and SED-fitting codes do): multiplied by a smooth,
positive function of observed wavelength, piecewise linear in log wavelength between knots at the five
bands' effective wavelengths and flat beyond them. The warp is a sum of WARP_KNOTS "hat" functions that add
up to one, so the grid projects each template times each hat (``warped_continuum``), a galaxy's warp is
five coefficients (all ones: no warp), and its band fluxes stay linear in them: :meth:`TemplateGrid.warp_for`
solves for the coefficients that move a mix's noiseless colours by a given amount. Emission lines are not
warped, and dust acts on the warped light, so both stay as they are.

Projecting spectra is slow, so :func:`template_grid` projects once on a fine redshift grid (step 0.01) and a
coarse attenuation grid; galaxies interpolate linearly in redshift and in log flux across attenuation (exact
for a single line, better than 0.002 mag for the continuum). The grid is ~0.6 MB of numbers, passed to
worker processes instead of recomputed.
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
# Rest-frame wavelengths that ugriz (2980-11230 A) can see at 0 <= z <= 0.8, with margin.
REST_WAVE_RANGE_ANGSTROM = (1500.0, 12000.0)
# Strong nebular lines (air, A): [OII], [NeIII], H-delta, H-gamma, H-beta, [OIII], [OI], [NII], H-alpha, [SII].
NEBULAR_LINES_ANGSTROM = (3727.0, 3869.0, 4102.0, 4340.0, 4861.0, 4959.0, 5007.0, 6300.0, 6548.0, 6563.0,
                          6584.0, 6717.0, 6731.0)  # fmt: skip
LINE_HALF_WIDTH_ANGSTROM = 20.0
CONTINUUM_MEDIAN_PIXELS = 41  # ~+-100 A at H-alpha on kcorrect's log-spaced grid: wider than any line blend
# Attenuation in rest-frame r magnitudes at which the grid is projected (negative: brighter than the mean,
# see population.py). Log-flux interpolation between them.
DUST_GRID_MAG = np.array([-0.5, 0.0, 0.5, 1.0, 1.5])
CALZETTI_R_V = 4.05  # Calzetti et al. (2000): the attenuation curve of star-forming galaxies
R_EFFECTIVE_ANGSTROM = 6166.0  # SDSS r
# The warp's knots: observed-frame effective wavelengths of SDSS u, g, r, i, z (Fukugita et al. 1996), so
# each band's flux answers mostly to its own coefficient and the solve for a colour change is well posed.
WARP_KNOTS_ANGSTROM = np.array([3551.0, 4686.0, 6166.0, 7480.0, 8932.0])
N_WARP_KNOTS = len(WARP_KNOTS_ANGSTROM)


@dataclass(frozen=True)
class TemplateGrid:
    """Projected templates: AB maggies at 10 pc per unit template coefficient, on (redshift, attenuation).

    ``warped_continuum[iz, id, band, t, k]`` is the continuum of the N_TEMPLATES templates (the LRG template
    has no line part) times the warp's hat ``k``; summed over ``k`` it is the plain continuum.
    ``lines[iz, id, band, t]`` holds the emission lines of the five default templates (zero for the LRG).
    """

    redshift: FloatArray  # (nz,)
    dust: FloatArray  # (nd,) rest-frame r attenuation, mag
    warped_continuum: FloatArray  # (nz, nd, 5, N_TEMPLATES, N_WARP_KNOTS)
    lines: FloatArray  # (nz, nd, 5, N_TEMPLATES)

    @property
    def continuum(self) -> FloatArray:
        """The unwarped continuum (nz, nd, 5, N_TEMPLATES): the hats add up to one."""
        return self.warped_continuum.sum(axis=-1)

    @property
    def maggies(self) -> FloatArray:
        """The unattenuated design matrix with the templates' own lines, (nz, 5, N_TEMPLATES)."""
        zero = int(np.flatnonzero(self.dust == 0.0)[0])
        return self.continuum[:, zero] + self.lines[:, zero]

    def design_matrix(
        self,
        z: npt.ArrayLike,
        dust: npt.ArrayLike | None = None,
        line_factor: npt.ArrayLike | None = None,
        warp: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """``A(z)`` for each galaxy (n, 5, N_TEMPLATES): its continuum warped by ``warp`` (n, N_WARP_KNOTS)
        coefficients (default: no warp), its lines scaled by ``line_factor`` (default 1), and its light
        attenuated by ``dust`` rest-frame r magnitudes (default 0)."""
        z = np.atleast_1d(np.asarray(z, dtype=np.float64))
        n = len(z)
        factor = (
            np.ones(n) if line_factor is None else np.broadcast_to(np.asarray(line_factor, np.float64), (n,))
        )
        continuum = self._interpolate(self.warped_continuum, z, dust)  # (n, 5, T, K)
        coefficients = np.ones((n, N_WARP_KNOTS)) if warp is None else np.asarray(warp, dtype=np.float64)
        if coefficients.shape != (n, N_WARP_KNOTS):
            raise ValueError(f"warp must have shape ({n}, {N_WARP_KNOTS}), got {coefficients.shape}")
        warped = np.einsum("nbtk,nk->nbt", continuum, coefficients)
        return warped + factor[:, None, None] * self._interpolate(self.lines, z, dust)

    def _interpolate(self, table: FloatArray, z: FloatArray, dust: npt.ArrayLike | None) -> FloatArray:
        """``table`` (nz, nd, ...) at each galaxy's redshift and attenuation: linear in redshift at the two
        bracketing attenuations, then linear in log flux between them."""
        if np.any(z < 0) or np.any(z > self.redshift[-1]):
            raise ValueError(
                f"redshift outside the template grid [0, {self.redshift[-1]}]: {z.min()}..{z.max()}"
            )
        n = len(z)
        dust = np.zeros(n) if dust is None else np.broadcast_to(np.asarray(dust, dtype=np.float64), (n,))
        if np.any(dust < self.dust[0]) or np.any(dust > self.dust[-1]):
            raise ValueError(f"attenuation outside the grid [{self.dust[0]}, {self.dust[-1]}] mag")
        trailing = (1,) * (table.ndim - 2)
        position = z / (self.redshift[1] - self.redshift[0])
        iz = np.minimum(position.astype(np.int64), len(self.redshift) - 2)
        wz = (position - iz).reshape(n, *trailing)
        d_position = np.interp(dust, self.dust, np.arange(len(self.dust), dtype=np.float64))
        id_ = np.minimum(d_position.astype(np.int64), len(self.dust) - 2)
        wd = (d_position - id_).reshape(n, *trailing)
        low, high = ((1.0 - wz) * table[iz, d] + wz * table[iz + 1, d] for d in (id_, id_ + 1))
        tiny = 1e-300
        return np.exp((1.0 - wd) * np.log(np.maximum(low, tiny)) + wd * np.log(np.maximum(high, tiny)))

    def warp_for(self, z: npt.ArrayLike, mixes: npt.ArrayLike, colour_change: npt.ArrayLike) -> FloatArray:
        """Warp coefficients (n, N_WARP_KNOTS) that move each mix's noiseless colours (unattenuated, its
        templates' own lines) by ``colour_change`` (n, 4: u-g, g-r, r-i, i-z), keeping its r flux.

        Band fluxes are linear in the coefficients, so this is one 5x5 solve per galaxy. Positive
        coefficients make a positive warp; a colour change that would need a non-positive one is refused.
        """
        z = np.atleast_1d(np.asarray(z, dtype=np.float64))
        mixes = np.atleast_2d(np.asarray(mixes, dtype=np.float64))
        change = np.atleast_2d(np.asarray(colour_change, dtype=np.float64))
        # Magnitude change per band with r fixed: u-g and g-r chain up from r, r-i and i-z down from it.
        magnitude_change = np.column_stack(
            [
                change[:, 0] + change[:, 1],
                change[:, 1],
                np.zeros(len(z)),
                -change[:, 2],
                -change[:, 2] - change[:, 3],
            ]
        )
        continuum = np.einsum("nbtk,nt->nbk", self._interpolate(self.warped_continuum, z, None), mixes)
        lines = np.einsum("nbt,nt->nb", self._interpolate(self.lines, z, None), mixes)
        target = (continuum.sum(axis=-1) + lines) * 10.0 ** (-0.4 * magnitude_change)
        coefficients = np.linalg.solve(continuum, (target - lines)[:, :, None])[:, :, 0]
        if np.any(coefficients <= 0):
            bad = int(np.flatnonzero((coefficients <= 0).any(axis=1))[0])
            raise ValueError(
                f"colour change {np.round(change[bad], 3).tolist()} at z = {z[bad]:.3f} needs a non-positive "
                f"warp {np.round(coefficients[bad], 3).tolist()}"
            )
        return np.asarray(coefficients)

    def rest_frame_r(self, coeffs: npt.ArrayLike) -> FloatArray:
        """Rest-frame (z = 0) r-band maggies at 10 pc of each mix: the absolute-magnitude normalisation."""
        return np.asarray(coeffs, dtype=np.float64) @ self.maggies[0, R_BAND]

    def normalise_r(self, coeffs: npt.ArrayLike) -> FloatArray:
        """Scale each mix (rows) to unit rest-frame r flux, so coefficients mix r-band light."""
        coeffs = np.atleast_2d(np.asarray(coeffs, dtype=np.float64))
        return coeffs / self.rest_frame_r(coeffs)[:, None]

    def observed_maggies(
        self,
        z: npt.ArrayLike,
        coeffs: npt.ArrayLike,
        distance_modulus: npt.ArrayLike,
        dust: npt.ArrayLike | None = None,
        line_factor: npt.ArrayLike | None = None,
        warp: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """Observed SDSS-system maggies (n, 5) of mixes ``coeffs`` (n, N_TEMPLATES) at redshift ``z``.

        kcorrect's templates are fluxes at 10 pc, redshifted conserving bolometric flux, so the observed flux
        is the projected template dimmed by the distance modulus (m = M + DM + K, Blanton & Roweis 2007).
        """
        design = self.design_matrix(z, dust, line_factor, warp)
        ab_maggies = np.einsum("nbt,nt->nb", design, np.atleast_2d(coeffs))
        dimming = 10.0 ** (-0.4 * np.asarray(distance_modulus, dtype=np.float64))
        return ab_to_sdss(ab_maggies * np.atleast_1d(dimming)[:, None])


def ab_to_sdss(ab_maggies: npt.ArrayLike) -> FloatArray:
    """AB maggies to the SDSS (database) system, the inverse of ``kcorrect.utils.sdss_ab_correct``."""
    return np.asarray(ab_maggies, dtype=np.float64) * 10.0 ** (0.4 * SDSS_TO_AB_OFFSET_MAG)


def _template_path(name: str) -> str:
    import kcorrect

    return os.path.join(kcorrect.KCORRECT_DIR, "data", "templates", name)


def _read_templates(name: str) -> tuple[FloatArray, FloatArray]:
    """Rest-frame wavelength (nwave,) and flux (nsed, nwave) of a kcorrect template file, cropped."""
    from astropy.io import fits

    with fits.open(_template_path(name)) as hdus:
        wave = np.asarray(hdus["FLUX"].data["wave"][0], dtype=np.float64)
        flux = np.asarray(hdus["FLUX"].data["flux"][0], dtype=np.float64).reshape(-1, len(wave))
    inside = (wave >= REST_WAVE_RANGE_ANGSTROM[0]) & (wave <= REST_WAVE_RANGE_ANGSTROM[1])
    return wave[inside], flux[:, inside]


def split_lines(wave: FloatArray, flux: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Continuum and emission-line parts of each template (rows): lines are the excess over a running
    median within LINE_HALF_WIDTH_ANGSTROM of a nebular line, everything else is continuum."""
    from scipy.ndimage import median_filter

    median = median_filter(flux, size=(1, CONTINUUM_MEDIAN_PIXELS), mode="nearest")
    near_line = np.zeros(len(wave), dtype=bool)
    for centre in NEBULAR_LINES_ANGSTROM:
        near_line |= np.abs(wave - centre) <= LINE_HALF_WIDTH_ANGSTROM
    lines = np.where(near_line[None, :], np.clip(flux - median, 0.0, None), 0.0)
    return flux - lines, lines


def attenuation_mag(wave: FloatArray, dust_r_mag: float) -> FloatArray:
    """Calzetti et al. (2000) attenuation at ``wave`` (A), scaled to ``dust_r_mag`` at rest-frame r."""
    import extinction

    curve = extinction.calzetti00(wave, 1.0, CALZETTI_R_V)
    at_r = extinction.calzetti00(np.array([R_EFFECTIVE_ANGSTROM]), 1.0, CALZETTI_R_V)[0]
    return np.asarray(dust_r_mag * curve / at_r, dtype=np.float64)


def warp_hats(observed_wave: FloatArray) -> FloatArray:
    """The warp's basis at observed wavelengths (A): (N_WARP_KNOTS, nwave) hats, linear in log wavelength
    between the knots and flat beyond the end ones, adding up to one everywhere."""
    knots = np.log(WARP_KNOTS_ANGSTROM)
    unit = np.eye(N_WARP_KNOTS)
    log_wave = np.log(observed_wave)
    return np.stack([np.interp(log_wave, knots, unit[k]) for k in range(N_WARP_KNOTS)])


@cache
def template_grid() -> TemplateGrid:
    """Project continuum (times each warp hat) and line parts of the default v4 templates and the LRG
    template, attenuated at each DUST_GRID_MAG, through ugriz on the redshift grid with kcorrect's
    projection (~5 s)."""
    import kcorrect.response
    import kcorrect.template

    wave, default = _read_templates("kcorrect-default-v4.fits")
    lrg_wave, lrg = _read_templates("kcorrect-lrg1-v4.fits")
    lrg = np.array([np.interp(wave, lrg_wave, row) for row in lrg])
    continuum, lines = split_lines(wave, default)
    dimming = [10.0 ** (-0.4 * attenuation_mag(wave, d)) for d in DUST_GRID_MAG]
    continua = np.stack([np.concatenate([continuum, lrg]) * dim for dim in dimming])  # (nd, T, nwave)
    line_part = np.stack([np.concatenate([lines, np.zeros_like(lrg)]) * dim for dim in dimming])
    responses = kcorrect.response.ResponseDict()
    for name in SDSS_RESPONSES:
        responses.load_response(name)
    redshift = np.linspace(0.0, GRID_Z_MAX, round(GRID_Z_MAX / GRID_STEP) + 1)
    n_dust = len(DUST_GRID_MAG)
    warped = np.empty((len(redshift), len(BANDS), n_dust, N_TEMPLATES, N_WARP_KNOTS))
    line_table = np.empty((len(redshift), len(BANDS), n_dust, N_TEMPLATES))
    for iz, z in enumerate(redshift):
        # The hats live in the observed frame, so each redshift projects its own products.
        hats = warp_hats(wave * (1.0 + z))
        products = continua[:, :, None, :] * hats[None, None, :, :]  # (nd, T, K, nwave)
        flux = np.concatenate([products.reshape(-1, len(wave)), line_part.reshape(-1, len(wave))])
        sed = kcorrect.template.SED(wave=wave, flux=flux)
        sed.set_redshift(redshift=z)
        n_warped = products.shape[0] * products.shape[1] * products.shape[2]
        for band, name in enumerate(SDSS_RESPONSES):
            projected = responses[name].project(sed=sed)
            warped[iz, band] = projected[:n_warped].reshape(n_dust, N_TEMPLATES, N_WARP_KNOTS)
            line_table[iz, band] = projected[n_warped:].reshape(n_dust, N_TEMPLATES)
    return TemplateGrid(
        redshift=redshift,
        dust=DUST_GRID_MAG.astype(np.float64),
        warped_continuum=np.ascontiguousarray(warped.transpose(0, 2, 1, 3, 4)),  # (nz, nd, band, T, K)
        lines=np.ascontiguousarray(line_table.transpose(0, 2, 1, 3)),
    )


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
