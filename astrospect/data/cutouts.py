"""Cutouts in memory: the model's channels-last layout, the batch type, and the shard format's error.

On disk, images are band-first ``(N, 5, H, W)`` like the public SDSS cubes; the model works channels-last
``(N, 32, 32, 5)``. :func:`to_model_layout` is the one place that transposes (and centre-crops 64x64 cubes).
Reading and writing shards is :mod:`astrospect.data.shards`, which re-exports these names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from astrospect.settings import BANDS, CUTOUT_SIZE, N_BANDS

ACCEPTED_SIZES = (CUTOUT_SIZE, 2 * CUTOUT_SIZE)
FloatArray = npt.NDArray[np.float32]


class ShardFormatError(ValueError):
    """A shard that does not follow docs/reference/shard-format.md. The message names the file, the field and the reason."""

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

    def take(self, rows: npt.NDArray[np.int64]) -> Cutouts:
        """These cutouts at ``rows`` only, every field that is present taken along."""
        return dataclasses.replace(
            self,
            **{name: value[rows] for name, value in vars(self).items() if value is not None},
        )


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
