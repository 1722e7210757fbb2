"""Files in the exact layouts the importers read, made from the simulator's galaxies (tests and bench-import).

The simulator renders 32x32 cutouts. A layout with larger cutouts (Pasquet's 64, a cube collection's 107)
gets each one embedded at the centre of a larger frame of sky noise, the noise measured per band on the
cutout's own border; so a correct centre crop gives back the simulator's pixels exactly, which is what the
tests check. Large files are the same galaxies tiled with new objids, written a chunk at a time through
``zipfile`` like ``np.savez`` writes them, so making a 3 GB file never holds it in memory.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib import format as npy_format

from astrospect.data.shards import read_shard
from astrospect.settings import BANDS, CUTOUT_SIZE, PIXEL_SCALE_ARCSEC

if TYPE_CHECKING:
    from astropy.io.fits import ImageHDU

PASQUET_LABELS = np.dtype(
    [
        ("objID", "<i8"),
        ("ra", "<f8"),
        ("dec", "<f8"),
        ("z", "<f4"),
        ("zErr", "<f4"),
        ("EBV", "<f4"),
        ("dered_petro_r", "<f4"),  # a column the importer is not asked for: ignored
    ]
)


@dataclass
class Galaxies:
    """Simulated galaxies: channels-last 32x32 nanomaggies and their labels."""

    images: npt.NDArray[np.float32]  # (N, 32, 32, 5)
    objid: npt.NDArray[np.int64]
    z: npt.NDArray[np.float32]
    z_err: npt.NDArray[np.float32]
    ra: npt.NDArray[np.float64]
    dec: npt.NDArray[np.float64]
    ebv: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.objid)

    def with_objid_offset(self, offset: int) -> Galaxies:
        """The same galaxies under other ids (several layouts validated in one landing zone)."""
        return replace(self, objid=self.objid + offset)

    def take(self, rows: npt.NDArray[np.intp]) -> Galaxies:
        return Galaxies(**{key: getattr(self, key)[rows] for key in self.__dataclass_fields__})


def simulate(folder: Path, n: int, seed: int) -> Galaxies:
    from astrospect.simulate import synthesize

    paths = synthesize(folder, n, seed=seed, shard_size=n, workers=1)
    shard = read_shard(paths[0])
    assert shard.redshift is not None and shard.redshift_err is not None
    assert shard.ra is not None and shard.dec is not None and shard.ebv is not None
    return Galaxies(
        shard.images, shard.objid, shard.redshift, shard.redshift_err, shard.ra, shard.dec, shard.ebv
    )


def framed(images: npt.NDArray[np.float32], size: int, seed: int = 0) -> npt.NDArray[np.float32]:
    """``(N, 32, 32, 5)`` -> ``(N, size, size, 5)``: each cutout at the centre (offset (size - 32) // 2, the
    importer's crop) of Gaussian sky noise as strong as on its own border."""
    rng = np.random.default_rng(seed)
    border = np.concatenate(
        [images[:, :2].reshape(len(images), -1, 5), images[:, -2:].reshape(len(images), -1, 5)], axis=1
    )
    sigma = 1.4826 * np.median(np.abs(border - np.median(border, axis=1, keepdims=True)), axis=1)
    out = rng.standard_normal((len(images), size, size, 5)).astype(np.float32) * sigma[:, None, None, :]
    start = (size - CUTOUT_SIZE) // 2
    out[:, start : start + CUTOUT_SIZE, start : start + CUTOUT_SIZE] = images
    return out


def pasquet_labels(galaxies: Galaxies) -> npt.NDArray[np.void]:
    labels = np.zeros(len(galaxies), dtype=PASQUET_LABELS)
    labels["objID"], labels["ra"], labels["dec"] = galaxies.objid, galaxies.ra, galaxies.dec
    labels["z"], labels["zErr"], labels["EBV"] = galaxies.z, galaxies.z_err, galaxies.ebv
    labels["dered_petro_r"] = 17.0
    return labels


def write_pasquet_npz(path: Path, galaxies: Galaxies, *, compressed: bool) -> Path:
    """The release's layout exactly as numpy writes it: ``cube`` (N, 64, 64, 5) float32, ``labels``."""
    save = np.savez_compressed if compressed else np.savez
    save(path, cube=framed(galaxies.images, 64), labels=pasquet_labels(galaxies))
    return path


def write_large_pasquet_npz(path: Path, galaxies: Galaxies, n: int, *, chunk: int = 1000) -> Path:
    """An uncompressed Pasquet-layout .npz of ``n`` rows (``galaxies`` tiled, objids made unique), written a
    chunk at a time; the bytes are those ``np.savez`` would write (zip64 members, .npy v1.0 headers)."""
    cube = framed(galaxies.images, 64)
    tiles = -(-n // len(galaxies))
    tiled = Galaxies(
        **{key: np.concatenate([getattr(galaxies, key)] * tiles)[:n] for key in galaxies.__dataclass_fields__}
    )
    tiled.objid = np.arange(1, n + 1, dtype=np.int64) + 10**15

    def rows() -> Iterator[bytes]:
        for start in range(0, n, chunk):
            index = np.arange(start, min(start + chunk, n)) % len(galaxies)
            yield cube[index].tobytes()

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open("cube.npy", "w", force_zip64=True) as member:
            header = {
                "descr": npy_format.dtype_to_descr(np.dtype("<f4")),
                "fortran_order": False,
                "shape": (n, 64, 64, 5),
            }
            npy_format.write_array_header_1_0(member, header)
            for block in rows():
                member.write(block)
        with archive.open("labels.npy", "w", force_zip64=True) as member:
            npy_format.write_array(member, pasquet_labels(tiled))
    return path


def write_hdf5_cube(path: Path, galaxies: Galaxies, *, size: int = 107, channel_first: bool = True) -> Path:
    """A cube collection: (N, 5, size, size) cutouts in ``cutouts`` (or (N, size, size, 5)), labels under
    other names than the shard's (so the importer's options are exercised)."""
    with h5py.File(path, "w") as handle:
        images = framed(galaxies.images, size)
        if channel_first:
            images = np.transpose(images, (0, 3, 1, 2))
        handle.create_dataset("cutouts", data=images, chunks=(16, *images.shape[1:]))
        handle.create_dataset("objID", data=galaxies.objid)
        handle.create_dataset("zspec", data=galaxies.z)
        handle.create_dataset("zspec_err", data=galaxies.z_err)
        handle.create_dataset("ebv_sfd", data=galaxies.ebv)
    return path


def write_fits_folder(folder: Path, galaxies: Galaxies, *, per_band: bool = False, size: int = 48) -> Path:
    """SDSS-style FITS cutouts: per galaxy one file of five image HDUs (EXTNAME u..z), or five files
    ``<objid>-<band>.fits``; BUNIT nanomaggy and a TAN WCS at 0.396"/pixel. Returns the catalogue CSV."""
    from astropy.io import fits

    folder.mkdir(parents=True, exist_ok=True)
    cubes = framed(galaxies.images, size)
    for objid, cube, ra, dec in zip(galaxies.objid, cubes, galaxies.ra, galaxies.dec, strict=True):
        hdus = [_image_hdu(cube[:, :, b], band, float(ra), float(dec)) for b, band in enumerate(BANDS)]
        if per_band:
            for band, hdu in zip(BANDS, hdus, strict=True):
                fits.HDUList([fits.PrimaryHDU(hdu.data, hdu.header)]).writeto(folder / f"{objid}-{band}.fits")
        else:
            fits.HDUList([fits.PrimaryHDU(), *hdus]).writeto(folder / f"{objid}.fits")
    catalogue = folder.parent / f"{folder.name}-catalogue.csv"
    pd.DataFrame(
        {
            "objid": galaxies.objid,
            "ra": galaxies.ra,
            "dec": galaxies.dec,
            "z": galaxies.z,
            "zerr": galaxies.z_err,
            "ebv": galaxies.ebv,
        }
    ).to_csv(catalogue, index=False)
    return catalogue


def _image_hdu(plane: npt.NDArray[np.float32], band: str, ra: float, dec: float) -> ImageHDU:
    from astropy.io import fits

    size = plane.shape[0]
    header = fits.Header()
    header["EXTNAME"] = band
    header["FILTER"] = band
    header["BUNIT"] = "nanomaggy"
    header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
    header["CRVAL1"], header["CRVAL2"] = ra, dec
    header["CRPIX1"] = header["CRPIX2"] = (size + 1) / 2
    header["CDELT1"], header["CDELT2"] = -PIXEL_SCALE_ARCSEC / 3600, PIXEL_SCALE_ARCSEC / 3600
    header["CUNIT1"] = header["CUNIT2"] = "deg"
    return fits.ImageHDU(plane, header=header)
