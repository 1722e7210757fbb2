"""Reading an uploaded file for ``predict_file``: an HDF5 shard (docs/reference/shard-format.md) or a ``.npy`` array.

The format is recognised by its signature, not its name. Both readers learn the number of cutouts from
the header before reading pixels: a few bytes of header can declare billions of cutouts, so the count is
bounded before anything is allocated. Errors name the field and the reason, never the server's temp path.
A shard's optional ``ebv`` dataset (each cutout's E(B-V), NaN where unknown) comes along for a champion that
takes it; a ``.npy`` array has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt

from astrospect.data.shards import ShardFormatError, inspect_shard, read_shard
from astrospect.serving.schemas import CutoutError, FloatArray, validate_cutouts
from astrospect.settings import CUTOUT_SIZE, N_BANDS

NPY_MAGIC = b"\x93NUMPY"
_FLOAT32_CUTOUT_BYTES = CUTOUT_SIZE * CUTOUT_SIZE * N_BANDS * 4


class UploadError(ValueError):
    """An upload in a recognised format whose content the model cannot take (400)."""


class UnsupportedUploadError(UploadError):
    """An upload that is neither an HDF5 shard nor a ``.npy`` array (415)."""


@dataclass(frozen=True)
class Upload:
    file_format: str  # "hdf5" or "npy"
    images: FloatArray  # (N, 32, 32, 5), validated
    objid: npt.NDArray[np.int64] | None  # from a shard; a .npy array has none
    ebv: FloatArray | None = None  # a shard's E(B-V) per cutout, NaN where unknown; None when it has none


def file_cutout_limit(max_body_bytes: int) -> int:
    """The most cutouts an upload may hold: as many float32 32x32 cutouts as the body limit carries."""
    return max(1, max_body_bytes // _FLOAT32_CUTOUT_BYTES)


def read_upload(path: Path, max_cutouts: int) -> Upload:
    """Read and validate an uploaded file. Raises :class:`UploadError` or :class:`UnsupportedUploadError`."""
    with path.open("rb") as handle:
        head = handle.read(16)
    if not head:
        raise UnsupportedUploadError("expected an HDF5 shard or a .npy array, got an empty file")
    if h5py.is_hdf5(path):
        return _read_hdf5(path, max_cutouts)
    if head.startswith(NPY_MAGIC):
        return _read_npy(path, max_cutouts)
    raise UnsupportedUploadError(
        f"expected an HDF5 shard (docs/reference/shard-format.md) or a .npy array (numpy.save), got a file starting with {head[:8]!r}"
    )


def _read_hdf5(path: Path, max_cutouts: int) -> Upload:
    source = "HDF5 shard"
    try:
        info = inspect_shard(path, require_labels=False)
        if info.n > max_cutouts:
            raise UploadError(
                f"{source}: field 'images': expected at most {max_cutouts} cutouts per file, got {info.n}"
            )
        cutouts = read_shard(path, require_labels=False)
    except ShardFormatError as error:
        raise UploadError(
            f"{source}: field '{error.field}': {error.reason.replace(str(path), '<upload>')}"
        ) from error
    except OSError as error:  # h5py: a chunk that does not decompress, a truncated dataset
        raise UploadError(
            f"{source}: unreadable data ({str(error).replace(str(path), '<upload>')})"
        ) from error
    images = _validated(cutouts.images, source=f"{source} field 'images'", max_cutouts=max_cutouts)
    return Upload("hdf5", images, cutouts.objid, _validated_ebv(cutouts.ebv, source=source))


def _read_npy(path: Path, max_cutouts: int) -> Upload:
    source = ".npy array"
    try:
        # Memory-mapped: the header's shape is checked before a single pixel is read.
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:  # object dtype, corrupt header, truncated data
        raise UploadError(f"{source}: unreadable ({error})") from error
    if array.ndim >= 1 and array.shape[0] > max_cutouts:
        raise UploadError(f"{source}: expected at most {max_cutouts} cutouts per file, got {array.shape[0]}")
    return Upload("npy", _validated(np.array(array), source=source, max_cutouts=max_cutouts), None)


def _validated_ebv(ebv: FloatArray | None, *, source: str) -> FloatArray | None:
    """A shard's E(B-V), as the JSON routes take it: NaN means unknown (the shard format's own convention),
    but a negative or infinite reddening is no E(B-V) at all."""
    if ebv is None:
        return None
    bad = np.isinf(ebv) | (ebv < 0)
    if bad.any():
        raise UploadError(
            f"{source}: field 'ebv': expected each E(B-V) finite and >= 0 (NaN where unknown), got"
            f" {int(bad.sum())} other value(s); the first at row {int(np.argmax(bad))}: {float(ebv[np.argmax(bad)])}"
        )
    return ebv


def _validated(images: object, *, source: str, max_cutouts: int) -> FloatArray:
    try:
        return validate_cutouts(images, max_cutouts=max_cutouts, source=source)
    except CutoutError as error:
        raise UploadError(str(error)) from error
