"""Reading ``predict_file`` uploads: HDF5 shards and .npy arrays, and every way a file can be wrong."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from astrospect.data.shards import write_shard
from astrospect.serving.uploads import UnsupportedUploadError, UploadError, file_cutout_limit, read_upload

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(5)
BAND_FIRST = RNG.normal(1.0, 0.3, (6, 5, 32, 32)).astype(np.float32)
CHANNELS_LAST = np.transpose(BAND_FIRST, (0, 2, 3, 1))


def test_shard_with_or_without_labels(tmp_path: Path) -> None:
    labelled = write_shard(
        tmp_path / "a.h5", BAND_FIRST, np.arange(6) + 10, np.full(6, 0.1), np.full(6, 0.001)
    )
    unlabelled = write_shard(tmp_path / "b.h5", BAND_FIRST, np.arange(6) + 20)
    for path, first_objid in ((labelled, 10), (unlabelled, 20)):
        upload = read_upload(path, max_cutouts=100)
        assert upload.file_format == "hdf5"
        np.testing.assert_array_equal(upload.images, CHANNELS_LAST)
        assert upload.objid is not None
        assert upload.objid.tolist() == list(range(first_objid, first_objid + 6))


@pytest.mark.parametrize("array", [BAND_FIRST, CHANNELS_LAST], ids=["band-first", "channels-last"])
def test_npy_in_either_layout(tmp_path: Path, array: np.ndarray) -> None:
    np.save(tmp_path / "x.npy", array)
    upload = read_upload(tmp_path / "x.npy", max_cutouts=100)
    assert (upload.file_format, upload.objid) == ("npy", None)
    np.testing.assert_array_equal(upload.images, CHANNELS_LAST)
    assert upload.ebv is None  # a .npy array carries no E(B-V)


def test_a_shards_ebv_comes_with_its_cutouts(tmp_path: Path) -> None:
    ebv = np.array([0.02, np.nan, 0.0, 0.31, 0.05, np.nan], np.float32)  # NaN: unknown for that galaxy
    with_ebv = read_upload(write_shard(tmp_path / "a.h5", BAND_FIRST, np.arange(6), ebv=ebv), 100)
    np.testing.assert_array_equal(with_ebv.ebv, ebv)
    assert read_upload(write_shard(tmp_path / "b.h5", BAND_FIRST, np.arange(6)), 100).ebv is None


@pytest.mark.parametrize(("value", "shown"), [(-0.01, "-0.0099"), (np.inf, "inf")])
def test_a_shard_with_a_negative_or_infinite_ebv_is_refused(tmp_path: Path, value: float, shown: str) -> None:
    ebv = np.array([0.02, 0.03, value, 0.1, 0.1, 0.1], np.float32)
    shard = write_shard(tmp_path / "a.h5", BAND_FIRST, np.arange(6), ebv=ebv)
    with pytest.raises(UploadError) as refused:
        read_upload(shard, max_cutouts=100)
    message = str(refused.value)
    assert message.startswith("HDF5 shard: field 'ebv': expected each E(B-V) finite and >= 0")
    assert f"got 1 other value(s); the first at row 2: {shown}" in message


def test_format_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", CHANNELS_LAST)
    renamed = tmp_path / "cutouts.h5"
    (tmp_path / "x.npy").rename(renamed)
    assert read_upload(renamed, max_cutouts=100).file_format == "npy"


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _hdf5(path: Path, **datasets: np.ndarray) -> Path:
    with h5py.File(path, "w") as handle:
        for name, data in datasets.items():
            handle.create_dataset(name, data=data)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: _hdf5(p / "a.h5", images=BAND_FIRST), "field 'objid': required dataset is missing"),
        (lambda p: _hdf5(p / "a.h5", images=BAND_FIRST[:, :4], objid=np.arange(6)), "expected 5 bands"),
        (lambda p: _hdf5(p / "a.h5", images=BAND_FIRST, objid=np.arange(5)), "field 'objid': expected int64"),
        (
            lambda p: _hdf5(
                p / "a.h5", images=np.full((2, 5, 32, 32), np.nan, np.float32), objid=np.arange(2)
            ),
            "expected finite fluxes",
        ),
        (lambda p: _write(p / "a.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 100), "unreadable HDF5"),
        (lambda p: _write(p / "a.npy", b"\x93NUMPY\x01\x00garbage"), ".npy array: unreadable"),
        (lambda p: _npy(p, np.ones((3, 5, 32), np.float32)), "expected rank 4"),
        (lambda p: _npy(p, np.array(["a", "b"])), "expected numbers"),
        (
            lambda p: _npy(p, np.ones((300, 5, 32, 32), np.float16)),
            "expected at most 200 cutouts per file, got 300",
        ),
    ],
)
def test_bad_files_are_refused_with_field_and_reason(tmp_path: Path, make: object, message: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(UploadError) as refused:
        read_upload(path, max_cutouts=200)
    assert message in str(refused.value)
    assert str(tmp_path) not in str(refused.value)  # the server's temp paths stay private


def _npy(folder: Path, array: np.ndarray) -> Path:
    np.save(folder / "a.npy", array)
    return folder / "a.npy"


def test_pickled_npy_is_refused_without_unpickling(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UploadError, match="Python objects"):
        read_upload(tmp_path / "a.npy", max_cutouts=10)


def test_huge_declared_shapes_are_refused_before_reading(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "huge.h5", "w") as handle:  # 10^8 cutouts declared, nothing written
        handle.create_dataset("images", shape=(10**8, 5, 32, 32), dtype=np.float32, chunks=(1, 5, 32, 32))
        handle.create_dataset("objid", shape=(10**8,), dtype=np.int64, chunks=(1024,))
    assert (tmp_path / "huge.h5").stat().st_size < 100_000
    with pytest.raises(UploadError, match="expected at most 50 cutouts per file, got 100000000"):
        read_upload(tmp_path / "huge.h5", max_cutouts=50)
    header = tmp_path / "huge.npy"
    with header.open("wb") as handle:  # an .npy header promising 10^8 cutouts, no data
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<f4", "fortran_order": False, "shape": (10**8, 5, 32, 32)}
        )
    with pytest.raises(UploadError, match=r"\.npy array: unreadable"):
        read_upload(header, max_cutouts=50)


@pytest.mark.parametrize("content", [b"", b"objid,z\n1,0.1\n", b"PK\x03\x04zipfile"])
def test_other_formats_are_unsupported(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(UnsupportedUploadError, match="expected an HDF5 shard"):
        read_upload(_write(tmp_path / "x.h5", content), max_cutouts=10)


def test_file_limit_follows_the_body_limit() -> None:
    assert file_cutout_limit(64 * 1024 * 1024) == 3276  # 64 MiB of float32 32x32x5 cutouts
    assert file_cutout_limit(10) == 1
