"""HDF5 cube collections: one image dataset (N, 5, S, S) or (N, S, S, 5) of any square size S, plus one
dataset per label, named by options.

Cube collections like the one the seed trained on keep larger cutouts (e.g. 107 pixels, band-first) than the
models use; they are centre-cropped (or resampled, for another pixel scale). Rows are read by h5py slices, a
shard's range at a time, so memory holds one range whatever the file's size.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from astrospect.importers.columns import HDF5_CUBE, ColumnMap, labels_from
from astrospect.importers.convert import Conversion
from astrospect.importers.writer import ImporterError, Rows
from astrospect.settings import N_BANDS

LAYOUT = "hdf5-cube"
# The project's own shard names: a folder of shards (or a cube written like one) imports without options.
DEFAULT_COLUMNS = HDF5_CUBE


class Hdf5Source:
    layout = LAYOUT

    def __init__(
        self,
        path: Path,
        columns: ColumnMap = DEFAULT_COLUMNS,
        *,
        images: str = "images",
        flux_unit: str = "nanomaggies",
        pixel_scale: float = 0.396,
    ) -> None:
        self.path = path
        if not path.is_file():
            raise ImporterError(f"{path}: field '<file>': no such file")
        if not h5py.is_hdf5(path):
            raise ImporterError(f"{path}: field '<file>': not an HDF5 file")
        self.handle = h5py.File(path, "r")
        if images not in self.handle or not isinstance(self.handle[images], h5py.Dataset):
            raise ImporterError(
                f"{path}: field '{images}': no such image dataset (it has: {', '.join(self._datasets())})"
            )
        self.images = self.handle[images]
        shape = self.images.shape
        if len(shape) == 4 and shape[1] == N_BANDS and shape[2] == shape[3]:
            self.channel_first, size = True, shape[2]
        elif len(shape) == 4 and shape[3] == N_BANDS and shape[1] == shape[2]:
            self.channel_first, size = False, shape[1]
        else:
            raise ImporterError(
                f"{path}: field '{images}': expected (N, {N_BANDS}, S, S) or (N, S, S, {N_BANDS}) square "
                f"ugriz cutouts, got {shape}"
            )
        if not np.issubdtype(self.images.dtype, np.floating):
            raise ImporterError(f"{path}: field '{images}': expected float pixels, got {self.images.dtype}")
        self.image_name = images
        self.n_rows = int(shape[0])
        self.chosen = columns.resolve(self._datasets(), str(path))
        for column in self.chosen.values():
            if self.handle[column].shape[:1] != (self.n_rows,):
                raise ImporterError(
                    f"{path}: field '{column}': {self.handle[column].shape[0]} rows, the images have {self.n_rows}"
                )
        self.conversion = Conversion.for_source(path, int(size), flux_unit, pixel_scale)

    def _datasets(self) -> list[str]:
        names: list[str] = []
        self.handle.visititems(
            lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None
        )
        return names

    def options(self) -> dict[str, object]:
        return {
            "images": self.image_name,
            "channel_first": self.channel_first,
            "columns": self.chosen,
            **self.conversion.describe(),
        }

    def read(self, start: int, stop: int) -> Rows:
        block = self.images[start:stop]
        if not self.channel_first:
            block = np.transpose(block, (0, 3, 1, 2))
        values = labels_from(
            self.chosen, lambda column: self.handle[column][start:stop], str(self.path), stop - start
        )
        return Rows.from_labels(start, block, values)
