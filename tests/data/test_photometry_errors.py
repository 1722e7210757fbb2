"""Magnitude errors from the cutouts' own sky noise: measured outside the total aperture, propagated
through the aperture weights to a flux error and an asinh-magnitude error."""

from __future__ import annotations

import numpy as np
import pytest

from astrospect.data.photometry import (
    aperture_flux,
    aperture_flux_error,
    aperture_magnitudes_with_errors,
    luptitude_errors,
    luptitudes,
    sky_noise,
)
from astrospect.settings import CUTOUT_SIZE

pytestmark = pytest.mark.unit

# Per-band sky noise injected (nanomaggies per pixel): u and z noisier, as SDSS's are.
INJECTED_SIGMA = np.array([0.08, 0.03, 0.03, 0.04, 0.12])
APERTURE_ARCSEC = 3.0


def _galaxies(n: int, seed: int) -> np.ndarray:
    """A bright round galaxy per band at the centre: signal the sky measurement must not see."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:CUTOUT_SIZE, 0:CUTOUT_SIZE] - (CUTOUT_SIZE - 1) / 2.0
    profile = np.exp(-(xx**2 + yy**2) / (2 * 2.5**2))
    return 30.0 * profile[None, :, :, None] * rng.uniform(0.2, 2.0, (n, 1, 1, 5))


def test_sky_noise_recovers_the_injected_noise_beside_a_bright_galaxy() -> None:
    rng = np.random.default_rng(3)
    images = _galaxies(400, 4) + rng.normal(0.0, INJECTED_SIGMA, (400, CUTOUT_SIZE, CUTOUT_SIZE, 5))
    measured = sky_noise(images.astype(np.float32))
    assert measured.shape == (400, 5)
    # each cutout's estimate (from its ~250 corner pixels: ~7% scatter) is within 35%; their mean within 2%
    assert np.all(np.abs(measured / INJECTED_SIGMA - 1.0) < 0.35)
    np.testing.assert_allclose(measured.mean(axis=0), INJECTED_SIGMA, rtol=0.02)


def test_flux_and_magnitude_errors_match_the_scatter_of_noise_realisations() -> None:
    rng = np.random.default_rng(5)
    galaxy = _galaxies(1, 6)
    realisations = galaxy + rng.normal(0.0, INJECTED_SIGMA, (3000, CUTOUT_SIZE, CUTOUT_SIZE, 5))
    flux = aperture_flux(realisations, APERTURE_ARCSEC)
    predicted_flux_error = aperture_flux_error(INJECTED_SIGMA, APERTURE_ARCSEC)
    np.testing.assert_allclose(flux.std(axis=0), predicted_flux_error, rtol=0.05)

    magnitudes, errors = aperture_magnitudes_with_errors(realisations.astype(np.float32), APERTURE_ARCSEC)
    np.testing.assert_allclose(magnitudes, luptitudes(flux), rtol=1e-5)
    # the first-order error is the realisations' scatter (to 10%, with the sky measured, not given)
    np.testing.assert_allclose(np.median(errors, axis=0), magnitudes.std(axis=0), rtol=0.1)


def test_luptitude_errors_stay_finite_at_zero_and_negative_flux() -> None:
    flux_error = np.full((3, 5), 0.5)
    errors = luptitude_errors(np.array([[-1.0] * 5, [0.0] * 5, [100.0] * 5]), flux_error)
    assert np.isfinite(errors).all()
    # at zero flux the error is the softening's: 2.5/ln10 * sigma / (2b)
    np.testing.assert_allclose(
        errors[1], 2.5 / np.log(10) * 0.5e-9 / (2 * np.array([1.4e-10, 0.9e-10, 1.2e-10, 1.8e-10, 7.4e-10]))
    )
    # bright: the ordinary magnitude error 1.0857 sigma / f
    np.testing.assert_allclose(errors[2], 2.5 / np.log(10) * 0.5 / 100.0, rtol=1e-3)


def test_too_small_a_cutout_for_the_sky_aperture_is_refused() -> None:
    with pytest.raises(ValueError, match="too few to measure the sky noise"):
        sky_noise(np.zeros((1, 16, 16, 5), np.float32))
