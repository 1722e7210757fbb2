"""A night's observing conditions: what a drifted night of the survey changes, one knob at a time.

The defaults are the calibrated SDSS values the simulator is checked against (``synth-check``). A night can
have worse seeing (the median r-band PSF FWHM every stamp's PSF is drawn around), a deeper target limit (a
new field, more distant galaxies), or a calibration error: a per-band zero-point offset in magnitudes,
measured minus true, applied to the finished pixels the way a wrong photometric zero point would be (a
``+0.05`` in r makes every r pixel, sky noise included, 0.05 mag fainter). ``astrospect synth --seeing
--r-limit --calibration-offset`` sets them; the shard's attributes record them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from astrospect.settings import BANDS, N_BANDS
from astrospect.simulate.population import PopulationModel, population_model
from astrospect.simulate.render import SEEING_R_MEDIAN_ARCSEC
from astrospect.simulate.selection import R_FAINT_LIMIT, faint_extension, selection_table
from astrospect.simulate.template_fit import shares_to_mix

SEEING_RANGE_ARCSEC = (0.5, 4.0)
R_LIMIT_RANGE_MAG = (15.0, 19.0)  # the main sample's redshift grid (z < 0.45) holds up to r ~ 19
MAX_CALIBRATION_OFFSET_MAG = 1.0


def _no_offsets() -> tuple[float, ...]:
    return (0.0,) * N_BANDS


@dataclass(frozen=True)
class ObservingConditions:
    """The night's medians and limits; each stamp's own :class:`~astrospect.simulate.render.Conditions`
    (seeing, sky, artefacts) are drawn around them."""

    seeing_fwhm_arcsec: float = SEEING_R_MEDIAN_ARCSEC  # median r-band PSF FWHM
    r_limit_mag: float = R_FAINT_LIMIT  # target limit on the true total r
    calibration_offset_mag: tuple[float, ...] = field(default_factory=_no_offsets)  # ugriz, measured - true

    def __post_init__(self) -> None:
        low, high = SEEING_RANGE_ARCSEC
        if not low <= self.seeing_fwhm_arcsec <= high:
            raise ValueError(f"seeing_fwhm_arcsec must be in [{low}, {high}], got {self.seeing_fwhm_arcsec}")
        low, high = R_LIMIT_RANGE_MAG
        if not low <= self.r_limit_mag <= high:
            raise ValueError(f"r_limit_mag must be in [{low}, {high}], got {self.r_limit_mag}")
        offsets = tuple(float(value) for value in self.calibration_offset_mag)
        if len(offsets) != N_BANDS or any(abs(value) > MAX_CALIBRATION_OFFSET_MAG for value in offsets):
            raise ValueError(
                f"calibration_offset_mag must be {N_BANDS} values ({BANDS}) within "
                f"+-{MAX_CALIBRATION_OFFSET_MAG} mag, got {self.calibration_offset_mag}"
            )
        object.__setattr__(self, "calibration_offset_mag", offsets)

    @classmethod
    def with_offsets(cls, offsets: dict[str, float], **knobs: float) -> ObservingConditions:
        """Conditions with a calibration offset for the named bands (e.g. ``{"r": 0.05}``)."""
        unknown = sorted(set(offsets) - set(BANDS))
        if unknown:
            raise ValueError(f"calibration offset for unknown band(s) {unknown}; bands are {BANDS}")
        return cls(calibration_offset_mag=tuple(offsets.get(band, 0.0) for band in BANDS), **knobs)

    def calibrate(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Band-first stamps (n, 5, H, W) as this night's zero points report them (unchanged at 0 offset)."""
        if not any(self.calibration_offset_mag):
            return images
        factor = 10.0 ** (-0.4 * np.asarray(self.calibration_offset_mag))
        return (images * factor.astype(np.float32)[None, :, None, None]).astype(np.float32)

    def attrs(self) -> dict[str, Any]:
        """Shard attributes recording the night (HDF5 attributes: numbers and arrays)."""
        return {
            "seeing_fwhm_arcsec": self.seeing_fwhm_arcsec,
            "r_limit_mag": self.r_limit_mag,
            "calibration_offset_mag": np.asarray(self.calibration_offset_mag),
        }


@cache
def population_for(r_limit_mag: float) -> PopulationModel:
    """The population seen through ``r_limit_mag``. The colour knots stay the calibrated ones: a deeper
    limit brings in more (and more distant) galaxies, it does not change what a galaxy at z looks like."""
    model = population_model()
    if r_limit_mag == R_FAINT_LIMIT:
        return model
    knot_mixes = shares_to_mix(model.grid, model.mixture.knot_shares)
    return replace(
        model,
        selection=selection_table(model.mixture.knot_redshift, knot_mixes, r_limit_mag),
        faint=faint_extension(model.mixture.knot_redshift, knot_mixes, r_limit_mag)
        if r_limit_mag > R_FAINT_LIMIT
        else None,
    )
