from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from astrospect.data.shards import (
    ShardFormatError,
    inspect_shard,
    iter_shard,
    read_shard,
    to_model_layout,
    write_shard,
)

pytestmark = pytest.mark.data


def make_arrays(n: int = 10, size: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "images": rng.normal(0, 0.05, (n, 5, size, size)).astype(np.float32),
        "objid": np.arange(n, dtype=np.int64) + 1_237_650_000_000_000_000,
        "redshift": rng.uniform(0, 0.5, n).astype(np.float32),
        "redshift_err": np.full(n, 1e-4, np.float32),
    }


def test_round_trip_preserves_values_and_transposes_to_channels_last(tmp_path: Path) -> None:
    arrays = make_arrays()
    path = write_shard(
        tmp_path / "a.h5",
        **arrays,
        ra=np.arange(10.0),
        dec=-np.arange(10.0),
        truth={"r_mag": np.arange(10.0)},
    )
    cutouts = read_shard(path)
    assert cutouts.images.shape == (10, 32, 32, 5)
    assert np.array_equal(cutouts.images, arrays["images"].transpose(0, 2, 3, 1))
    assert np.array_equal(cutouts.objid, arrays["objid"])
    assert np.array_equal(cutouts.redshift, arrays["redshift"])
    assert cutouts.ra is not None and cutouts.ra[3] == 3.0
    info = inspect_shard(path)
    assert info.attrs["bands"] == "ugriz" and info.attrs["pixel_scale_arcsec"] == pytest.approx(0.396)
    with h5py.File(path) as handle:
        assert handle["truth/r_mag"][4] == 4.0


def test_streams_in_chunks(tmp_path: Path) -> None:
    path = write_shard(tmp_path / "a.h5", **make_arrays(n=25))
    sizes = [len(chunk) for chunk in iter_shard(path, chunk_size=10)]
    assert sizes == [10, 10, 5]


def test_64_pixel_cubes_are_centre_cropped(tmp_path: Path) -> None:
    arrays = make_arrays(n=3, size=64)
    path = write_shard(tmp_path / "big.h5", **arrays)
    cutouts = read_shard(path)
    assert cutouts.images.shape == (3, 32, 32, 5)
    assert np.array_equal(cutouts.images, arrays["images"][:, :, 16:48, 16:48].transpose(0, 2, 3, 1))


def test_prediction_shards_may_omit_labels(tmp_path: Path) -> None:
    arrays = make_arrays()
    path = write_shard(tmp_path / "unlabelled.h5", arrays["images"], arrays["objid"])
    assert read_shard(path, require_labels=False).redshift is None
    with pytest.raises(ShardFormatError, match=r"field 'specz_redshift'.*missing"):
        read_shard(path)


def test_layouts_are_both_accepted_and_give_the_same_array() -> None:
    band_first = np.random.default_rng(1).normal(size=(2, 5, 32, 32)).astype(np.float32)
    assert np.array_equal(to_model_layout(band_first), to_model_layout(band_first.transpose(0, 2, 3, 1)))


def test_never_overwrites_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = write_shard(tmp_path / "a.h5", **make_arrays())
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_shard(path, **make_arrays(seed=1))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5"]


def _write_raw(path: Path, **datasets: np.ndarray) -> Path:
    with h5py.File(path, "w") as handle:
        for name, data in datasets.items():
            handle.create_dataset(name, data=data)
    return path


def _valid(**overrides: np.ndarray) -> dict[str, np.ndarray]:
    arrays = make_arrays()
    datasets = {
        "images": arrays["images"],
        "objid": arrays["objid"],
        "specz_redshift": arrays["redshift"],
        "specz_redshift_err": arrays["redshift_err"],
    }
    datasets.update(overrides)
    return {k: v for k, v in datasets.items() if v is not None}


MALFORMED: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    "not hdf5": (lambda p: (p.write_text("objid,z\n1,0.1\n"), p)[1], "<file>", "not an HDF5 file"),
    "empty file": (lambda p: (p.write_bytes(b""), p)[1], "<file>", "empty"),
    "truncated": (
        lambda p: (
            p.write_bytes(write_shard(p.with_suffix(".full.h5"), **make_arrays()).read_bytes()[:3000]),
            p,
        )[1],
        "<file>",
        "truncated or corrupt",
    ),
    "missing images": (lambda p: _write_raw(p, **_valid(images=None)), "images", "missing"),
    "missing objid": (lambda p: _write_raw(p, **_valid(objid=None)), "objid", "missing"),
    "wrong rank": (
        lambda p: _write_raw(p, **_valid(images=np.zeros((10, 5, 32), np.float32))),
        "images",
        "rank 4",
    ),
    "wrong band count": (
        lambda p: _write_raw(p, **_valid(images=np.zeros((10, 4, 32, 32), np.float32))),
        "images",
        "5 bands",
    ),
    "31x31 cutouts": (
        lambda p: _write_raw(p, **_valid(images=np.zeros((10, 5, 31, 31), np.float32))),
        "images",
        "31x31",
    ),
    "integer pixels": (
        lambda p: _write_raw(p, **_valid(images=np.zeros((10, 5, 32, 32), np.int16))),
        "images",
        "floating",
    ),
    "no rows": (
        lambda p: _write_raw(p, **_valid(images=np.zeros((0, 5, 32, 32), np.float32))),
        "images",
        "N = 0",
    ),
    "length mismatch": (
        lambda p: _write_raw(p, **_valid(specz_redshift=np.zeros(9, np.float32))),
        "specz_redshift",
        "length mismatch",
    ),
    "objid length": (lambda p: _write_raw(p, **_valid(objid=np.arange(3))), "objid", "shape \\(10,\\)"),
    "nan label": (
        lambda p: _write_raw(p, **_valid(specz_redshift=np.array([0.1] * 9 + [np.nan], np.float32))),
        "specz_redshift",
        "1 non-finite label.*\\[9\\]",
    ),
    "inf label error": (
        lambda p: _write_raw(p, **_valid(specz_redshift_err=np.array([np.inf] + [1e-4] * 9, np.float32))),
        "specz_redshift_err",
        "non-finite",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_shards_get_an_error_naming_file_field_and_reason(tmp_path: Path, case: str) -> None:
    build, field, reason = MALFORMED[case]
    path = build(tmp_path / "bad.h5")
    with pytest.raises(ShardFormatError) as error:
        read_shard(path)
    assert error.value.field == field
    message = str(error.value)
    assert message.startswith(f"{path}: field '{field}': ")
    with pytest.raises(ShardFormatError, match=reason):
        inspect_shard(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ShardFormatError, match=r"nowhere\.h5: field '<file>': no such file"):
        inspect_shard(tmp_path / "nowhere.h5")


def test_ebv_round_trips_and_is_optional(tmp_path: Path) -> None:
    """The optional per-cutout Galactic E(B-V): written float32, read back, never required, length-checked."""

    arrays = make_arrays()
    ebv = np.linspace(0.01, 0.2, 10)
    with_ebv = write_shard(tmp_path / "ebv.h5", **arrays, ebv=ebv)
    without = write_shard(tmp_path / "plain.h5", **arrays)
    cutouts = read_shard(with_ebv)
    assert cutouts.ebv is not None and cutouts.ebv.dtype == np.float32
    np.testing.assert_allclose(cutouts.ebv, ebv, rtol=1e-6)
    assert read_shard(without).ebv is None
    chunks = list(iter_shard(with_ebv, chunk_size=4))
    np.testing.assert_allclose(np.concatenate([c.ebv for c in chunks if c.ebv is not None]), ebv, rtol=1e-6)
    for path in (with_ebv, without):  # the gate's structure check: no format error either way
        assert inspect_shard(path).n == 10
    short = write_shard(tmp_path / "short.h5", **arrays, ebv=ebv[:7])
    with pytest.raises(ShardFormatError, match="'ebv': length mismatch"):
        inspect_shard(short)


# -- nothing a file declares is trusted ----------------------------------------------------------------------
def _labelled(path: Path, **overrides: object) -> Path:
    """A valid small shard, with some datasets replaced by what ``overrides`` writes (a callable of the file)."""
    arrays = _valid()
    with h5py.File(path, "w") as handle:
        for name, data in arrays.items():
            if name not in overrides:
                handle.create_dataset(name, data=data)
        for write in overrides.values():
            write(handle)  # type: ignore[operator]
    return path


NOT_NUMBERS: dict[str, Callable[[h5py.File], object]] = {
    "bytes": lambda h: h.create_dataset("specz_redshift", data=np.array([b"0.1"] * 10)),
    "strings": lambda h: h.create_dataset("specz_redshift", data=["0.1"] * 10, dtype=h5py.string_dtype()),
    "compound": lambda h: h.create_dataset(
        "specz_redshift", data=np.zeros(10, dtype=[("z", "f4"), ("err", "f4")])
    ),
    "bool": lambda h: h.create_dataset("specz_redshift", data=np.ones(10, bool)),
}


@pytest.mark.parametrize("kind", sorted(NOT_NUMBERS))
def test_labels_that_are_not_numbers_are_a_format_error_not_a_crash(tmp_path: Path, kind: str) -> None:
    """The reported crash: a non-numeric redshift reached np.isfinite (TypeError) instead of a clear error."""
    path = _labelled(tmp_path / "bad.h5", specz_redshift=NOT_NUMBERS[kind])
    with pytest.raises(ShardFormatError, match=r"field 'specz_redshift': expected real numbers, got dtype"):
        inspect_shard(path)


def test_optional_columns_must_be_numbers_too(tmp_path: Path) -> None:
    path = _labelled(tmp_path / "bad.h5", ra=lambda h: h.create_dataset("ra", data=np.array([b"x"] * 10)))
    with pytest.raises(ShardFormatError, match=r"field 'ra': expected real numbers"):
        inspect_shard(path)


def test_optional_datasets_the_format_does_not_name_are_allowed(tmp_path: Path) -> None:
    path = _labelled(tmp_path / "extra.h5", ebv=lambda h: h.create_dataset("ebv", data=np.zeros(10, np.float32)))
    assert inspect_shard(path).n == 10


def test_terabytes_declared_in_a_few_kilobytes_are_refused_before_reading(tmp_path: Path) -> None:
    path = _labelled(
        tmp_path / "huge.h5",
        images=lambda h: h.create_dataset(
            "images", shape=(10**8, 5, 32, 32), chunks=(64, 5, 32, 32), dtype="f4", compression="gzip"
        ),
        objid=lambda h: h.create_dataset("objid", shape=(10**8,), chunks=(4096,), dtype="i8"),
        specz_redshift=lambda h: h.create_dataset("specz_redshift", shape=(10**8,), chunks=(4096,), dtype="f4"),
        specz_redshift_err=lambda h: h.create_dataset(
            "specz_redshift_err", shape=(10**8,), chunks=(4096,), dtype="f4"
        ),
    )
    assert path.stat().st_size < 100_000
    with pytest.raises(ShardFormatError, match=r"field 'specz_redshift': only 0 of its 24415 chunks"):
        inspect_shard(path)  # the labels it reads: never written
    with pytest.raises(ShardFormatError, match=r"field 'images': declares 2048000000000 bytes .* more than the limit"):
        read_shard(path)


def test_chunks_that_were_never_written_are_refused(tmp_path: Path) -> None:
    path = _labelled(
        tmp_path / "fill.h5",
        images=lambda h: h.create_dataset("images", shape=(10, 5, 32, 32), chunks=(2, 5, 32, 32), dtype="f4"),
    )
    with pytest.raises(ShardFormatError, match=r"field 'images': only 0 of its 5 chunks are written"):
        read_shard(path)


def test_contiguous_data_that_was_never_written_is_refused(tmp_path: Path) -> None:
    path = _labelled(
        tmp_path / "empty.h5",
        specz_redshift=lambda h: h.create_dataset("specz_redshift", shape=(10,), dtype="f4"),
    )
    with pytest.raises(ShardFormatError, match=r"field 'specz_redshift': declares 40 bytes but stores 0"):
        inspect_shard(path)


def test_a_chunk_too_big_to_hold_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import astrospect.data.shards as shards

    monkeypatch.setattr(shards, "MAX_CHUNK_BYTES", 100_000)  # 64 MiB in production: a smaller file here
    path = _labelled(
        tmp_path / "chunky.h5",
        images=lambda h: h.create_dataset(
            "images", data=np.zeros((10, 5, 32, 32), np.float32), chunks=(10, 5, 32, 32), compression="gzip"
        ),
    )
    with pytest.raises(ShardFormatError, match=r"field 'images': chunks of 204800 bytes, more than 100000"):
        read_shard(path)


def test_external_links_storage_and_virtual_datasets_are_refused_and_never_followed(tmp_path: Path) -> None:
    """Each points at a file that does not exist: had HDF5 followed it, the error would be HDF5's, not ours."""
    elsewhere = str(tmp_path / "not-here" / "elsewhere.h5")

    def external_link(handle: h5py.File) -> None:
        handle["images"] = h5py.ExternalLink(elsewhere, "/images")

    def external_storage(handle: h5py.File) -> None:
        handle.create_dataset("specz_redshift", shape=(10,), dtype="f4", external=[(elsewhere, 0, 40)])

    def virtual(handle: h5py.File) -> None:
        layout = h5py.VirtualLayout(shape=(10, 5, 32, 32), dtype="f4")
        layout[:] = h5py.VirtualSource(elsewhere, "images", shape=(10, 5, 32, 32))
        handle.create_virtual_dataset("images", layout)

    def buried_link(handle: h5py.File) -> None:
        handle.create_group("truth")["more"] = h5py.ExternalLink(elsewhere, "/")

    cases = [
        ("images", external_link, "images", "an external link to another file"),
        ("specz_redshift", external_storage, "specz_redshift", "external raw storage"),
        ("images", virtual, "images", "a virtual dataset"),
        ("truth", buried_link, "truth/more", "an external link to another file"),
    ]
    for replaced, write, field, reason in cases:
        path = _labelled(tmp_path / f"{write.__name__}.h5", **{replaced: write})
        with pytest.raises(ShardFormatError, match=rf"field '{field}': {reason}"):
            read_shard(path)
