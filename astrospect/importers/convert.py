"""Bring imported pixels to what the models expect: nanomaggies, SDSS's 0.396"/pixel, 32x32 centred cutouts.

A :class:`Conversion` is decided once per import from the source's declared unit, pixel scale and cutout size
(before any pixel is read, so an impossible one fails at once), then applied to each chunk. What it did is
said in words (:meth:`Conversion.describe`) and recorded in every shard's attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from astrospect.settings import CUTOUT_SIZE, N_BANDS, PIXEL_SCALE_ARCSEC

# Multiply a pixel in this unit by the factor to get nanomaggies (1 nanomaggy = 3.631 microjansky, AB).
FLUX_UNITS: dict[str, float] = {
    "nanomaggies": 1.0,
    "maggies": 1e9,
    "microjansky": 1.0 / 3.631,
    "jansky": 1e6 / 3.631,
}
# A scale this close to SDSS's (relative) is SDSS's: headers round 0.396127 to 0.396 or 0.3961.
SCALE_TOLERANCE = 2e-3


class ConversionError(ValueError):
    """An import that cannot give the models what they expect; the message says what and why, and
    ``field`` which option (``flux_unit`` or ``pixel_scale``) it is about."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Conversion:
    source_size: int  # H = W of the source cutouts
    flux_unit: str
    pixel_scale: float  # arcsec / pixel of the source

    def __post_init__(self) -> None:
        if self.flux_unit not in FLUX_UNITS:
            raise ConversionError(
                f"flux unit {self.flux_unit!r} is not one of {', '.join(FLUX_UNITS)} (per-pixel fluxes; "
                "counts need a calibration this importer does not guess)",
                "flux_unit",
            )
        if not self.pixel_scale > 0:
            raise ConversionError(
                f"pixel scale must be positive arcsec/pixel, got {self.pixel_scale}", "pixel_scale"
            )
        if self.resampled_size < CUTOUT_SIZE:
            raise ConversionError(
                f'{self.source_size}x{self.source_size} cutouts at {self.pixel_scale}"/pixel cover '
                f"{self.source_size * self.pixel_scale:.1f}\", less than the models' "
                f'{CUTOUT_SIZE} x {PIXEL_SCALE_ARCSEC}" = {CUTOUT_SIZE * PIXEL_SCALE_ARCSEC:.1f}"',
                "pixel_scale",
            )

    @classmethod
    def for_source(cls, path: Path, source_size: int, flux_unit: str, pixel_scale: float) -> Conversion:
        """The conversion of one source's cutouts; an error names the file and the option at fault."""
        try:
            return cls(source_size, flux_unit, pixel_scale)
        except ConversionError as error:
            raise ConversionError(f"{path}: field '{error.field}': {error}", error.field) from None

    @property
    def flux_factor(self) -> float:
        return FLUX_UNITS[self.flux_unit]

    @property
    def resamples(self) -> bool:
        return abs(self.pixel_scale / PIXEL_SCALE_ARCSEC - 1.0) > SCALE_TOLERANCE

    @property
    def resampled_size(self) -> int:
        """The source cutout's side in SDSS pixels (the same sky, before cropping)."""
        if not self.resamples:
            return self.source_size
        return int(np.floor(self.source_size * self.pixel_scale / PIXEL_SCALE_ARCSEC))

    def describe(self) -> dict[str, str]:
        """What was done, as shard attributes (the keys start with ``import_``)."""
        flux = (
            "nanomaggies, unchanged"
            if self.flux_factor == 1.0
            else f"{self.flux_unit} x {self.flux_factor:.6g} -> nanomaggies"
        )
        steps = []
        if self.resamples:
            steps.append(
                f'resampled {self.pixel_scale:g} -> {PIXEL_SCALE_ARCSEC}"/pixel '
                f"({self.source_size} -> {self.resampled_size} pixels, linear interpolation, "
                "flux per pixel scaled by the pixel-area ratio)"
            )
        if self.resampled_size != CUTOUT_SIZE:
            start = (self.resampled_size - CUTOUT_SIZE) // 2
            steps.append(
                f"centre-cropped {self.resampled_size} -> {CUTOUT_SIZE} pixels "
                f"(rows and columns {start}..{start + CUTOUT_SIZE - 1})"
            )
        return {
            "import_flux_unit": flux,
            "import_pixel_scale": f'{self.pixel_scale:g}"/pixel'
            + (" (SDSS, unchanged)" if not self.resamples else ""),
            "import_cutout": "; ".join(steps) or f"{CUTOUT_SIZE}x{CUTOUT_SIZE}, unchanged",
        }

    def apply(self, images: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """Band-first ``(N, 5, S, S)`` in the source's unit and scale -> ``(N, 5, 32, 32)`` nanomaggies."""
        if images.ndim != 4 or images.shape[1] != N_BANDS or images.shape[2:] != (self.source_size,) * 2:
            raise ConversionError(
                f"expected (N, {N_BANDS}, {self.source_size}, {self.source_size}), got {images.shape}",
                "images",
            )
        array = images
        if self.resamples:
            array = self._resample(array)
        start = (array.shape[-1] - CUTOUT_SIZE) // 2
        array = array[:, :, start : start + CUTOUT_SIZE, start : start + CUTOUT_SIZE]
        out = np.array(array, dtype=np.float32)  # a copy: never a view into a memory map
        if self.flux_factor != 1.0:
            out *= np.float32(self.flux_factor)
        return out

    def _resample(self, images: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """Sample the source at the centres of SDSS pixels laid on the same sky, centre on centre.

        Pixel values are surface brightness times pixel area, so interpolated values are scaled by the
        area ratio: a galaxy's summed flux stays the same whatever the source's scale.
        """
        from scipy.ndimage import map_coordinates

        ratio = PIXEL_SCALE_ARCSEC / self.pixel_scale  # source pixels per SDSS pixel
        centre_in, centre_out = (self.source_size - 1) / 2, (self.resampled_size - 1) / 2
        axis = centre_in + (np.arange(self.resampled_size) - centre_out) * ratio
        rows, cols = np.meshgrid(axis, axis, indexing="ij")
        flat = images.reshape(-1, self.source_size, self.source_size).astype(np.float64)
        out = np.empty((flat.shape[0], self.resampled_size, self.resampled_size))
        for k, plane in enumerate(flat):
            out[k] = map_coordinates(plane, [rows, cols], order=1, mode="nearest")
        out *= ratio**2
        return out.reshape(images.shape[0], N_BANDS, self.resampled_size, self.resampled_size)
