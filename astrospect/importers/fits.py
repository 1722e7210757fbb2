"""FITS cutouts, as the SDSS cutout services and astropy-based scripts write them, with a catalogue CSV.

Two arrangements in one folder: one file per galaxy with five image HDUs in u, g, r, i, z order
(``--pattern '{objid}.fits'``), or five files per galaxy, one per band (``--pattern '{objid}-{band}.fits'``).
The catalogue gives the rows, in its order, and their labels; each row's files are found by its objid.

Each image's header is checked against the import's declared unit and scale: ``BUNIT`` when present, and the
pixel scale of its celestial WCS when it has one. A galaxy whose file is missing, unreadable, of another
size, or whose header disagrees is rejected with the reason, and the import goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from astrospect.importers.columns import FITS_CATALOGUE, ColumnMap, labels_from
from astrospect.importers.convert import FLUX_UNITS, Conversion
from astrospect.importers.writer import ImporterError, Rows
from astrospect.settings import BANDS, N_BANDS

if TYPE_CHECKING:
    from astropy.io.fits import Header

LAYOUT = "fits-cutouts"
# SDSS's CasJobs names (SpecObj / PhotoObj), as a catalogue downloaded from SkyServer has them.
DEFAULT_COLUMNS = FITS_CATALOGUE
# How headers spell the units FLUX_UNITS knows (BUNIT is free text; SDSS frames say 'nanomaggy').
BUNIT_NAMES = {
    "nanomaggy": "nanomaggies",
    "nanomaggies": "nanomaggies",
    "nmgy": "nanomaggies",
    "maggy": "maggies",
    "maggies": "maggies",
    "ujy": "microjansky",
    "microjy": "microjansky",
    "jy": "jansky",
}


class FitsSource:
    layout = LAYOUT

    def __init__(
        self,
        folder: Path,
        catalogue: Path,
        columns: ColumnMap = DEFAULT_COLUMNS,
        *,
        pattern: str = "{objid}.fits",
        flux_unit: str = "nanomaggies",
        pixel_scale: float = 0.396,
    ) -> None:
        import pandas as pd

        if "{objid}" not in pattern:
            raise ImporterError(
                f"{folder}: field '--pattern': {pattern!r} must contain {{objid}} (and {{band}} for one file "
                "per band)"
            )
        if not folder.is_dir():
            raise ImporterError(f"{folder}: field '<folder>': no such folder of FITS cutouts")
        self.path = folder
        self.catalogue_path = catalogue
        self.pattern = pattern
        self.per_band = "{band}" in pattern
        self.flux_unit, self.pixel_scale = flux_unit, pixel_scale
        try:
            self.catalogue = pd.read_csv(catalogue)
        except (OSError, ValueError) as error:
            raise ImporterError(f"{catalogue}: field '<file>': unreadable catalogue CSV: {error}") from error
        self.chosen = columns.resolve(list(self.catalogue.columns), str(catalogue))
        self.n_rows = len(self.catalogue)
        if self.n_rows == 0:
            raise ImporterError(f"{catalogue}: field '<file>': the catalogue has no rows")
        self.size = self._first_size()
        self.conversion = Conversion.for_source(folder, self.size, flux_unit, pixel_scale)

    def _files(self, objid: int) -> list[Path]:
        if self.per_band:
            return [self.path / self.pattern.format(objid=objid, band=band) for band in BANDS]
        return [self.path / self.pattern.format(objid=objid)]

    def _first_size(self) -> int:
        """Every cutout must share one size; the first galaxy that reads sets it."""
        objid_column = self.chosen["objid"]
        for objid in self.catalogue[objid_column]:
            try:
                return int(self._read_galaxy(int(objid)).shape[-1])
            except (OSError, ValueError):
                continue
        raise ImporterError(
            f"{self.path}: field '<file>': no galaxy of the catalogue has readable files "
            f"named {self.pattern!r} here"
        )

    def options(self) -> dict[str, object]:
        return {
            "catalogue": str(self.catalogue_path.resolve()),
            "pattern": self.pattern,
            "columns": self.chosen,
            **self.conversion.describe(),
        }

    def read(self, start: int, stop: int) -> Rows:
        table = self.catalogue.iloc[start:stop]
        values = labels_from(
            self.chosen, lambda column: table[column].to_numpy(), str(self.catalogue_path), len(table)
        )
        images = np.full((len(table), N_BANDS, self.size, self.size), np.nan, dtype=np.float32)
        problems: dict[int, str] = {}
        for i, objid in enumerate(values["objid"]):
            try:
                cube = self._read_galaxy(int(objid))
            except (OSError, ValueError) as error:
                problems[i] = str(error)
                continue
            if cube.shape != images.shape[1:]:
                problems[i] = f"cutout shape {cube.shape}, the import's is {images.shape[1:]}"
                continue
            images[i] = cube
        return Rows.from_labels(start, images, values, problems)

    def _read_galaxy(self, objid: int) -> npt.NDArray[np.float32]:
        """The five band images of one galaxy, band-first; raises OSError/ValueError naming file and reason."""
        from astropy.io import fits

        planes: list[npt.NDArray[np.float32]] = []
        for path in self._files(objid):
            if not path.is_file():
                raise OSError(f"{path.name}: no such file")
            with fits.open(path, memmap=False) as hdus:
                images = [hdu for hdu in hdus if hdu.is_image and hdu.data is not None and hdu.data.ndim == 2]
                wanted = 1 if self.per_band else N_BANDS
                if len(images) != wanted:
                    raise ValueError(f"{path.name}: {len(images)} 2-D image HDUs, expected {wanted}")
                for hdu in images:
                    self._check_header(path, hdu.header)
                    planes.append(np.asarray(hdu.data, dtype=np.float32))
        if len({plane.shape for plane in planes}) != 1 or planes[0].shape[0] != planes[0].shape[1]:
            raise ValueError(
                f"galaxy {objid}: band images are not one square size: {[p.shape for p in planes]}"
            )
        return np.stack(planes)

    def _check_header(self, path: Path, header: Header) -> None:
        """BUNIT and the WCS pixel scale, when the header has them, must agree with what the import declares."""
        unit = str(header.get("BUNIT", "")).strip().lower()
        if unit and BUNIT_NAMES.get(unit) != self.flux_unit:
            known = BUNIT_NAMES.get(unit, f"unknown ({', '.join(FLUX_UNITS)} are)")
            raise ValueError(
                f"{path.name}: field 'BUNIT': header says {unit!r} ({known}), the import declares {self.flux_unit}"
            )
        scale = _pixel_scale_arcsec(header)
        if scale is not None and abs(scale / self.pixel_scale - 1.0) > 0.01:
            raise ValueError(
                f"{path.name}: field 'WCS': pixel scale {scale:.4f}\"/pixel, the import declares "
                f'{self.pixel_scale}"/pixel'
            )


def _pixel_scale_arcsec(header: Header) -> float | None:
    """The pixel scale a celestial WCS header gives (CD matrix or CDELT, in degrees), or None without one.

    Read from the keywords rather than by building an astropy WCS: that costs milliseconds per HDU, and an
    import reads five HDUs per galaxy."""
    if "CD1_1" in header:
        determinant = header["CD1_1"] * header.get("CD2_2", 0.0) - header.get("CD1_2", 0.0) * header.get(
            "CD2_1", 0.0
        )
        degrees = float(np.sqrt(abs(determinant)))
    elif "CDELT1" in header and "CDELT2" in header:
        degrees = float(np.sqrt(abs(header["CDELT1"] * header["CDELT2"])))
    else:
        return None
    unit = str(header.get("CUNIT1", "deg")).strip().lower()
    return degrees * {"deg": 3600.0, "arcmin": 60.0, "arcsec": 1.0}.get(unit, 3600.0)
