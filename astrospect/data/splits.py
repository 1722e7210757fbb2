"""Train / validation / holdout by a stable hash of ``objid`` (DESIGN.md §5).

A galaxy's split depends on its objid alone, never on which shard or night it arrived in, so the holdout
is fixed as the data grows and every night's models and the champion are compared on the same galaxies.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import numpy.typing as npt

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


def assign_split(
    objid: npt.ArrayLike, train_fraction: float = 0.8, val_fraction: float = 0.1
) -> npt.NDArray[np.str_]:
    """The split of each objid: ``train`` below ``train_fraction``, then ``val``, the rest ``holdout``."""
    u = objid_unit_hash(objid)
    return np.where(
        u < train_fraction,
        Split.TRAIN.value,
        np.where(u < train_fraction + val_fraction, Split.VAL.value, Split.HOLDOUT.value),
    )


def split_mask(
    objid: npt.ArrayLike, split: Split, train_fraction: float = 0.8, val_fraction: float = 0.1
) -> npt.NDArray[np.bool_]:
    return assign_split(objid, train_fraction, val_fraction) == split.value
