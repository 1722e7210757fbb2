"""Cutout shards: the HDF5 format of docs/reference/shard-format.md, read in chunks, written atomically, checked on open.

On disk, images are band-first ``(N, 5, H, W)`` like the public SDSS cubes; the model works channels-last
``(N, 32, 32, 5)``. :func:`to_model_layout` is the one place that transposes (and centre-crops 64x64 cubes),
used by training, prediction and serving alike (it lives, with :class:`Cutouts` and :class:`ShardFormatError`,
in :mod:`astrospect.data.cutouts`; this module re-exports them).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt

from astrospect.atomic import publish, temp_file
from astrospect.data.cutouts import (
    ACCEPTED_SIZES,
    Cutouts,
    ShardFormatError,
    concat_cutouts,
    to_model_layout,
)
from astrospect.settings import BANDS, N_BANDS, PIXEL_SCALE_ARCSEC

LABEL_FIELDS = ("specz_redshift", "specz_redshift_err")
UNKNOWN_ALLOWED = ("specz_redshift_err",)  # labels that may be NaN, "unknown"; never infinite
OPTIONAL_FIELDS = ("ra", "dec", "ebv")  # ebv: Galactic foreground E(B-V), float32, never required
DEFAULT_CHUNK = 1024  # cutouts per read: ~20 MB of float32 at 32x32x5
# What a reader of an untrusted file accepts before reading anything (the gate configures the first):
MAX_DECLARED_BYTES = 8 * 1024**3  # per dataset: 100,000 cutouts of 64x64x5 float32
MAX_CHUNK_BYTES = 64 * 1024**2  # an HDF5 chunk is decompressed whole; the writer's are 5-20 MB
MAX_LINKS = 10_000  # HDF5 objects in one file; a shard has about 30

# The names of a model's inputs when it takes more of a shard than the cutouts (the `cnn-ebv` challenger):
# training's dataset yields them by these names and the model's Input layers carry them.
CUTOUTS_INPUT = "cutouts"
EBV_INPUT = "ebv"  # Galactic foreground E(B-V) per cutout; NaN where unknown


@dataclass
class ShardInfo:
    """What a shard holds, learned from its header without reading the pixels."""

    path: Path
    n: int
    size: int  # H = W on disk (32 or 64)
    has_labels: bool
    objid_dtype: str = "int64"  # as stored; SDSS objids need 64 bits
    attrs: dict[str, object] = field(default_factory=dict)


def inspect_shard(
    path: Path | str, *, require_labels: bool = True, max_declared_bytes: int = MAX_DECLARED_BYTES
) -> ShardInfo:
    """Check a shard's structure (not its pixel values) and describe it. Raises :class:`ShardFormatError`.

    Nothing the file declares is trusted: links and storage that point outside the file are refused, and the
    declared size of each dataset read here (the labels) is checked against what the file really stores and
    ``max_declared_bytes`` before any of it is read (see :func:`_check_storage`). :func:`open_shard`, which
    opens a shard to read its cutouts, checks every dataset it reads the same way.
    """
    with open_shard(
        path, require_labels=require_labels, max_declared_bytes=max_declared_bytes, to_read=False
    ) as (info, _):
        return info


@contextlib.contextmanager
def open_shard(
    path: Path | str,
    *,
    require_labels: bool = True,
    max_declared_bytes: int = MAX_DECLARED_BYTES,
    to_read: bool = True,
) -> Iterator[tuple[ShardInfo, h5py.File]]:
    """Open a shard read-only after :func:`inspect_shard`'s checks; yields its description and the handle.
    ``to_read``: every dataset :func:`chunks_of` reads has its storage checked too, not only the labels."""
    path = Path(path)
    if not path.is_file():
        raise ShardFormatError(path, "<file>", "no such file")
    file_size = path.stat().st_size
    if file_size == 0:
        raise ShardFormatError(path, "<file>", "file is empty (0 bytes)")
    if not h5py.is_hdf5(path):
        raise ShardFormatError(path, "<file>", "not an HDF5 file (bad signature)")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:  # h5py raises OSError for truncated or corrupt files
        raise ShardFormatError(path, "<file>", f"unreadable HDF5 (truncated or corrupt): {error}") from error
    with handle:
        _refuse_outside_references(path, handle)
        info = _inspect_open(
            path,
            handle,
            file_size,
            require_labels=require_labels,
            max_declared_bytes=max_declared_bytes,
            to_read=to_read,
        )
        yield info, handle


def _refuse_outside_references(path: Path, handle: h5py.File) -> None:
    """A shard is self-contained: no external links, external raw storage or virtual datasets anywhere in it.

    Each would make a reader open another file on the worker's disk, and the shard's sha256 would not cover
    the bytes trained on. The walk uses HDF5's link iteration, which follows hard links only, so nothing
    outside the file is opened while looking.
    """
    links: list[tuple[str, int]] = []

    def visit(name: bytes, link: h5py.h5l.LinkInfo) -> int | None:
        links.append((name.decode(errors="backslashreplace"), link.type))
        return 1 if len(links) > MAX_LINKS else None  # non-None stops the walk

    handle.id.links.visit(visit, info=True)
    if len(links) > MAX_LINKS:
        raise ShardFormatError(path, "<file>", f"more than {MAX_LINKS} HDF5 links: not a shard")
    for name, kind in links:
        if kind == h5py.h5l.TYPE_EXTERNAL:
            raise ShardFormatError(path, name, "an external link to another file (a shard is self-contained)")
        if kind not in (h5py.h5l.TYPE_HARD, h5py.h5l.TYPE_SOFT):
            raise ShardFormatError(path, name, f"a user-defined HDF5 link (type {kind}): not followed")
        if kind != h5py.h5l.TYPE_HARD:
            continue
        target = h5py.h5o.open(handle.id, name.encode(errors="surrogateescape"))
        if not isinstance(target, h5py.h5d.DatasetID):
            continue
        creation = target.get_create_plist()
        if creation.get_layout() == h5py.h5d.VIRTUAL:
            raise ShardFormatError(path, name, "a virtual dataset (its data lives in other files)")
        if creation.get_external_count() > 0:
            raise ShardFormatError(path, name, "external raw storage (its data lives in another file)")


def _inspect_open(
    path: Path,
    handle: h5py.File,
    file_size: int,
    *,
    require_labels: bool,
    max_declared_bytes: int,
    to_read: bool,
) -> ShardInfo:
    for name in ("images", "objid"):
        if name not in handle:
            raise ShardFormatError(path, name, "required dataset is missing")
    for name in ("images", "objid", *LABEL_FIELDS, *OPTIONAL_FIELDS):
        if name in handle and not isinstance(handle[name], h5py.Dataset):
            raise ShardFormatError(
                path, name, f"expected a dataset, got an HDF5 {type(handle[name]).__name__}"
            )
    images = handle["images"]
    if images.ndim != 4:
        raise ShardFormatError(path, "images", f"expected rank 4 (N, 5, H, W), got shape {images.shape}")
    n, bands, height, width = images.shape
    if bands != N_BANDS:
        raise ShardFormatError(path, "images", f"expected {N_BANDS} bands ({BANDS}) on axis 1, got {bands}")
    if height != width or height not in ACCEPTED_SIZES:
        raise ShardFormatError(path, "images", f"expected 32x32 or 64x64 cutouts, got {height}x{width}")
    if not np.issubdtype(images.dtype, np.floating):
        raise ShardFormatError(path, "images", f"expected floating-point fluxes, got dtype {images.dtype}")
    if n == 0:
        raise ShardFormatError(path, "images", "shard holds no cutouts (N = 0)")
    objid = handle["objid"]
    if objid.shape != (n,) or not np.issubdtype(objid.dtype, np.integer):
        raise ShardFormatError(
            path, "objid", f"expected int64 of shape ({n},), got {objid.dtype} {objid.shape}"
        )
    present_labels = [name for name in LABEL_FIELDS if name in handle]
    if require_labels and len(present_labels) < len(LABEL_FIELDS):
        missing = sorted(set(LABEL_FIELDS) - set(present_labels))
        raise ShardFormatError(
            path, missing[0], "required dataset is missing (labels are needed for training)"
        )
    columns = [*present_labels, *[name for name in OPTIONAL_FIELDS if name in handle]]
    for name in columns:
        dataset = handle[name]
        if dataset.shape != (n,):
            raise ShardFormatError(
                path, name, f"length mismatch: expected shape ({n},) to match images, got {dataset.shape}"
            )
        if not _is_real_number(dataset.dtype):
            raise ShardFormatError(path, name, f"expected real numbers, got dtype {dataset.dtype}")
    for name in ("images", "objid", *columns) if to_read else present_labels:
        _check_storage(path, name, handle[name], file_size, max_declared_bytes)
    for name in present_labels:
        values = handle[name][()]
        # The redshift must be known; its error may be unknown (NaN: an imported catalogue without one).
        bad = np.isinf(values) if name in UNKNOWN_ALLOWED else ~np.isfinite(values)
        if bad.any():
            rows = np.flatnonzero(bad)[:5].tolist()
            raise ShardFormatError(path, name, f"{int(bad.sum())} non-finite label(s), first rows {rows}")
    return ShardInfo(
        path=path,
        n=int(n),
        size=int(height),
        has_labels=len(present_labels) == len(LABEL_FIELDS),
        objid_dtype=objid.dtype.name,
        attrs=_attributes(path, handle),
    )


def _is_real_number(dtype: np.dtype[np.generic]) -> bool:
    return bool(np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer))


def _check_storage(path: Path, name: str, dataset: h5py.Dataset, file_size: int, limit: int) -> None:
    """Refuse a dataset whose declared size the file cannot back, before reading any of it.

    A few kilobytes of HDF5 can declare terabytes in chunks that were never written: reading them gives fill
    values for hours, or exhausts memory. So: the declared size is at most ``limit``; contiguous data is
    stored in full inside the file; every chunk of chunked data is written, and no chunk is larger than
    :data:`MAX_CHUNK_BYTES` (a reader holds a whole chunk in memory). Compressed chunks may expand, but only
    up to ``limit`` in all.
    """
    declared = math.prod(dataset.shape) * dataset.dtype.itemsize
    if declared > limit:
        raise ShardFormatError(
            path,
            name,
            f"declares {declared} bytes ({dataset.dtype} {dataset.shape}), more than the limit of {limit}",
        )
    layout = dataset.id.get_create_plist().get_layout()
    stored = dataset.id.get_storage_size()
    if stored > file_size:
        raise ShardFormatError(path, name, f"claims {stored} stored bytes in a file of {file_size}")
    if layout == h5py.h5d.CONTIGUOUS and declared > 0:
        offset = dataset.id.get_offset()
        if offset is None or stored < declared:
            raise ShardFormatError(
                path, name, f"declares {declared} bytes but stores {stored} (never written)"
            )
        if offset + declared > file_size:
            raise ShardFormatError(path, name, f"data runs past the end of the file ({file_size} bytes)")
    elif layout == h5py.h5d.CHUNKED:
        chunk = dataset.chunks
        chunk_bytes = math.prod(chunk) * dataset.dtype.itemsize
        if chunk_bytes > MAX_CHUNK_BYTES:
            raise ShardFormatError(
                path, name, f"chunks of {chunk_bytes} bytes, more than {MAX_CHUNK_BYTES} (one is read whole)"
            )
        expected = math.prod(-(-size // step) for size, step in zip(dataset.shape, chunk, strict=True))
        written = dataset.id.get_num_chunks()
        if written < expected:
            raise ShardFormatError(
                path,
                name,
                f"only {written} of its {expected} chunks are written (the rest would read as fill)",
            )


def _attributes(path: Path, handle: h5py.File) -> dict[str, object]:
    """The file's attributes as plain values; one h5py cannot read (an odd type) is a format error."""
    attrs = {}
    for key in handle.attrs:
        try:
            attrs[key] = _plain(handle.attrs[key])
        except (OSError, TypeError, ValueError) as error:
            raise ShardFormatError(
                path, f"attribute '{key}'", f"unreadable: {type(error).__name__}: {error}"
            ) from error
    return attrs


def _plain(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode(errors="backslashreplace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def iter_shard(
    path: Path | str,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    require_labels: bool = True,
    max_declared_bytes: int = MAX_DECLARED_BYTES,
) -> Iterator[Cutouts]:
    """Stream a shard in chunks of ``chunk_size`` cutouts, each in the model's layout."""
    with open_shard(path, require_labels=require_labels, max_declared_bytes=max_declared_bytes) as (
        info,
        handle,
    ):
        yield from chunks_of(info, handle, chunk_size)


def chunks_of(info: ShardInfo, handle: h5py.File, chunk_size: int = DEFAULT_CHUNK) -> Iterator[Cutouts]:
    """The cutouts of a shard opened by :func:`open_shard`, in chunks of ``chunk_size``."""
    labelled = info.has_labels
    for start in range(0, info.n, chunk_size):
        stop = min(start + chunk_size, info.n)
        yield Cutouts(
            images=to_model_layout(handle["images"][start:stop], source=str(info.path)),
            objid=handle["objid"][start:stop].astype(np.int64),
            redshift=handle["specz_redshift"][start:stop].astype(np.float32) if labelled else None,
            redshift_err=handle["specz_redshift_err"][start:stop].astype(np.float32) if labelled else None,
            ra=handle["ra"][start:stop] if "ra" in handle else None,
            dec=handle["dec"][start:stop] if "dec" in handle else None,
            ebv=handle["ebv"][start:stop].astype(np.float32) if "ebv" in handle else None,
        )


def read_shard(path: Path | str, *, require_labels: bool = True) -> Cutouts:
    """Read a whole shard. For one shard at a time (prediction, tests); training streams instead."""
    chunks = list(iter_shard(path, require_labels=require_labels))
    return concat_cutouts(chunks)


def write_shard(
    path: Path | str,
    images: npt.ArrayLike,
    objid: npt.ArrayLike,
    redshift: npt.ArrayLike | None = None,
    redshift_err: npt.ArrayLike | None = None,
    *,
    ra: npt.ArrayLike | None = None,
    dec: npt.ArrayLike | None = None,
    ebv: npt.ArrayLike | None = None,
    truth: Mapping[str, npt.ArrayLike] | None = None,
    survey: str = "SDSS",
    attrs: Mapping[str, object] | None = None,
) -> Path:
    """Write a shard atomically (a temp file in the same folder, fsynced, then published by a hard link), never
    over an existing file.

    ``images`` are band-first ``(N, 5, H, W)`` nanomaggies, as stored. ``truth`` becomes the ``truth/`` group
    that simulated shards carry and the system never trains on. ``ebv`` (optional) is each cutout's
    Galactic foreground E(B-V), as SDSS catalogues give it; nothing requires it.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path}: refusing to overwrite an existing shard")
    images_array = np.asarray(images, dtype=np.float32)
    n = images_array.shape[0]
    with temp_file(path.parent, path.name) as (temp, handle):
        handle.close()  # h5py writes the file by its name
        with h5py.File(temp, "w") as shard:
            chunk_rows = max(1, min(n, 256))
            shard.create_dataset("images", data=images_array, chunks=(chunk_rows, *images_array.shape[1:]))
            shard.create_dataset("objid", data=np.asarray(objid, dtype=np.int64))
            if redshift is not None:
                shard.create_dataset("specz_redshift", data=np.asarray(redshift, dtype=np.float32))
            if redshift_err is not None:
                shard.create_dataset("specz_redshift_err", data=np.asarray(redshift_err, dtype=np.float32))
            if ra is not None:
                shard.create_dataset("ra", data=np.asarray(ra, dtype=np.float64))
            if dec is not None:
                shard.create_dataset("dec", data=np.asarray(dec, dtype=np.float64))
            if ebv is not None:
                shard.create_dataset("ebv", data=np.asarray(ebv, dtype=np.float32))
            if truth:
                group = shard.create_group("truth")
                for name, values in truth.items():
                    group.create_dataset(name, data=np.asarray(values))
            shard.attrs["survey"] = survey
            shard.attrs["bands"] = BANDS
            shard.attrs["pixel_scale_arcsec"] = PIXEL_SCALE_ARCSEC
            for key, value in (attrs or {}).items():
                shard.attrs[key] = value
        if not publish(temp, path):
            raise FileExistsError(f"{path}: refusing to overwrite an existing shard")
    return path


def list_shards(folder: Path | str) -> list[Path]:
    """The shards of a folder (``*.h5``/``*.hdf5``), sorted by name; temp files are skipped."""
    folder = Path(folder)
    found = [p for p in folder.iterdir() if p.suffix in {".h5", ".hdf5"} and not p.name.startswith(".")]
    return sorted(found)


def resolve_shards(source: Path | str) -> list[Path]:
    """A shard path, or every shard in a folder."""
    source = Path(source)
    if source.is_dir():
        shards = list_shards(source)
        if not shards:
            raise FileNotFoundError(f"{source}: no *.h5 shards in this folder")
        return shards
    return [source]
