"""The Pasquet et al. (2019) layout: one ``.npz`` with ``cube`` (N, 64, 64, 5) ugriz and ``labels``, a record array.

The full release is 54 GB, far more than memory, so no member is ever read whole. An ``.npz`` is a zip of
``.npy`` files. A member stored uncompressed lies as plain bytes in the zip: its ``.npy`` header is parsed
at the member's data offset and each range of rows is memory-mapped on its own (and unmapped after), so
resident memory stays at one range. A compressed member (``np.savez_compressed``) is inflated as a stream,
front to back, one range at a time. Both need rows that are contiguous: object arrays and Fortran-order
arrays are refused with the reason.
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
from numpy.lib import format as npy_format

from astrospect.importers.columns import PASQUET_NPZ, ColumnMap, labels_from
from astrospect.importers.convert import Conversion
from astrospect.importers.writer import ImporterError, Rows
from astrospect.settings import N_BANDS

LAYOUT = "pasquet-npz"
IMAGES_MEMBER, LABELS_MEMBER = "cube", "labels"
# The column names of the Pasquet et al. release's labels (override any with the options). Its spec-z
# error is optional: labels without a zErr field import, with the error stored as NaN (unknown).
DEFAULT_COLUMNS = PASQUET_NPZ
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # a zip local file header, before the name and extra field


@dataclass
class NpyMember:
    """One ``.npy`` inside the zip: its array header and how its rows are reached."""

    zip_path: Path
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[np.generic]
    compressed: bool
    data_offset: int  # uncompressed only: where the array's first byte lies in the zip file
    _archive: zipfile.ZipFile | None = None
    _stream: IO[bytes] | None = None
    _stream_row: int = 0

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def rows(self, start: int, stop: int) -> npt.NDArray[np.generic]:
        """Rows ``start:stop``: a memory map of just those bytes, or the next bytes of the inflated stream."""
        count = (stop - start, *self.shape[1:])
        if not self.compressed:
            return np.memmap(
                self.zip_path,
                dtype=self.dtype,
                mode="r",
                offset=self.data_offset + start * self.row_bytes,
                shape=count,
            )
        stream = self._open_at(start)
        data = _read_exactly(stream, (stop - start) * self.row_bytes, self)
        self._stream_row = stop
        return np.frombuffer(data, dtype=self.dtype).reshape(count)

    def _open_at(self, start: int) -> IO[bytes]:
        """A compressed member can only be read forwards: reopen it for an earlier row, skip to a later one."""
        if self._stream is None or start < self._stream_row:
            self.close()
            self._archive = zipfile.ZipFile(self.zip_path)
            self._stream = self._archive.open(f"{self.name}.npy")
            _read_header(self._stream, self.zip_path, self.name)
            self._stream_row = 0
        while self._stream_row < start:  # resume: inflate and drop what was imported, a range at a time
            step = min(start - self._stream_row, max(1, (64 << 20) // max(self.row_bytes, 1)))
            _read_exactly(self._stream, step * self.row_bytes, self)
            self._stream_row += step
        return self._stream

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        if self._archive is not None:
            self._archive.close()
        self._stream = self._archive = None


def _read_exactly(stream: IO[bytes], size: int, member: NpyMember) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ImporterError(
            f"{member.zip_path}: field '{member.name}': truncated member ({len(data)} of {size} bytes)"
        )
    return data


def _read_header(
    stream: IO[bytes], path: Path, name: str
) -> tuple[tuple[int, ...], bool, np.dtype[np.generic]]:
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            return npy_format.read_array_header_1_0(stream)
        if version == (2, 0):
            return npy_format.read_array_header_2_0(stream)
        raise ValueError(f"unsupported .npy format version {version}")
    except ValueError as error:
        raise ImporterError(f"{path}: field '{name}': not a readable .npy member: {error}") from error


def open_member(path: Path, archive: zipfile.ZipFile, name: str) -> NpyMember:
    """Parse a member's ``.npy`` header without reading its data; refuse what cannot be read by rows."""
    try:
        info = archive.getinfo(f"{name}.npy")
    except KeyError:
        members = ", ".join(n.removesuffix(".npy") for n in archive.namelist())
        raise ImporterError(
            f"{path}: field '{name}': no such array in the .npz (it has: {members})"
        ) from None
    compressed = info.compress_type != zipfile.ZIP_STORED
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ImporterError(
            f"{path}: field '{name}': zip compression method {info.compress_type} cannot be streamed here "
            "(only stored or deflated, as numpy writes them)"
        )
    with archive.open(info) as stream:
        shape, fortran, dtype = _read_header(stream, path, name)
        header_bytes = stream.tell()
    if dtype.hasobject:
        raise ImporterError(
            f"{path}: field '{name}': an object array ({dtype}) is pickled, not stored by rows: it cannot be "
            "streamed (and unpickling an untrusted file runs code); save it with plain dtypes"
        )
    if fortran and len(shape) > 1:
        raise ImporterError(
            f"{path}: field '{name}': stored in Fortran order, so a galaxy's pixels are spread over the whole "
            "member and cannot be read row by row; re-save it C-ordered (np.ascontiguousarray)"
        )
    data_offset = -1
    if not compressed:
        with path.open("rb") as raw:
            raw.seek(info.header_offset)
            fields = _LOCAL_HEADER.unpack(raw.read(_LOCAL_HEADER.size))
            name_length, extra_length = fields[9], fields[10]
        data_offset = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length + header_bytes
    return NpyMember(path, name, tuple(shape), dtype, compressed, data_offset)


class NpzSource:
    """Rows of a Pasquet-layout ``.npz``: pixels from ``cube``, labels from the ``labels`` record array."""

    layout = LAYOUT

    def __init__(
        self,
        path: Path,
        columns: ColumnMap = DEFAULT_COLUMNS,
        *,
        flux_unit: str = "nanomaggies",
        pixel_scale: float = 0.396,
    ) -> None:
        self.path = path
        if not path.is_file():
            raise ImporterError(f"{path}: field '<file>': no such file")
        if not zipfile.is_zipfile(path):
            raise ImporterError(f"{path}: field '<file>': not an .npz (zip) file")
        with zipfile.ZipFile(path) as archive:
            self.cube = open_member(path, archive, IMAGES_MEMBER)
            self.labels = open_member(path, archive, LABELS_MEMBER)
        shape = self.cube.shape
        if len(shape) != 4 or shape[3] != N_BANDS or shape[1] != shape[2]:
            raise ImporterError(
                f"{path}: field 'cube': expected (N, S, S, {N_BANDS}) channels-last ugriz, got {shape}"
            )
        if not np.issubdtype(self.cube.dtype, np.floating):
            raise ImporterError(f"{path}: field 'cube': expected float pixels, got {self.cube.dtype}")
        if self.labels.dtype.names is None or self.labels.shape[:1] != shape[:1]:
            raise ImporterError(
                f"{path}: field 'labels': expected a record array of {shape[0]} rows, got "
                f"{self.labels.dtype} {self.labels.shape}"
            )
        self.n_rows = int(shape[0])
        self.columns = columns
        self.chosen = columns.resolve(self.labels.dtype.names, str(path))
        self.conversion = Conversion.for_source(path, int(shape[1]), flux_unit, pixel_scale)

    def options(self) -> dict[str, object]:
        return {"columns": self.chosen, **self.conversion.describe()}

    def read(self, start: int, stop: int) -> Rows:
        cube = self.cube.rows(start, stop)
        labels: Any = self.labels.rows(start, stop)  # a record array: indexed by field name
        values = labels_from(self.chosen, lambda column: labels[column], str(self.path), stop - start)
        # A view: Conversion copies only the cropped pixels.
        return Rows.from_labels(start, np.transpose(cube, (0, 3, 1, 2)), values)
