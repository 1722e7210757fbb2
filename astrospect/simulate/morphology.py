"""Morphology follows colour: red galaxies are bulge dominated, and bulges are redder than their disks.

The bulge fraction is logistic in the galaxy's standardised rest-frame g-r, with scatter. The bulge mix is
moved toward the red galaxies' mix and the disk's away from it, keeping their light-weighted sum, so
galaxies carry colour gradients. The bulge fraction also names the Hubble type.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special

from astrospect.simulate.spectra import FloatArray

# Bulge fraction: logistic in the galaxy's rest-frame g-r (standardised), with scatter.
BULGE_COLOUR_SLOPE, BULGE_OFFSET, BULGE_SCATTER = 1.6, -0.4, 0.6
COLOUR_GRADIENT = 0.5  # the bulge mix moves this far (times the disk's share) toward the red galaxies' mix
GALAXY_TYPES = ("E", "S0/Sa", "Sb", "Sc", "Irr")  # by bulge fraction: >0.7, >0.4, >0.2, >0.07, else
TYPE_BULGE_EDGES = (0.7, 0.4, 0.2, 0.07)


def bulge_fraction_of(colour_score: FloatArray, unit_normal: FloatArray) -> FloatArray:
    """Bulge share of the r light: logistic in the standardised rest-frame g-r, with scatter."""
    return np.asarray(
        special.expit(BULGE_COLOUR_SLOPE * colour_score + BULGE_OFFSET + BULGE_SCATTER * unit_normal)
    )


def component_mixes(
    total_mix: FloatArray, red_mix: FloatArray, bulge_fraction: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Bulge toward the red galaxies' mix, disk away from it, keeping B * bulge + (1 - B) * disk = total.

    The bulge moves COLOUR_GRADIENT * (1 - B) of the way; as far as the disk's coefficients stay
    non-negative (a disk cannot be bluer than its bluest template allows).
    """
    toward_red = red_mix[None, :] - total_mix
    step = COLOUR_GRADIENT * (1.0 - bulge_fraction)
    # disk = total - B / (1 - B) * step * toward_red must stay >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(toward_red > 0, total_mix / toward_red, np.inf).min(axis=1)
    disk_share = np.clip(1.0 - bulge_fraction, 1e-6, None)
    step = np.minimum(step, room * disk_share / np.clip(bulge_fraction, 1e-6, None))
    bulge = total_mix + step[:, None] * toward_red
    disk = total_mix - (bulge_fraction / disk_share * step)[:, None] * toward_red
    return bulge, np.clip(disk, 0.0, None)


def galaxy_type_of(bulge_fraction: FloatArray) -> npt.NDArray[np.int8]:
    """Index into GALAXY_TYPES by bulge fraction (edges TYPE_BULGE_EDGES, from the most bulge dominated)."""
    return np.searchsorted(-np.asarray(TYPE_BULGE_EDGES), -bulge_fraction, side="right").astype(np.int8)
