"""Aperture photometry on cutouts: the colours the k-NN baseline uses and ``synth-check`` measures.

Magnitudes are SDSS asinh magnitudes ("luptitudes", Lupton, Gunn & Szalay 1999) so that faint or negative
aperture fluxes in the noisy u and z bands still give finite values, exactly as the SDSS catalogue does.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

from astrospect.settings import CUTOUT_SIZE, PIXEL_SCALE_ARCSEC

# SDSS softening parameters b per band (maggies), from the SDSS photometric-flux documentation.
SDSS_SOFTENING_B = np.array([1.4e-10, 0.9e-10, 1.2e-10, 1.8e-10, 7.4e-10])
# Colours in a small aperture (high S/N, like SDSS fibre colours); the total r in a large one.
COLOUR_APERTURE_RADIUS_ARCSEC = 2.0
TOTAL_APERTURE_RADIUS_ARCSEC = 6.0
_SUPERSAMPLE = 8  # sub-pixels per pixel side, for fractional aperture weights


@cache
def aperture_weights(radius_arcsec: float, size: int = CUTOUT_SIZE) -> npt.NDArray[np.float32]:
    """Fraction of each pixel inside a circle of ``radius_arcsec`` about the cutout centre, shape (size, size)."""
    radius_px = radius_arcsec / PIXEL_SCALE_ARCSEC
    fine = (np.arange(size * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - size / 2.0
    inside = (fine[:, None] ** 2 + fine[None, :] ** 2) <= radius_px**2
    weights = inside.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3))
    return weights.astype(np.float32)


def aperture_flux(images: npt.NDArray[np.floating], radius_arcsec: float) -> npt.NDArray[np.float64]:
    """Aperture flux per band in nanomaggies, from channels-last cutouts (N, H, W, 5): shape (N, 5)."""
    weights = aperture_weights(radius_arcsec, images.shape[1])
    return np.einsum("nhwb,hw->nb", images, weights, dtype=np.float64)


def luptitudes(flux_nanomaggies: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """SDSS asinh magnitudes from fluxes in nanomaggies, per band (last axis = ugriz)."""
    maggies = np.asarray(flux_nanomaggies, dtype=np.float64) * 1e-9
    b = SDSS_SOFTENING_B
    return -2.5 / np.log(10.0) * (np.arcsinh(maggies / (2.0 * b)) + np.log(b))


def colour_features(
    images: npt.NDArray[np.floating], colour_radius_arcsec: float = COLOUR_APERTURE_RADIUS_ARCSEC
) -> npt.NDArray[np.float64]:
    """Baseline features: u-g, g-r, r-i, i-z in the colour aperture, and the total r magnitude: (N, 5)."""
    colour_mags = luptitudes(aperture_flux(images, colour_radius_arcsec))
    total_r = luptitudes(aperture_flux(images, TOTAL_APERTURE_RADIUS_ARCSEC))[:, 2]
    colours = colour_mags[:, :-1] - colour_mags[:, 1:]
    return np.column_stack([colours, total_r])


# Model-like magnitudes: SDSS model magnitudes measure every band with the r band's best-fit profile and take
# the total from the r fit. Here the r band's adaptive-moment Gaussian (GalSim HSM) is that profile: each
# band's flux is weighted by it, and the 6" aperture r sets the total.
FALLBACK_WEIGHT_SIGMA_PIXELS = 2.5  # where HSM fails (faint or broken stamps): a circular PSF-sized weight
R_BAND_INDEX = 2
# Adaptive-moment sigma of a Kolmogorov PSF over FWHM / 2.3548 (measured with GalSim HSM at 1-2" FWHM).
KOLMOGOROV_MOMENT_SIGMA_PER_GAUSSIAN = 1.075


def r_band_moments(
    images: npt.NDArray[np.floating],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Adaptive-moment weights (N, H, W) of the r band of channels-last cutouts, and the second-moment
    matrices (N, 2, 2) in pixels^2 (NaN where HSM failed and a circular weight stands in)."""
    import galsim

    n, height, width = images.shape[:3]
    y, x = np.mgrid[1 : height + 1, 1 : width + 1].astype(np.float64)
    weights = np.empty((n, height, width))
    second_moments = np.full((n, 2, 2), np.nan)
    for index in range(n):
        image = galsim.Image(np.ascontiguousarray(images[index, :, :, R_BAND_INDEX], dtype=np.float64))
        moments = galsim.hsm.FindAdaptiveMom(image, strict=False)
        if moments.moments_status == 0 and moments.moments_sigma > 0:
            shape = moments.observed_shape
            matrix = moments.moments_sigma**2 * shape.getMatrix() @ shape.getMatrix().T
            centre = (moments.moments_centroid.x, moments.moments_centroid.y)
            second_moments[index] = matrix
        else:
            matrix = FALLBACK_WEIGHT_SIGMA_PIXELS**2 * np.eye(2)
            centre = ((width + 1) / 2.0, (height + 1) / 2.0)
        dx, dy = x - centre[0], y - centre[1]
        precision = np.linalg.inv(matrix)
        weights[index] = np.exp(
            -0.5 * (precision[0, 0] * dx**2 + 2 * precision[0, 1] * dx * dy + precision[1, 1] * dy**2)
        )
    return weights, second_moments


def psf_corrected_axis_ratio(
    second_moments: npt.NDArray[np.float64], psf_fwhm_arcsec: npt.ArrayLike | None
) -> npt.NDArray[np.float64]:
    """Axis ratio (N,) of the galaxy: the moments minus a round PSF's (as SDSS's profile fits correct
    for the PSF); without a PSF, of the observed moments. NaN where nothing is left after the PSF."""
    matrix = np.array(second_moments, dtype=np.float64)
    if psf_fwhm_arcsec is not None:
        sigma = psf_moment_sigma_pixels(psf_fwhm_arcsec)
        matrix = matrix - (sigma**2)[:, None, None] * np.eye(2)[None]
    eigen = np.linalg.eigvalsh(np.nan_to_num(matrix, nan=-1.0))
    usable = (eigen[:, 0] > 0) & np.isfinite(matrix).all(axis=(1, 2))
    ratio = np.sqrt(np.divide(eigen[:, 0], eigen[:, 1], out=np.zeros(len(eigen)), where=usable))
    return np.where(usable, ratio, np.nan)


def psf_moment_sigma_pixels(psf_fwhm_arcsec: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Adaptive-moment sigma (pixels) of a Kolmogorov PSF of the given FWHM."""
    fwhm = np.asarray(psf_fwhm_arcsec, dtype=np.float64)
    return np.asarray(KOLMOGOROV_MOMENT_SIGMA_PER_GAUSSIAN * fwhm / 2.3548 / PIXEL_SCALE_ARCSEC)


def psf_flux_correction(
    second_moments: npt.NDArray[np.float64], psf_fwhm_arcsec: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Per band (N, 5), the factor that makes an r-moment-weighted flux independent of the band's PSF.

    A fixed weight catches less of a band seen through a wider PSF: with SDSS's seeing growing toward the
    blue, r-weighted colours come out redder than the galaxy's (u-g by ~0.01 mag at 1.5" moment size).
    SDSS's model magnitudes convolve the profile with each band's PSF, so their colours do not. For a
    Gaussian galaxy of observed r covariance S under the adaptive weight (covariance S), a band whose PSF
    variance differs from r's by d sees sqrt(det(2S) / det(2S + d I)) of its flux (Kuijken 2008's GAaP in
    its simplest form); its inverse is the factor. 1 where the r moments failed."""
    sigma = psf_moment_sigma_pixels(psf_fwhm_arcsec)
    extra = sigma**2 - sigma[:, R_BAND_INDEX : R_BAND_INDEX + 1] ** 2  # (N, 5), pixels^2
    twice = 2.0 * np.asarray(second_moments, dtype=np.float64)  # (N, 2, 2)
    with np.errstate(invalid="ignore"):  # NaN moments (HSM failed) give NaN, replaced by 1 below
        trace, det = twice[:, 0, 0] + twice[:, 1, 1], np.linalg.det(twice)
    # det(2S + d I) = det(2S) + d trace(2S) + d^2
    ratio = (det[:, None] + extra * trace[:, None] + extra**2) / det[:, None]
    factor = np.sqrt(ratio)
    return np.where(np.isfinite(factor) & (det[:, None] > 0), factor, 1.0)


def model_magnitudes(
    images: npt.NDArray[np.floating], psf_fwhm_arcsec: npt.ArrayLike | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Model-like ugriz luptitudes (N, 5) and the r-band second moments (N, 2, 2), from channels-last
    cutouts: colours from r-moment-weighted fluxes (corrected for each band's PSF where ``psf_fwhm_arcsec``,
    (N, 5), is given: :func:`psf_flux_correction`), normalised to the 6" aperture r."""
    weights, second_moments = r_band_moments(images)
    weighted = np.einsum("nhwb,nhw->nb", images, weights, dtype=np.float64)
    if psf_fwhm_arcsec is not None:
        weighted *= psf_flux_correction(second_moments, psf_fwhm_arcsec)
    total_r = aperture_flux(images, TOTAL_APERTURE_RADIUS_ARCSEC)[:, R_BAND_INDEX]
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(weighted[:, R_BAND_INDEX] > 0, total_r / weighted[:, R_BAND_INDEX], np.nan)
    return luptitudes(weighted * scale[:, None]), second_moments


# Sky noise from the cutouts themselves: the pixels outside the total aperture hold sky (and the odd
# neighbour), so a robust spread of them is each band's per-pixel noise, as a photometry pipeline would
# measure it from the image's background. The median absolute deviation ignores neighbours' few bright pixels.
_MAD_TO_SIGMA = 1.482602218505602  # 1 / Phi^-1(3/4): MAD of a normal distribution to its sigma
_LUPTITUDE_SCALE = 2.5 / np.log(10.0)  # d(luptitude) / d(asinh argument)


def sky_noise(
    images: npt.NDArray[np.floating], mask_radius_arcsec: float = TOTAL_APERTURE_RADIUS_ARCSEC
) -> npt.NDArray[np.float64]:
    """Per cutout and band, the sky's per-pixel noise in nanomaggies, (N, 5): the robust standard deviation
    (1.4826 x MAD) of the pixels wholly outside the ``mask_radius_arcsec`` aperture about the centre."""
    outside = aperture_weights(mask_radius_arcsec, images.shape[1]) == 0
    if outside.sum() < 16:
        raise ValueError(
            f'cutouts of {images.shape[1]} pixels have {int(outside.sum())} pixels outside the {mask_radius_arcsec}" '
            "aperture: too few to measure the sky noise"
        )
    sky = np.asarray(images, dtype=np.float64)[:, outside, :]  # (N, n_sky, 5)
    deviation = np.abs(sky - np.median(sky, axis=1, keepdims=True))
    return _MAD_TO_SIGMA * np.median(deviation, axis=1)


def aperture_flux_error(
    noise_per_pixel: npt.ArrayLike, radius_arcsec: float, size: int = CUTOUT_SIZE
) -> npt.NDArray[np.float64]:
    """The aperture flux's standard error from uncorrelated pixel noise: sigma * sqrt(sum of the squared
    aperture weights), in the units of ``noise_per_pixel`` (any shape; typically (N, 5))."""
    weights = aperture_weights(radius_arcsec, size).astype(np.float64)
    return np.asarray(noise_per_pixel, dtype=np.float64) * float(np.sqrt(np.sum(weights**2)))


def luptitude_errors(
    flux_nanomaggies: npt.ArrayLike, flux_error_nanomaggies: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """First-order errors of :func:`luptitudes`: 2.5/ln10 * sigma_f / sqrt((2b)^2 + f^2), per band
    (last axis = ugriz). Finite at zero or negative flux, where an ordinary magnitude's error is not."""
    maggies = np.asarray(flux_nanomaggies, dtype=np.float64) * 1e-9
    error = np.asarray(flux_error_nanomaggies, dtype=np.float64) * 1e-9
    return _LUPTITUDE_SCALE * error / np.sqrt((2.0 * SDSS_SOFTENING_B) ** 2 + maggies**2)


def aperture_magnitudes_with_errors(
    images: npt.NDArray[np.floating], radius_arcsec: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """ugriz luptitudes in the ``radius_arcsec`` aperture and their errors from each cutout's measured sky
    noise (:func:`sky_noise`), both (N, 5)."""
    flux = aperture_flux(images, radius_arcsec)
    flux_error = aperture_flux_error(sky_noise(images), radius_arcsec, images.shape[1])
    return luptitudes(flux), luptitude_errors(flux, flux_error)
