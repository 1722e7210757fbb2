"""Cutout shards: the HDF5 format of DESIGN.md §3, read in chunks, written atomically, checked on open.

On disk, images are band-first ``(N, 5, H, W)`` like the public SDSS cubes; the model works channels-last
``(N, 32, 32, 5)``. :func:`to_model_layout` is the one place that transposes (and centre-crops 64x64 cubes),
used by training, prediction and serving alike.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt

from astrospect.settings import BANDS, CUTOUT_SIZE, N_BANDS, PIXEL_SCALE_ARCSEC

ACCEPTED_SIZES = (CUTOUT_SIZE, 2 * CUTOUT_SIZE)
LABEL_FIELDS = ("specz_redshift", "specz_redshift_err")
OPTIONAL_FIELDS = ("ra", "dec", "ebv")  # ebv: Galactic foreground E(B-V), float32, never required
DEFAULT_CHUNK = 1024  # cutouts per read: ~20 MB of float32 at 32x32x5

FloatArray = npt.NDArray[np.float32]


class ShardFormatError(ValueError):
    """A shard that does not follow DESIGN.md §3. The message names the file, the field and the reason."""

    def __init__(self, path: Path | str, field: str, reason: str) -> None:
        self.path = str(path)
        self.field = field
        self.reason = reason
        super().__init__(f"{self.path}: field '{field}': {reason}")


@dataclass
class Cutouts:
    """A batch of cutouts in the model's layout, with whatever labels and ids the shard carries."""

    images: FloatArray  # (N, 32, 32, 5), nanomaggies, channels-last
    objid: npt.NDArray[np.int64]
    redshift: FloatArray | None = None
    redshift_err: FloatArray | None = None
    ra: npt.NDArray[np.float64] | None = None
    dec: npt.NDArray[np.float64] | None = None
    ebv: FloatArray | None = None

    def __len__(self) -> int:
        return int(self.objid.shape[0])


@dataclass
class ShardInfo:
    """What a shard holds, learned from its header without reading the pixels."""

    path: Path
    n: int
    size: int  # H = W on disk (32 or 64)
    has_labels: bool
    attrs: dict[str, object] = field(default_factory=dict)


def to_model_layout(images: npt.ArrayLike, *, source: str = "images") -> FloatArray:
    """Return ``(N, 32, 32, 5)`` float32 from band-first ``(N, 5, H, W)`` or channels-last ``(N, H, W, 5)``.

    H = W must be 32 or 64 (centre-cropped to 32). The only transpose in the project.
    """
    array = np.asarray(images)
    if array.ndim != 4:
        raise ShardFormatError(
            source, "images", f"expected rank 4 (N, 5, H, W) or (N, H, W, 5), got shape {array.shape}"
        )
    if array.shape[1] == N_BANDS and array.shape[2] == array.shape[3]:
        array = np.transpose(array, (0, 2, 3, 1))
    elif array.shape[3] != N_BANDS or array.shape[1] != array.shape[2]:
        raise ShardFormatError(
            source,
            "images",
            f"expected {N_BANDS} bands ({BANDS}) band-first or channels-last, got shape {array.shape}",
        )
    size = array.shape[1]
    if size not in ACCEPTED_SIZES:
        raise ShardFormatError(
            source, "images", f"expected {CUTOUT_SIZE}x{CUTOUT_SIZE} or 64x64 cutouts, got {size}x{size}"
        )
    if size != CUTOUT_SIZE:
        start = (size - CUTOUT_SIZE) // 2
        array = array[:, start : start + CUTOUT_SIZE, start : start + CUTOUT_SIZE, :]
    return np.ascontiguousarray(array, dtype=np.float32)


def inspect_shard(path: Path | str, *, require_labels: bool = True) -> ShardInfo:
    """Check a shard's structure (not its pixel values) and describe it. Raises :class:`ShardFormatError`."""
    path = Path(path)
    if not path.is_file():
        raise ShardFormatError(path, "<file>", "no such file")
    if path.stat().st_size == 0:
        raise ShardFormatError(path, "<file>", "file is empty (0 bytes)")
    if not h5py.is_hdf5(path):
        raise ShardFormatError(path, "<file>", "not an HDF5 file (bad signature)")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:  # h5py raises OSError for truncated or corrupt files
        raise ShardFormatError(path, "<file>", f"unreadable HDF5 (truncated or corrupt): {error}") from error
    with handle:
        return _inspect_open(path, handle, require_labels=require_labels)


def _inspect_open(path: Path, handle: h5py.File, *, require_labels: bool) -> ShardInfo:
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
    for name in (*present_labels, *[f for f in OPTIONAL_FIELDS if f in handle]):
        dataset = handle[name]
        if dataset.shape != (n,):
            raise ShardFormatError(
                path, name, f"length mismatch: expected shape ({n},) to match images, got {dataset.shape}"
            )
    for name in present_labels:
        values = handle[name][()]
        bad = ~np.isfinite(values)
        if bad.any():
            rows = np.flatnonzero(bad)[:5].tolist()
            raise ShardFormatError(path, name, f"{int(bad.sum())} non-finite label(s), first rows {rows}")
    return ShardInfo(
        path=path,
        n=int(n),
        size=int(height),
        has_labels=len(present_labels) == len(LABEL_FIELDS),
        attrs={key: _plain(value) for key, value in handle.attrs.items()},
    )


def _plain(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def iter_shard(
    path: Path | str, *, chunk_size: int = DEFAULT_CHUNK, require_labels: bool = True
) -> Iterator[Cutouts]:
    """Stream a shard in chunks of ``chunk_size`` cutouts, each in the model's layout."""
    info = inspect_shard(path, require_labels=require_labels)
    with h5py.File(info.path, "r") as handle:
        labelled = all(name in handle for name in LABEL_FIELDS)
        for start in range(0, info.n, chunk_size):
            stop = min(start + chunk_size, info.n)
            yield Cutouts(
                images=to_model_layout(handle["images"][start:stop], source=str(info.path)),
                objid=handle["objid"][start:stop].astype(np.int64),
                redshift=handle["specz_redshift"][start:stop].astype(np.float32) if labelled else None,
                redshift_err=handle["specz_redshift_err"][start:stop].astype(np.float32)
                if labelled
                else None,
                ra=handle["ra"][start:stop] if "ra" in handle else None,
                dec=handle["dec"][start:stop] if "dec" in handle else None,
                ebv=handle["ebv"][start:stop].astype(np.float32) if "ebv" in handle else None,
            )


def read_shard(path: Path | str, *, require_labels: bool = True) -> Cutouts:
    """Read a whole shard. For one shard at a time (prediction, tests); training streams instead."""
    chunks = list(iter_shard(path, require_labels=require_labels))
    return concat_cutouts(chunks)


def concat_cutouts(chunks: list[Cutouts]) -> Cutouts:
    def join(name: str) -> npt.NDArray[np.generic] | None:
        parts = [getattr(chunk, name) for chunk in chunks]
        return None if any(part is None for part in parts) else np.concatenate(parts)

    images = join("images")
    objid = join("objid")
    assert images is not None and objid is not None
    return Cutouts(
        images=images.astype(np.float32),
        objid=objid.astype(np.int64),
        redshift=join("redshift"),  # type: ignore[arg-type]
        redshift_err=join("redshift_err"),  # type: ignore[arg-type]
        ra=join("ra"),  # type: ignore[arg-type]
        dec=join("dec"),  # type: ignore[arg-type]
        ebv=join("ebv"),  # type: ignore[arg-type]
    )


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
    """Write a shard atomically (temp file in the same folder, then rename), never over an existing file.

    ``images`` are band-first ``(N, 5, H, W)`` nanomaggies, as stored. ``truth`` becomes the ``truth/`` group
    that simulated shards carry and the system never trains on. ``ebv`` (optional) is each cutout's
    Galactic foreground E(B-V), as SDSS catalogues give it; nothing requires it.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path}: refusing to overwrite an existing shard")
    images_array = np.asarray(images, dtype=np.float32)
    n = images_array.shape[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(descriptor)
    try:
        with h5py.File(temp_name, "w") as handle:
            chunk_rows = max(1, min(n, 256))
            handle.create_dataset("images", data=images_array, chunks=(chunk_rows, *images_array.shape[1:]))
            handle.create_dataset("objid", data=np.asarray(objid, dtype=np.int64))
            if redshift is not None:
                handle.create_dataset("specz_redshift", data=np.asarray(redshift, dtype=np.float32))
            if redshift_err is not None:
                handle.create_dataset("specz_redshift_err", data=np.asarray(redshift_err, dtype=np.float32))
            if ra is not None:
                handle.create_dataset("ra", data=np.asarray(ra, dtype=np.float64))
            if dec is not None:
                handle.create_dataset("dec", data=np.asarray(dec, dtype=np.float64))
            if ebv is not None:
                handle.create_dataset("ebv", data=np.asarray(ebv, dtype=np.float32))
            if truth:
                group = handle.create_group("truth")
                for name, values in truth.items():
                    group.create_dataset(name, data=np.asarray(values))
            handle.attrs["survey"] = survey
            handle.attrs["bands"] = BANDS
            handle.attrs["pixel_scale_arcsec"] = PIXEL_SCALE_ARCSEC
            for key, value in (attrs or {}).items():
                handle.attrs[key] = value
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
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
