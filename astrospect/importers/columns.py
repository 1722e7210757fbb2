"""Which source column holds which label: the options every importer shares, and the lookup.

Names differ between layouts (the Pasquet release says ``z``, our shards ``specz_redshift``), so each
importer has its own defaults and the user can override any. objid, spec-z and its error are required; ra,
dec and E(B-V) are optional: a default name the file lacks is skipped, a name the user gave is required.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

REQUIRED = ("objid", "specz", "specz_err")
OPTIONAL = ("ra", "dec", "ebv")


@dataclass(frozen=True)
class ColumnMap:
    objid: str
    specz: str
    specz_err: str
    ra: str = ""
    dec: str = ""
    ebv: str = ""  # the shard's optional `ebv` dataset: Galactic foreground E(B-V)
    explicit: tuple[str, ...] = ()  # the labels the user named (an absent one is then an error)

    def as_dict(self) -> dict[str, str]:
        return {key: value for key, value in asdict(self).items() if key != "explicit"}

    def resolve(self, available: Collection[str], source: str) -> dict[str, str]:
        """The label -> column pairs to read; raises naming the file, the column and what it has instead."""
        chosen = {}
        for label, column in self.as_dict().items():
            if not column:
                continue
            if column in available:
                chosen[label] = column
            elif label in REQUIRED or label in self.explicit:
                raise KeyError(
                    f"{source}: field '{column}': no such column (needed for {label}); "
                    f"the file has: {', '.join(sorted(available)) or 'nothing'}"
                )
        return chosen


def labels_from(
    chosen: dict[str, str], read: Callable[[str], npt.ArrayLike], source: str, n: int
) -> dict[str, npt.NDArray[np.generic]]:
    """Read each chosen column (``read(column)`` gives its values for the rows at hand) as a flat array of
    ``n``; objid must be integral, the rest numeric."""
    out: dict[str, npt.NDArray[np.generic]] = {}
    for label, column in chosen.items():
        values = np.asarray(read(column))
        if values.ndim == 2 and values.shape[1] == 1:  # (N, 1) columns, as in Pasquet's example file
            values = values[:, 0]
        if values.shape != (n,):
            raise ValueError(f"{source}: field '{column}': expected {n} values, got shape {values.shape}")
        if label == "objid":
            if not np.issubdtype(values.dtype, np.integer):
                raise ValueError(f"{source}: field '{column}': objid must be integers, got {values.dtype}")
            out[label] = values.astype(np.int64)
        elif np.issubdtype(values.dtype, np.number):
            out[label] = values.astype(np.float64)
        else:
            raise ValueError(f"{source}: field '{column}': expected numbers, got {values.dtype}")
    return out
