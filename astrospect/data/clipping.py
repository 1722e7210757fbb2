"""The data clippings: which training galaxies a challenger sees.

A *clipping* is a data selection, never a model: ``full`` keeps every galaxy; ``clipped`` keeps z <= 0.4,
the seed's second experiment. Clipping applies to the training and validation splits only; the holdout is
never clipped, so every challenger and the champion are scored on the same galaxies (docs/explanation/architecture.md,
"Splits").
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

Clipping = Literal["full", "clipped"]
CLIPPINGS: tuple[Clipping, ...] = ("full", "clipped")
UNCLIPPED: Clipping = "full"  # what the holdout always is
CLIPPED_Z_MAX = 0.4  # the clipped set keeps z <= 0.4


def clipping_keeps(clipping: Clipping, redshift: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Which galaxies a clipping keeps, by spectroscopic redshift."""
    z = np.asarray(redshift)
    if clipping == "full":
        return np.ones(z.shape, dtype=bool)
    if clipping == "clipped":
        return z <= CLIPPED_Z_MAX
    raise ValueError(f"clipping must be one of {', '.join(CLIPPINGS)}, got {clipping!r}")
