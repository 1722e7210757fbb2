"""Model-like magnitudes from cutouts: the per-band PSF correction of the r-moment-weighted fluxes."""

from __future__ import annotations

import galsim
import numpy as np
import pytest

from astrospect.data.photometry import model_magnitudes, psf_flux_correction
from astrospect.settings import CUTOUT_SIZE, PIXEL_SCALE_ARCSEC

pytestmark = pytest.mark.unit

# Seeing that widens toward the blue, as SDSS's does (Kolmogorov: FWHM ~ wavelength^-1/5).
PSF_FWHM_ARCSEC = np.array([1.57, 1.47, 1.40, 1.35, 1.30])


def _grey_galaxy(half_light_arcsec: float) -> np.ndarray:
    """One channels-last cutout of an exponential disk with the same flux in every band (colours 0)."""
    galaxy = galsim.Exponential(half_light_radius=half_light_arcsec, flux=2000.0).shear(
        q=0.6, beta=0.3 * galsim.radians
    )
    bands = [
        galsim.Convolve(galaxy, galsim.Kolmogorov(fwhm=fwhm))
        .drawImage(nx=CUTOUT_SIZE, ny=CUTOUT_SIZE, scale=PIXEL_SCALE_ARCSEC)
        .array
        for fwhm in PSF_FWHM_ARCSEC
    ]
    return np.stack(bands, axis=-1)[None]


@pytest.mark.parametrize("half_light_arcsec", [0.8, 1.5, 2.5])
def test_psf_correction_recovers_the_colours_that_the_bands_seeing_reddens(half_light_arcsec: float) -> None:
    images = _grey_galaxy(half_light_arcsec)
    raw, _ = model_magnitudes(images)
    corrected, _ = model_magnitudes(images, PSF_FWHM_ARCSEC[None])
    raw_colours, corrected_colours = np.diff(-raw[0]), np.diff(-corrected[0])  # u-g, g-r, r-i, i-z
    # Uncorrected, a fixed r weight catches less of the blurrier blue bands: every colour reads red.
    assert (raw_colours > 0.002).all(), raw_colours
    # Corrected, the grey galaxy's colours are 0 within a few millimag, at least 3x closer than before.
    assert np.abs(corrected_colours).max() < 0.005, corrected_colours
    assert (np.abs(corrected_colours) < np.abs(raw_colours) / 3).all()


def test_psf_correction_is_one_for_the_r_band_and_where_the_moments_failed() -> None:
    moments = np.stack([np.diag([9.0, 6.0]), np.full((2, 2), np.nan)])
    factor = psf_flux_correction(moments, np.tile(PSF_FWHM_ARCSEC, (2, 1)))
    assert factor[0, 2] == pytest.approx(1.0)
    assert factor[0, 0] > factor[0, 1] > 1.0 > factor[0, 3] > factor[0, 4]
    np.testing.assert_array_equal(factor[1], np.ones(5))
