"""Which source column holds which label: the options every importer shares, and the lookup.

Names differ between layouts (the Pasquet release says ``z``, our shards ``specz_redshift``), so each
importer has its own defaults (below) and the user can override any. objid and the spec-z are required; the
spec-z error, ra, dec and E(B-V) are optional: a default name the file lacks is skipped (a spec-z error the
file lacks is stored as NaN, "unknown"), a name the user gave is required, and ``''`` means "none".

A name matches a column exactly, or else ignoring case when exactly one column does (``objid`` finds
``objID``); a name that matches nothing gets the closest names as a "did you mean".
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from astrospect.importers.errors import ImporterError

REQUIRED = ("objid", "specz")
OPTIONAL = ("specz_err", "ra", "dec", "ebv")
# What each label is, for the CLI's help and the error messages.
ROLES = {
    "objid": "the SDSS objid (integers)",
    "specz": "the spectroscopic redshift",
    "specz_err": "the spec-z error ('' or a default name the file lacks: stored as NaN, unknown)",
    "ra": "RA in degrees ('' for none)",
    "dec": "Dec in degrees ('' for none)",
    "ebv": "Galactic E(B-V) ('' for none)",
}


@dataclass(frozen=True)
class ColumnMap:
    objid: str
    specz: str
    specz_err: str = ""
    ra: str = ""
    dec: str = ""
    ebv: str = ""  # the shard's optional `ebv` dataset: Galactic foreground E(B-V)
    explicit: tuple[str, ...] = ()  # the labels the user named (an absent one is then an error)

    def as_dict(self) -> dict[str, str]:
        return {key: value for key, value in asdict(self).items() if key != "explicit"}

    def resolve(self, available: Collection[str], source: str) -> dict[str, str]:
        """The label -> column pairs to read; raises :class:`ImporterError` naming the file, the field and
        why (no such column, with the closest names; or more than one column that differs only in case)."""
        chosen = {}
        for label, column in self.as_dict().items():
            if not column:
                continue
            found = match_column(column, available, source, label)
            if found is not None:
                chosen[label] = found
            elif label in REQUIRED or label in self.explicit:
                raise ImporterError(
                    f"{source}: field '{column}': no such column (needed for {label}, {ROLES[label]})"
                    f"{did_you_mean(column, available)}; the file has: {', '.join(sorted(available)) or 'nothing'}"
                )
        return chosen


# Each layout's default names: the CLI shows them in its help, the sources use them.
# The column names of the Pasquet et al. (2019) release's labels.
PASQUET_NPZ = ColumnMap(objid="objID", specz="z", specz_err="zErr", ra="ra", dec="dec", ebv="EBV")
# The project's own shard names: a folder of shards (or a cube written like one) imports without options.
HDF5_CUBE = ColumnMap(
    objid="objid", specz="specz_redshift", specz_err="specz_redshift_err", ra="ra", dec="dec", ebv="ebv"
)
# SDSS's CasJobs names (SpecObj / PhotoObj), as a catalogue downloaded from SkyServer has them.
FITS_CATALOGUE = ColumnMap(objid="objid", specz="z", specz_err="zerr", ra="ra", dec="dec", ebv="ebv")


def match_column(name: str, available: Collection[str], source: str, label: str) -> str | None:
    """``name`` itself if the file has it, else the one column equal to it ignoring case, else None.
    Two or more columns that differ only in case are ambiguous: an error naming them."""
    if name in available:
        return name
    folded = [column for column in available if column.casefold() == name.casefold()]
    if len(folded) > 1:
        raise ImporterError(
            f"{source}: field '{name}': ambiguous for {label}: the columns {', '.join(sorted(folded))} differ "
            "only in case; give the exact name"
        )
    return folded[0] if folded else None


def did_you_mean(name: str, available: Collection[str]) -> str:
    """`` (did you mean 'x' or 'y'?)`` for the closest column names (difflib, ignoring case), or ''."""
    by_folded = {column.casefold(): column for column in available}
    close = difflib.get_close_matches(name.casefold(), list(by_folded), n=3, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {' or '.join(repr(by_folded[match]) for match in close)}?)"


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
            raise ImporterError(f"{source}: field '{column}': expected {n} values, got shape {values.shape}")
        if label == "objid":
            if not np.issubdtype(values.dtype, np.integer):
                raise ImporterError(f"{source}: field '{column}': objid must be integers, got {values.dtype}")
            out[label] = values.astype(np.int64)
        elif np.issubdtype(values.dtype, np.number):
            out[label] = values.astype(np.float64)
        else:
            raise ImporterError(f"{source}: field '{column}': expected numbers, got {values.dtype}")
    return out
