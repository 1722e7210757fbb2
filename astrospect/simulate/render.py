"""Draw ugriz cutouts with GalSim, as SDSS's camera would see them.

Each galaxy is a de Vaucouleurs bulge plus an exponential disk, each with its own ugriz fluxes (so colour
gradients are real), sheared to their axis ratios, convolved with a per-band Kolmogorov PSF, integrated over
0.396" pixels (``drawImage`` convolves with the pixel), and given SDSS-like noise: Poisson noise from the
sky and the galaxy plus read noise, computed in electrons (the gain expressed in electrons per nanomaggy,
so the pixels stay in nanomaggies) and drawn by GalSim's ``VariableGaussianNoise``. A few stamps get a neighbouring galaxy (a blend), a residual
cosmic ray, a bad column or a bright saturated star with a bleed trail.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache

import galsim
import numpy as np
import numpy.typing as npt

from astrospect.settings import CUTOUT_SIZE, N_BANDS, PIXEL_SCALE_ARCSEC
from astrospect.simulate.population import Population
from astrospect.simulate.spectra import detector_photometry

FloatArray = npt.NDArray[np.float64]

# --- observing conditions ---------------------------------------------------------------------------------
SEEING_R_MEDIAN_ARCSEC = 1.40  # SDSS r-band PSF FWHM median 1.43", quartiles 1.30"-1.58" (DR7 docs)
SEEING_LOG_SCATTER = 0.13  # field to field, matching those quartiles
SEEING_BAND_LOG_SCATTER = 0.03  # each band is a different CCD, read ~1 minute apart
# Typical dark-time sky at APO, mag / arcsec^2 (r: SDSS DR7 median 20.86); z is bright with OH airglow.
SKY_MAG_PER_ARCSEC2 = np.array([22.10, 21.85, 20.86, 20.15, 18.95])
SKY_LOG_SCATTER = 0.10  # field to field (moon, airglow)
# Read noise + dark current: SDSS frame data model, camcol 1: darkVariance (DN^2) times gain^2 (e-/DN).
SDSS_GAIN_E_PER_DN = np.array([1.62, 3.32, 4.71, 5.165, 4.745])
SDSS_DARK_VARIANCE_DN2 = np.array([9.61, 15.6025, 1.8225, 7.84, 0.81])
# Full well: stars saturate at r ~ 14 in 1.4" seeing (peak pixel ~7% of the flux at 918 e-/nMgy).
FULL_WELL_ELECTRONS = 150_000.0

# --- artefact rates (per stamp) ---------------------------------------------------------------------------
BLEND_RATE = 0.05
COSMIC_RAY_RATE = 0.02
BAD_COLUMN_RATE = 0.01
BRIGHT_STAR_RATE = 0.02
FLAG_BLEND, FLAG_COSMIC_RAY, FLAG_BAD_COLUMN, FLAG_BRIGHT_STAR, FLAG_SATURATED = 1, 2, 4, 8, 16

# Speed: looser than GalSim's defaults (sub-percent flux error), ~4 ms for five 32x32 bands.
GSPARAMS = galsim.GSParams(folding_threshold=2e-2, maxk_threshold=5e-3, kvalue_accuracy=1e-4)
BULGE_TRUNCATION = 8.0  # de Vaucouleurs truncated at 8 half-light radii: finite extent, much faster FFTs


@dataclass(frozen=True)
class Camera:
    """Per-band detector numbers in the units the images use (nanomaggies)."""

    electrons_per_nanomaggy: FloatArray  # (5,)
    sky_nanomaggies_per_pixel: FloatArray  # (5,) median sky
    read_noise_electrons: FloatArray  # (5,)
    seeing_factor: FloatArray  # (5,) FWHM relative to r: Kolmogorov seeing scales as wavelength^-1/5
    star_magnitudes_minus_r: FloatArray  # (5,) a G star's (the Sun's) magnitudes relative to r

    @property
    def sky_sigma_nanomaggies(self) -> FloatArray:
        """Per-pixel noise of blank sky, (5,): sqrt(sky + read variance in electrons) / electrons per nMgy."""
        sky_electrons = self.sky_nanomaggies_per_pixel * self.electrons_per_nanomaggy
        return np.sqrt(sky_electrons + self.read_noise_electrons**2) / self.electrons_per_nanomaggy


@cache
def sdss_camera() -> Camera:
    photometry = detector_photometry()
    pixel_area = PIXEL_SCALE_ARCSEC**2
    sky = 10.0 ** (-0.4 * (SKY_MAG_PER_ARCSEC2 - 22.5)) * pixel_area
    wavelength = photometry.effective_wavelength_angstrom
    return Camera(
        electrons_per_nanomaggy=photometry.electrons_per_nanomaggy,
        sky_nanomaggies_per_pixel=sky,
        read_noise_electrons=np.sqrt(SDSS_DARK_VARIANCE_DN2) * SDSS_GAIN_E_PER_DN,
        seeing_factor=(wavelength / wavelength[2]) ** -0.2,
        star_magnitudes_minus_r=photometry.solar_magnitudes - photometry.solar_magnitudes[2],
    )


@dataclass
class Conditions:
    """How each stamp was observed and what went wrong in it (arrays over galaxies)."""

    psf_fwhm_arcsec: FloatArray  # (n, 5)
    sky_nanomaggies: FloatArray  # (n, 5)
    centre_offset_pixels: FloatArray  # (n, 2)
    flags: npt.NDArray[np.int16]
    neighbour_offset_arcsec: FloatArray  # (n, 2), used where FLAG_BLEND
    star_r_mag: FloatArray  # used where FLAG_BRIGHT_STAR
    star_offset_arcsec: FloatArray  # (n, 2)
    artefact_band: npt.NDArray[np.int8]  # band hit by the cosmic ray / bad column
    noise_seed: npt.NDArray[np.int64]

    def take(self, rows: npt.NDArray[np.int64]) -> Conditions:
        return Conditions(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


def draw_conditions(
    rng: np.random.Generator, n: int, camera: Camera, seeing_median_arcsec: float = SEEING_R_MEDIAN_ARCSEC
) -> Conditions:
    seeing_r = seeing_median_arcsec * np.exp(SEEING_LOG_SCATTER * rng.standard_normal(n))
    band_jitter = np.exp(SEEING_BAND_LOG_SCATTER * rng.standard_normal((n, N_BANDS)))
    sky = camera.sky_nanomaggies_per_pixel * np.exp(SKY_LOG_SCATTER * rng.standard_normal((n, 1)))
    flags = (
        FLAG_BLEND * (rng.random(n) < BLEND_RATE)
        + FLAG_COSMIC_RAY * (rng.random(n) < COSMIC_RAY_RATE)
        + FLAG_BAD_COLUMN * (rng.random(n) < BAD_COLUMN_RATE)
        + FLAG_BRIGHT_STAR * (rng.random(n) < BRIGHT_STAR_RATE)
    ).astype(np.int16)
    return Conditions(
        psf_fwhm_arcsec=seeing_r[:, None] * camera.seeing_factor[None, :] * band_jitter,
        sky_nanomaggies=sky,
        centre_offset_pixels=rng.uniform(-0.5, 0.5, (n, 2)),
        flags=flags,
        neighbour_offset_arcsec=_polar(rng, n, 4.0, 10.0),
        star_r_mag=rng.uniform(12.5, 16.0, n),
        star_offset_arcsec=_polar(rng, n, 7.0, 12.0),
        artefact_band=rng.integers(0, N_BANDS, n).astype(np.int8),
        noise_seed=rng.integers(1, 2**62, n),
    )


def _polar(rng: np.random.Generator, n: int, r_min: float, r_max: float) -> FloatArray:
    radius = rng.uniform(r_min, r_max, n)
    angle = rng.uniform(0.0, 2 * np.pi, n)
    return np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])


def _galaxy_profiles(population: Population, index: int) -> tuple[galsim.GSObject, galsim.GSObject]:
    """Unit-flux bulge and disk of one galaxy, sheared and rotated (shared position angle)."""
    beta = population.position_angle_rad[index] * galsim.radians
    bulge_hlr = population.bulge_hlr_arcsec[index]
    bulge = galsim.DeVaucouleurs(
        half_light_radius=bulge_hlr, trunc=BULGE_TRUNCATION * bulge_hlr, gsparams=GSPARAMS
    ).shear(q=population.bulge_q[index], beta=beta)
    disk = galsim.Exponential(half_light_radius=population.disk_hlr_arcsec[index], gsparams=GSPARAMS).shear(
        q=population.disk_q[index], beta=beta
    )
    return bulge, disk


def render_stamps(
    population: Population, neighbours: Population, conditions: Conditions, camera: Camera
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int16]]:
    """Band-first stamps (n, 5, 32, 32) in nanomaggies, and the flags (FLAG_SATURATED added where hit).

    GalSim's OpenMP threads are switched off while drawing: parallelism is one process per core, and on a
    busy machine OpenMP threads spinning on 32x32 FFTs cost 5-10x the CPU time (measured).
    """
    previous_threads = galsim.get_omp_threads()
    galsim.set_omp_threads(1)
    try:
        return _render(population, neighbours, conditions, camera)
    finally:
        galsim.set_omp_threads(previous_threads)


def _render(
    population: Population, neighbours: Population, conditions: Conditions, camera: Camera
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int16]]:
    n = len(population)
    stamps = np.empty((n, N_BANDS, CUTOUT_SIZE, CUTOUT_SIZE), dtype=np.float32)
    flags = conditions.flags.copy()
    saturation = FULL_WELL_ELECTRONS / camera.electrons_per_nanomaggy
    for index in range(n):
        noise_rng = galsim.BaseDeviate(int(conditions.noise_seed[index]))
        bulge, disk = _galaxy_profiles(population, index)
        extra = _extra_sources(neighbours, conditions, index, camera)
        for band in range(N_BANDS):
            scene = bulge * population.bulge_flux[index, band] + disk * population.disk_flux[index, band]
            for profile, fluxes, offset in extra:
                scene += (profile * fluxes[band]).shift(*offset)
            psf = galsim.Kolmogorov(fwhm=conditions.psf_fwhm_arcsec[index, band], gsparams=GSPARAMS)
            image = galsim.ImageF(CUTOUT_SIZE, CUTOUT_SIZE, scale=PIXEL_SCALE_ARCSEC)
            galsim.Convolve(scene, psf, gsparams=GSPARAMS).drawImage(
                image=image, offset=tuple(conditions.centre_offset_pixels[index])
            )
            pixels = image.array
            if pixels.max() + conditions.sky_nanomaggies[index, band] > saturation[band]:
                pixels[:] = _bleed(pixels, saturation[band] - conditions.sky_nanomaggies[index, band])
                flags[index] |= FLAG_SATURATED
            variance = _pixel_variance(pixels, conditions.sky_nanomaggies[index, band], camera, band)
            image.addNoise(
                galsim.VariableGaussianNoise(noise_rng, galsim.ImageF(variance, scale=PIXEL_SCALE_ARCSEC))
            )
            stamps[index, band] = image.array
        _add_detector_artefacts(stamps[index], conditions, index, camera)
    return stamps, flags


def _pixel_variance(
    pixels: npt.NDArray[np.float32], sky: float, camera: Camera, band: int
) -> npt.NDArray[np.float32]:
    """Photon noise of sky + source plus read noise, in nanomaggies^2. With >= 40 sky electrons a pixel in
    every band, Poisson noise is Gaussian to better than 1%, and GalSim draws Gaussians ~10x faster than
    per-pixel Poisson deviates of varying mean (CCDNoise)."""
    gain = camera.electrons_per_nanomaggy[band]
    electrons = (np.clip(pixels, 0.0, None) + sky) * gain + camera.read_noise_electrons[band] ** 2
    return (electrons / gain**2).astype(np.float32)


def _extra_sources(
    neighbours: Population, conditions: Conditions, index: int, camera: Camera
) -> list[tuple[galsim.GSObject, FloatArray, tuple[float, float]]]:
    """Unit-flux profiles, per-band fluxes and offsets (arcsec) of a neighbour galaxy and a bright star."""
    extra: list[tuple[galsim.GSObject, FloatArray, tuple[float, float]]] = []
    flags = int(conditions.flags[index])
    if flags & FLAG_BLEND:
        bulge, disk = _galaxy_profiles(neighbours, index)
        # One SED per component: add the two with the neighbour's own band fluxes.
        dx, dy = conditions.neighbour_offset_arcsec[index]
        extra.append((bulge, neighbours.bulge_flux[index], (dx, dy)))
        extra.append((disk, neighbours.disk_flux[index], (dx, dy)))
    if flags & FLAG_BRIGHT_STAR:
        star_flux = 10.0 ** (-0.4 * (conditions.star_r_mag[index] + camera.star_magnitudes_minus_r - 22.5))
        dx, dy = conditions.star_offset_arcsec[index]
        extra.append((galsim.DeltaFunction(gsparams=GSPARAMS), star_flux, (dx, dy)))
    return extra


def _bleed(pixels: npt.NDArray[np.float32], level: float) -> npt.NDArray[np.float32]:
    """Saturated charge spills up and down its CCD column (SDSS columns run along the image's y axis)."""
    out = pixels.copy()
    for column in np.flatnonzero((out > level).any(axis=0)):
        values = out[:, column]
        excess = float(np.clip(values - level, 0.0, None).sum())
        values[:] = np.minimum(values, level)
        centre = int(np.argmax(pixels[:, column]))
        for step in range(1, values.size):
            for row in (centre - step, centre + step):
                if excess <= 0:
                    break
                if 0 <= row < values.size:
                    room = level - values[row]
                    if room > 0:
                        taken = min(room, excess)
                        values[row] += taken
                        excess -= taken
        out[:, column] = values
    return out


def _add_detector_artefacts(
    stamp: npt.NDArray[np.float32], conditions: Conditions, index: int, camera: Camera
) -> None:
    """A residual cosmic-ray hit (a short bright track) and/or a bad column, in one band."""
    flags = int(conditions.flags[index])
    if not flags & (FLAG_COSMIC_RAY | FLAG_BAD_COLUMN):
        return
    band = int(conditions.artefact_band[index])
    sigma = float(camera.sky_sigma_nanomaggies[band])
    # Derive positions from the noise seed so the artefact is as reproducible as the noise.
    local = np.random.default_rng(int(conditions.noise_seed[index]))
    if flags & FLAG_COSMIC_RAY:
        length = int(local.integers(1, 5))
        row, column = local.integers(0, CUTOUT_SIZE - length, 2)
        direction = local.integers(0, 3)  # horizontal, vertical or diagonal
        for step in range(length):
            r = row + step * (direction != 0)
            c = column + step * (direction != 1)
            stamp[band, r, c] += local.uniform(20.0, 200.0) * sigma
    if flags & FLAG_BAD_COLUMN:
        column = int(local.integers(0, CUTOUT_SIZE))
        stamp[band, :, column] += local.choice([-1.0, 1.0]) * local.uniform(3.0, 10.0) * sigma
