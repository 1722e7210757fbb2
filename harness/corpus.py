"""A corpus of bad shards for testing the data gate: good shards plus one small mutation each.

Every case names what must catch it: the failed expectation as ``type(column)`` and, for structural
damage, the field that :func:`~astrospect.data.shards.inspect_shard` names. Each mutant gets fresh objids
(except the deliberate duplicates), so it fails for its own defect only.

:func:`fake_cutouts` makes plausible SDSS-like cutouts fast (a Gaussian blob per galaxy with magnitudes and
colours drawn around the real SDSS medians, plus per-band sky noise) for tests and benchmarks that need
volume, not physics; the simulator (:mod:`astrospect.simulate`) is the realistic source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from astrospect.data.shards import write_shard
from astrospect.settings import BANDS, CUTOUT_SIZE
from astrospect.simulate.targets import COLOURS, load_targets

OBJID_STRIDE = 10_000_000  # objid offset between mutants, so none shares an objid with another
SKY_NOISE_NMGY = np.array([0.045, 0.015, 0.02, 0.03, 0.07])  # per pixel, u and z noisiest as in SDSS
COLOUR_SCATTER = np.array([0.37, 0.21, 0.07, 0.09])  # u-g, g-r, r-i, i-z of SDSS galaxies at one redshift
SCATTER_FRACTION = (
    0.25  # of the real scatter in colour and r: fakes show their colour-redshift relation clearly
)
STRUCTURE = "expect_column_values_to_be_null(format_error_field)"


def fake_cutouts(n: int, rng: np.random.Generator, objid_start: int) -> dict[str, npt.NDArray[np.generic]]:
    """``n`` band-first cutouts (N, 5, 32, 32) in nanomaggies with labels, as :func:`write_shard` takes them.

    Colours and r follow the real SDSS medians at each galaxy's redshift (the per-bin p50 of the simulator's
    calibration targets) with a quarter of the real scatter, so the labels agree with the colours (the gate
    checks that) clearly enough to show it in a shard of 20 galaxies.
    """
    redshift = np.clip(rng.lognormal(np.log(0.08), 0.5, n), 0.005, 0.6)
    bins = load_targets().bins
    centres = ((bins["z_lo"] + bins["z_hi"]) / 2).to_numpy()
    median = {name: np.interp(redshift, centres, bins[f"{name}_p50"]) for name in (*COLOURS, "r")}
    r_mag = np.clip(median["r"] + rng.normal(0.0, SCATTER_FRACTION * 0.55, n), 14.3, 17.77)
    colours = (
        np.column_stack([median[name] for name in COLOURS])
        + rng.normal(0.0, SCATTER_FRACTION, (n, 4)) * COLOUR_SCATTER
    )
    g = r_mag + colours[:, 1]
    mags = np.column_stack(
        [g + colours[:, 0], g, r_mag, r_mag - colours[:, 2], r_mag - colours[:, 2] - colours[:, 3]]
    )
    flux = 10.0 ** ((22.5 - mags) / 2.5)  # nanomaggies
    sigma_px = rng.uniform(1.2, 3.0, n)
    grid = np.arange(CUTOUT_SIZE) - (CUTOUT_SIZE - 1) / 2.0
    radius2 = grid[None, :, None] ** 2 + grid[None, None, :] ** 2
    profile = np.exp(-radius2 / (2.0 * sigma_px[:, None, None] ** 2))
    profile /= profile.sum(axis=(1, 2), keepdims=True)
    noise = (
        rng.normal(0.0, 1.0, (n, len(BANDS), CUTOUT_SIZE, CUTOUT_SIZE)) * SKY_NOISE_NMGY[None, :, None, None]
    )
    images = flux[:, :, None, None] * profile[:, None, :, :] + noise
    return {
        "images": images.astype(np.float32),
        "objid": np.arange(objid_start, objid_start + n, dtype=np.int64),
        "redshift": redshift.astype(np.float32),
        "redshift_err": (1e-4 * (1.0 + redshift) * rng.lognormal(0.0, 0.3, n)).astype(np.float32),
    }


def write_fake_shard(path: Path, n: int, seed: int, objid_start: int) -> Path:
    arrays = fake_cutouts(n, np.random.default_rng(seed), objid_start)
    return write_shard(path, **arrays)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CorpusCase:
    file: str  # the name in the landing zone
    caught_by: str  # the failed expectation, "type(column)", that must name it
    field: str | None  # for structural damage: the field inspect_shard names
    description: str


Arrays = dict[str, npt.NDArray[Any]]


def read_arrays(path: Path) -> Arrays:
    """A shard's datasets as stored (band-first), ``truth/`` left out."""
    with h5py.File(path, "r") as handle:
        return {name: handle[name][()] for name in handle if isinstance(handle[name], h5py.Dataset)}


def _mutant(arrays: Arrays, change: Callable[[Arrays], None], objid_offset: int) -> Arrays:
    copy = {name: values.copy() for name, values in arrays.items()}
    copy["objid"] = copy["objid"] + objid_offset
    change(copy)
    return copy


def _set(name: str, index: tuple[int | slice, ...], value: float) -> Callable[[Arrays], None]:
    def change(arrays: Arrays) -> None:
        arrays[name][index] = value

    return change


def _scale_band(band: int, factor: float) -> Callable[[Arrays], None]:
    def change(arrays: Arrays) -> None:
        arrays["images"][:, band] *= factor

    return change


def _add_to_band(band: int, level: float) -> Callable[[Arrays], None]:
    def change(arrays: Arrays) -> None:
        arrays["images"][:, band] += np.float32(level)

    return change


def _reshape_images(
    view: Callable[[npt.NDArray[np.generic]], npt.NDArray[np.generic]],
) -> Callable[[Arrays], None]:
    def change(arrays: Arrays) -> None:
        arrays["images"] = np.ascontiguousarray(view(arrays["images"]))

    return change


def _drop(name: str) -> Callable[[Arrays], None]:
    def change(arrays: Arrays) -> None:
        del arrays[name]

    return change


def _duplicate_first_objid(arrays: Arrays) -> None:
    arrays["objid"][1] = arrays["objid"][0]


def _shuffle_labels(arrays: Arrays) -> None:
    """A join on the wrong key: every galaxy gets another galaxy's redshift and error."""
    order = np.random.default_rng(15).permutation(len(arrays["objid"]))
    for name in ("specz_redshift", "specz_redshift_err"):
        arrays[name] = arrays[name][order]


def _constant_labels(arrays: Arrays) -> None:
    """A join that found nothing and filled in a default redshift."""
    arrays["specz_redshift"][:] = 0.1


def _labels_from_another_sample(arrays: Arrays) -> None:
    """Redshifts of another survey's galaxies (a luminous red sample at z ~ 0.45-0.75)."""
    n = len(arrays["objid"])
    arrays["specz_redshift"] = np.random.default_rng(16).uniform(0.45, 0.75, n).astype(np.float32)


def _error_beside_redshift(arrays: Arrays) -> None:
    """An error small in absolute terms but 80% of its (low) redshift: a failed fit."""
    arrays["specz_redshift"][2] = 0.005
    arrays["specz_redshift_err"][2] = 0.004


# (file, change, caught_by, field, description); the structural ones are written as raw bytes below.
ARRAY_MUTATIONS: list[tuple[str, Callable[[Arrays], None], str, str | None, str]] = [
    ("wrong-band-count.h5", _reshape_images(lambda a: a[:, :4]), STRUCTURE, "images", "4 bands instead of 5"),
    ("cutout-31x31.h5", _reshape_images(lambda a: a[:, :, :31, :31]), STRUCTURE, "images", "31x31 cutouts"),
    ("missing-redshift.h5", _drop("specz_redshift"), STRUCTURE, "specz_redshift", "no labels"),
    ("nan-label.h5", _set("specz_redshift", (2,), np.nan), STRUCTURE, "specz_redshift", "a NaN redshift"),
    (
        "nan-pixels.h5",
        _set("images", (2, 2, 10, 10), np.nan),
        "expect_column_values_to_be_between(finite_frac_r)",
        None,
        "a NaN pixel in r",
    ),
    (
        "inf-pixels.h5",
        _set("images", (3, 3, 5, 5), np.inf),
        "expect_column_values_to_be_between(finite_frac_i)",
        None,
        "an inf pixel in i",
    ),
    (
        "dead-band.h5",
        _scale_band(1, 0.0),
        "expect_column_values_to_be_between(noise_g)",
        None,
        "g all zeros (a dead band)",
    ),
    (
        "sky-not-subtracted.h5",
        _add_to_band(3, 1.3),
        "expect_column_values_to_be_between(sky_i)",
        None,
        "i still carries the sky (1.3 nanomaggies/pixel, SDSS's dark sky in i)",
    ),
    (
        "calibration-shift.h5",
        _scale_band(4, 10.0),
        "expect_column_median_to_be_between(mag_z)",
        None,
        "z fluxes 10x too bright (a calibration shift)",
    ),
    (
        "negative-redshift.h5",
        _set("specz_redshift", (0,), -0.05),
        "expect_column_values_to_be_between(redshift)",
        None,
        "z = -0.05",
    ),
    (
        "absurd-redshift.h5",
        _set("specz_redshift", (1,), 9.0),
        "expect_column_values_to_be_between(redshift)",
        None,
        "z = 9",
    ),
    (
        "negative-redshift-error.h5",
        _set("specz_redshift_err", (0,), -1e-4),
        "expect_column_values_to_be_between(redshift_err)",
        None,
        "a negative redshift error",
    ),
    (
        "huge-redshift-error.h5",
        _set("specz_redshift_err", (4,), 0.5),
        "expect_column_values_to_be_between(redshift_err)",
        None,
        "a redshift error of 0.5",
    ),
    (
        "duplicate-objid-within.h5",
        _duplicate_first_objid,
        "expect_column_values_to_be_unique(objid)",
        None,
        "the same objid twice in one shard",
    ),
    (
        "error-beside-redshift.h5",
        _error_beside_redshift,
        "expect_column_values_to_be_between(redshift_err_rel)",
        None,
        "z = 0.005 with an error of 0.004",
    ),
    (
        "labels-shuffled.h5",
        _shuffle_labels,
        "expect_column_values_to_be_between(redshift_colour_significance)",
        None,
        "a broken label join: each galaxy has another one's redshift",
    ),
    (
        "labels-constant.h5",
        _constant_labels,
        "expect_column_stdev_to_be_between(redshift)",
        None,
        "a broken label join: every redshift is the default 0.1",
    ),
    (
        "labels-from-another-sample.h5",
        _labels_from_another_sample,
        "expect_column_quantile_values_to_be_between(redshift)",
        None,
        "a broken label join: redshifts of another survey's galaxies (0.45-0.75)",
    ),
    ("objid-zero.h5", _set("objid", (3,), 0), "expect_column_values_to_be_between(objid)", None, "objid 0"),
    (
        "objid-negative.h5",
        _set("objid", (4,), -1_237_650_000_000_000_000),
        "expect_column_values_to_be_between(objid)",
        None,
        "a negative objid (a wrapped 64-bit id)",
    ),
]


def build_corpus(base: Path, accepted_twin: Path, out_dir: Path) -> list[CorpusCase]:
    """Write every bad input into ``out_dir``; ``base`` is a good shard to mutate, ``accepted_twin`` a good
    shard that will be accepted before these are validated (its objids are reused for the cross-shard case)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = read_arrays(base)
    good_bytes = base.read_bytes()
    cases = []

    def raw(file: str, content: bytes, description: str) -> None:
        (out_dir / file).write_bytes(content)
        cases.append(CorpusCase(file, STRUCTURE, "<file>", description))

    raw("not-hdf5.h5", b"SIMPLE  =                    T / a FITS header, not HDF5\n" * 64, "not an HDF5 file")
    raw("truncated.h5", good_bytes[: len(good_bytes) * 3 // 5], "the first 60% of a good shard")
    raw("empty.h5", b"", "0 bytes")

    _write_corrupt_chunk(out_dir / "corrupt-chunk.h5", arrays, objid_offset=-OBJID_STRIDE)
    cases.append(CorpusCase("corrupt-chunk.h5", STRUCTURE, "images", "a valid header, a corrupt gzip chunk"))

    for k, (file, change, caught_by, field, description) in enumerate(ARRAY_MUTATIONS, start=1):
        _write_arrays(out_dir / file, _mutant(arrays, change, k * OBJID_STRIDE))
        cases.append(CorpusCase(file, caught_by, field, description))

    offset = (len(ARRAY_MUTATIONS) + 1) * OBJID_STRIDE
    _write_arrays(
        out_dir / "wrong-bands-attribute.h5", _mutant(arrays, lambda a: None, offset), bands="zirgu"
    )
    cases.append(
        CorpusCase(
            "wrong-bands-attribute.h5",
            "expect_column_values_to_be_in_set(bands_attr)",
            None,
            "bands attribute 'zirgu': images not in ugriz order",
        )
    )
    offset += 2 * OBJID_STRIDE
    _write_arrays(out_dir / "objid-int32.h5", _mutant(arrays, lambda a: None, offset), objid_dtype=np.int32)
    cases.append(
        CorpusCase(
            "objid-int32.h5",
            "expect_column_values_to_be_in_set(objid_dtype)",
            None,
            "objids stored as 32-bit integers (SDSS objids need 64 bits)",
        )
    )
    twin = read_arrays(accepted_twin)
    fresh = _mutant(arrays, lambda a: None, offset + OBJID_STRIDE)
    fresh["objid"] = twin["objid"][: len(fresh["objid"])]
    _write_arrays(out_dir / "duplicate-objid-across.h5", fresh)
    cases.append(
        CorpusCase(
            "duplicate-objid-across.h5",
            "expect_column_values_to_be_null(objid_accepted_in)",
            None,
            f"new pixels under objids already accepted in {accepted_twin.name}",
        )
    )
    return cases


def write_mutant(base: Path, case_file: str, out: Path, objid_offset: int = OBJID_STRIDE) -> Path:
    """One case of :data:`ARRAY_MUTATIONS` (by its file name) applied to a copy of ``base``, under objids
    ``objid_offset`` higher, written to ``out``."""
    change = next((case[1] for case in ARRAY_MUTATIONS if case[0] == case_file), None)
    if change is None:
        raise KeyError(f"harness.corpus has no array mutation named {case_file!r}")
    _write_arrays(out, _mutant(read_arrays(base), change, objid_offset))
    return out


def reuse_name(landing_file: Path) -> CorpusCase:
    """Replace a landing file already ingested (and accepted) by different content under the same name:
    a re-processed version with the same objids. Ingest must keep both; validation must refuse the second."""
    arrays = read_arrays(landing_file)
    arrays["images"] = arrays["images"] * np.float32(1.01)  # 1% recalibration: new bytes, same galaxies
    landing_file.unlink()
    _write_arrays(landing_file, arrays)
    return CorpusCase(
        landing_file.name,
        "expect_column_values_to_be_null(objid_accepted_in)",
        None,
        "a file name reused with different content (same objids)",
    )


def _write_arrays(
    path: Path, arrays: Arrays, bands: str | None = None, objid_dtype: type[np.integer[Any]] | None = None
) -> None:
    extra = {"bands": bands} if bands else None
    if objid_dtype is not None:  # write_shard always stores int64: write this one by hand
        with h5py.File(path, "w") as handle:
            for name, values in arrays.items():
                handle.create_dataset(name, data=values.astype(objid_dtype) if name == "objid" else values)
            handle.attrs["bands"] = BANDS
        return
    write_shard(
        path,
        arrays["images"],
        arrays["objid"],
        arrays.get("specz_redshift"),
        arrays.get("specz_redshift_err"),
        ra=arrays.get("ra"),
        dec=arrays.get("dec"),
        attrs=extra,
    )


def _write_corrupt_chunk(path: Path, arrays: Arrays, objid_offset: int) -> None:
    """A shard whose header and datasets are in order but whose second gzip chunk of images is garbage:
    only reading the pixels can find it."""
    rows = len(arrays["objid"])
    with h5py.File(path, "w") as handle:
        chunk = (max(1, rows // 4), *arrays["images"].shape[1:])
        images = handle.create_dataset("images", data=arrays["images"], chunks=chunk, compression="gzip")
        handle.create_dataset("objid", data=arrays["objid"] + objid_offset)
        for name in ("specz_redshift", "specz_redshift_err"):
            handle.create_dataset(name, data=arrays[name])
        handle.attrs["bands"] = BANDS
        damaged = images.id.get_chunk_info(1)
    with open(path, "r+b") as raw:
        raw.seek(damaged.byte_offset + damaged.size // 2)
        raw.write(b"\xff" * 64)
