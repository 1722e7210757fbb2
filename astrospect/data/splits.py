"""Train / validation / holdout by a stable hash of ``objid`` (docs/explanation/architecture.md, "Splits").

A galaxy's split depends on its objid alone, never on which shard or night it arrived in, so the holdout
is fixed as the data grows and every night's models and the champion are compared on the same galaxies.
The fractions are constants for the same reason: changing them would move galaxies between splits.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import numpy.typing as npt

TRAIN_FRACTION = 0.8
VAL_FRACTION = 0.1  # the holdout is the remaining 0.1
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    HOLDOUT = "holdout"


def objid_unit_hash(objid: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Map each objid to [0, 1) with splitmix64: fast, vectorised, identical on every machine and release."""
    with np.errstate(over="ignore"):
        x = np.asarray(objid, dtype=np.int64).astype(np.uint64)
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def assign_split(objid: npt.ArrayLike) -> npt.NDArray[np.str_]:
    """The split of each objid: ``train`` below TRAIN_FRACTION, then ``val``, the rest ``holdout``."""
    u = objid_unit_hash(objid)
    return np.where(
        u < TRAIN_FRACTION,
        Split.TRAIN.value,
        np.where(u < TRAIN_FRACTION + VAL_FRACTION, Split.VAL.value, Split.HOLDOUT.value),
    )


def split_mask(objid: npt.ArrayLike, split: Split) -> npt.NDArray[np.bool_]:
    return assign_split(objid) == split.value
