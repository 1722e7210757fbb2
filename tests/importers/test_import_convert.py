"""The importers' pixel conversion: units to nanomaggies, other pixel scales resampled to SDSS's with the
flux kept, cutouts centre-cropped to the models' size, and what cannot be done refused up front."""

from __future__ import annotations

import numpy as np
import pytest

from astrospect.importers.convert import Conversion, ConversionError
from astrospect.settings import CUTOUT_SIZE, PIXEL_SCALE_ARCSEC

pytestmark = pytest.mark.unit


def _gaussian(size: int, scale: float, sigma_arcsec: float = 1.2, flux: float = 100.0) -> np.ndarray:
    """A round galaxy of ``flux`` at the cutout's centre, sampled at ``scale`` arcsec/pixel, five bands."""
    axis = (np.arange(size) - (size - 1) / 2) * scale
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    plane = np.exp(-(xx**2 + yy**2) / (2 * sigma_arcsec**2))
    plane *= flux / plane.sum()
    return np.broadcast_to(plane, (1, 5, size, size)).astype(np.float32)


def test_units_are_converted_to_nanomaggies_and_said() -> None:
    images = np.ones((2, 5, 32, 32), dtype=np.float32)
    maggies = Conversion(32, "maggies", PIXEL_SCALE_ARCSEC)
    np.testing.assert_allclose(maggies.apply(images), 1e9)
    np.testing.assert_allclose(Conversion(32, "microjansky", 0.396).apply(images * 3.631), 1.0, rtol=1e-6)
    assert maggies.describe()["import_flux_unit"] == "maggies x 1e+09 -> nanomaggies"
    with pytest.raises(ConversionError, match="counts"):
        Conversion(32, "counts", 0.396)


def test_an_odd_sized_cutout_is_cropped_around_its_centre_pixel() -> None:
    images = np.zeros((1, 5, 107, 107), dtype=np.float32)
    images[0, :, 53, 53] = 1.0  # the centre pixel of 107
    out = Conversion(107, "nanomaggies", 0.396).apply(images)
    assert out.shape == (1, 5, CUTOUT_SIZE, CUTOUT_SIZE)
    assert out[0, 0, 16, 16] == 1.0 and out.sum() == 5.0  # pixel 16 of 32: the crop's centre, as 53 of 107
    assert not Conversion(107, "nanomaggies", 0.396).resamples


def test_a_finer_pixel_scale_is_resampled_keeping_flux_and_centre() -> None:
    conversion = Conversion(128, "nanomaggies", 0.2)
    assert conversion.resamples and conversion.resampled_size == 64
    out = conversion.apply(_gaussian(128, 0.2))
    native = Conversion(32, "nanomaggies", PIXEL_SCALE_ARCSEC).apply(_gaussian(32, PIXEL_SCALE_ARCSEC))
    assert out.sum() / 5 == pytest.approx(100.0, rel=0.01)
    np.testing.assert_allclose(out, native, atol=0.02 * native.max())  # as if observed at 0.396"/pixel
    assert "resampled 0.2 -> 0.396" in conversion.describe()["import_cutout"]


def test_a_cutout_smaller_than_the_models_sky_is_refused() -> None:
    with pytest.raises(ConversionError, match="less than the models'"):
        Conversion(48, "nanomaggies", 0.2)  # 9.6 arcsec < 32 x 0.396 = 12.7
