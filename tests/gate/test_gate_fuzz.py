"""A property-based test of the data gate (hypothesis): random files in a landing zone beside good shards.

Each example fills a fresh landing zone with two good shards and up to five other entries: HDF5 files of random
datasets (names, dtypes among strings, bytes, variable-length, compound, bool, float16, int8 and unsigned,
shapes of rank 0-4 with zero rows among them, attributes, contiguous, chunked, compressed or never-written
layouts), good shards with one required dataset replaced by a random one, truncated copies of a good shard,
files that only start like HDF5, plain bytes, and entries that are not files (a directory named like a shard, a
symbolic link, a FIFO). Then it runs ``astrospect ingest`` and ``astrospect validate`` as a user does, and
asserts that both exit 0, that both good shards are accepted in that run, that every other entry is
quarantined or skipped with a reason, that the landing zone is byte-identical afterwards, and that running both
again changes nothing.

``make test`` runs a few derandomised examples; ``make fuzz`` runs many random ones
(``ASTROSPECT_FUZZ_EXAMPLES``, default 200 there).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astrospect.cli import app
from astrospect.gate.ledger import Ledger
from harness.corpus import write_fake_shard

pytestmark = pytest.mark.data

EXAMPLES = int(os.environ.get("ASTROSPECT_FUZZ_EXAMPLES", "0")) or None
GOOD_ROWS = 40
REQUIRED = {  # name: the shape a good shard of GOOD_ROWS cutouts has
    "images": (GOOD_ROWS, 5, 32, 32),
    "objid": (GOOD_ROWS,),
    "specz_redshift": (GOOD_ROWS,),
    "specz_redshift_err": (GOOD_ROWS,),
}
NAMES = (*REQUIRED, "ra", "dec", "ebv", "truth", "extra")
DTYPES: dict[str, Any] = {
    "float32": np.float32,
    "float16": np.float16,
    "float64": np.float64,
    "int8": np.int8,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "int32": np.int32,
    "int64": np.int64,
    "uint64": np.uint64,
    "bool": np.bool_,
    "bytes": "S6",
    "string": h5py.string_dtype(),
    "vlen": h5py.vlen_dtype(np.float32),
    "compound": np.dtype([("z", "f4"), ("flag", "i2")]),
}
LAYOUTS = ("contiguous", "chunked", "gzip", "shuffle-lzf", "never-written")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    dtype: str
    shape: tuple[int, ...]
    layout: str
    seed: int


dimension = st.sampled_from([0, 1, 2, 3, 5, 7, 32, 40, 64])
shapes = st.lists(dimension, min_size=0, max_size=4).map(tuple)
OBJECT_LIKE = ("bytes", "string", "vlen", "compound")  # built cell by cell: kept small to keep examples fast
dataset_names = st.one_of(
    st.sampled_from(NAMES),
    st.text(
        st.characters(blacklist_characters="/.\x00", blacklist_categories=("Cs",)), min_size=1, max_size=12
    ),
)


def datasets(
    name: st.SearchStrategy[str],
    dtypes: list[str] | None = None,
    shape: st.SearchStrategy[tuple[int, ...]] = shapes,
) -> st.SearchStrategy[DatasetSpec]:
    return st.builds(
        DatasetSpec,
        name=name,
        dtype=st.sampled_from(dtypes or list(DTYPES)),
        shape=shape,
        layout=st.sampled_from(LAYOUTS),
        seed=st.integers(0, 2**31 - 1),
    ).filter(lambda spec: int(np.prod(spec.shape)) <= (2_000 if spec.dtype in OBJECT_LIKE else 210_000))


def near(shape: tuple[int, ...]) -> st.SearchStrategy[tuple[int, ...]]:
    """The right shape (most often), no rows, one row short, or one axis short: where the checks decide."""
    return st.sampled_from(
        [shape, shape, shape, (0, *shape[1:]), (shape[0] - 1, *shape[1:]), shape[1:] or (1,)]
    )


attribute_values = st.one_of(
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20),
    st.binary(max_size=20),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=5),
)
attributes = st.dictionaries(
    st.sampled_from(["bands", "pixel_scale_arcsec", "survey", "note"]), attribute_values, max_size=3
)


def values(spec: DatasetSpec) -> np.ndarray:
    """Random content of a spec's dtype: floats around 0 (so never a plausible label), ints over their range."""
    rng = np.random.default_rng(spec.seed)
    dtype = DTYPES[spec.dtype]
    size = int(np.prod(spec.shape))
    if spec.dtype.startswith("float"):
        data = rng.normal(0.0, 1.0, size)
        data[rng.random(size) < 0.01] = np.nan
        return data.astype(dtype).reshape(spec.shape)
    if spec.dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size, dtype=dtype, endpoint=True).reshape(spec.shape)
    if spec.dtype == "bool":
        return (rng.random(size) < 0.5).reshape(spec.shape)
    if spec.dtype == "bytes":
        return np.array([bytes(rng.integers(0, 256, 6, dtype=np.uint8)) for _ in range(size)], "S6").reshape(
            spec.shape
        )
    if spec.dtype == "string":
        return np.array([f"z={x:.3f}" for x in rng.random(size)], dtype=object).reshape(spec.shape)
    if spec.dtype == "vlen":
        cells = np.empty(size, dtype=object)
        for k in range(size):
            cells[k] = rng.normal(size=int(rng.integers(0, 4))).astype(np.float32)
        return cells.reshape(spec.shape)
    data = np.zeros(size, DTYPES["compound"])
    data["z"] = rng.random(size)
    return data.reshape(spec.shape)


def write_dataset(handle: h5py.File, spec: DatasetSpec) -> None:
    if spec.name in handle:
        del handle[spec.name]
    dtype = DTYPES[spec.dtype]
    chunked = spec.layout != "contiguous" and len(spec.shape) > 0 and 0 not in spec.shape
    options: dict[str, Any] = {}
    if chunked:
        options["chunks"] = tuple(max(1, d // 2) for d in spec.shape)
        if spec.layout == "gzip":
            options["compression"] = "gzip"
        elif spec.layout == "shuffle-lzf" and spec.dtype not in ("string", "vlen", "compound", "bytes"):
            options.update(compression="lzf", shuffle=True)
    if spec.layout == "never-written":
        handle.create_dataset(spec.name, shape=spec.shape, dtype=dtype, **options)
    else:
        handle.create_dataset(spec.name, data=values(spec), dtype=dtype, **options)


@dataclass(frozen=True)
class RandomHDF5:
    """An HDF5 file of random datasets and attributes."""

    specs: tuple[DatasetSpec, ...]
    attrs: dict[str, Any]

    def write(self, path: Path, good: list[Path]) -> None:
        with h5py.File(path, "w") as handle:
            for spec in self.specs:
                write_dataset(handle, spec)
            _set_attributes(handle, self.attrs)


@dataclass(frozen=True)
class GoodWithOneReplaced:
    """A good shard with one required dataset replaced by a random one (never a valid one: objid is not
    64-bit, floats are centred on 0)."""

    spec: DatasetSpec

    def write(self, path: Path, good: list[Path]) -> None:
        shutil.copyfile(good[0], path)
        with h5py.File(path, "r+") as handle:
            write_dataset(handle, self.spec)


@dataclass(frozen=True)
class Truncated:
    fraction: float

    def write(self, path: Path, good: list[Path]) -> None:
        content = good[1].read_bytes()
        path.write_bytes(content[: max(1, min(len(content) - 1, int(len(content) * self.fraction)))])


@dataclass(frozen=True)
class RawBytes:
    """Bytes that only start like HDF5 (its signature), or do not even that."""

    content: bytes
    signature: bool

    def write(self, path: Path, good: list[Path]) -> None:
        path.write_bytes((HDF5_SIGNATURE if self.signature else b"") + self.content)


@dataclass(frozen=True)
class NotAFile:
    kind: str  # directory | symlink | fifo

    def write(self, path: Path, good: list[Path]) -> None:
        if self.kind == "directory":
            path.mkdir()
        elif self.kind == "symlink":
            path.symlink_to(good[0])
        else:
            os.mkfifo(path)


def _set_attributes(handle: h5py.File, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        handle.attrs[key] = np.void(value) if isinstance(value, bytes) and b"\x00" in value else value


entries = st.one_of(
    st.builds(RandomHDF5, st.lists(datasets(dataset_names), max_size=6).map(tuple), attributes),
    st.builds(
        GoodWithOneReplaced,
        st.sampled_from(sorted(REQUIRED)).flatmap(
            lambda name: datasets(
                st.just(name),
                [d for d in DTYPES if not (name == "objid" and d in ("int64", "uint64"))],
                st.one_of(near(REQUIRED[name]), near(REQUIRED[name]), shapes),
            )
        ),
    ),
    st.builds(Truncated, st.floats(0.0, 1.0)),
    st.builds(RawBytes, st.binary(max_size=4096), st.booleans()),
    st.builds(NotAFile, st.sampled_from(["directory", "symlink", "fifo"])),
)


@pytest.fixture(scope="module")
def good_shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("good")
    return [
        write_fake_shard(folder / f"good-{k}.h5", GOOD_ROWS, seed=k, objid_start=k * 1000) for k in (1, 2)
    ]


def landing_state(folder: Path) -> dict[str, tuple[str, str]]:
    """Every entry of the landing zone, links not followed: its kind and, for a file, sha256 and mtime."""
    state = {}
    for root, directories, files in os.walk(folder):
        for name in [*directories, *files]:
            path = Path(root) / name
            if path.is_symlink():
                state[str(path.relative_to(folder))] = ("link", os.readlink(path))
            elif path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[str(path.relative_to(folder))] = ("file", f"{digest}:{path.stat().st_mtime_ns}")
            else:
                state[str(path.relative_to(folder))] = ("other", "")
    return state


def home_state(home: Path) -> dict[str, Any]:
    """What a re-run must leave alone: every stored file and every ledger row."""
    files = {
        str(path.relative_to(home)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(home.rglob("*"))
        if path.is_file() and not path.name.startswith(("ledger.sqlite", ".gate.lock"))
    }
    with Ledger(home / "ledger.sqlite") as ledger:
        shards = [
            record.to_dict() for record in ledger.with_status("raw", "accepted", "quarantined", "released")
        ]
        events = {record["sha256"]: ledger.events(record["sha256"]) for record in shards}
        entries = ledger.landing_entries()
    return {"files": files, "shards": shards, "events": events, "landing_entries": entries}


def run_cli(arguments: list[str], home: Path) -> dict[str, Any]:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, arguments, env={"ASTROSPECT_HOME": str(home)})
    assert result.exit_code == 0, (
        f"astrospect {' '.join(arguments)} exited {result.exit_code}: {result.output}"
    )
    summary: dict[str, Any] = json.loads(result.stdout[result.stdout.index("{") :])
    return summary


Writer = Callable[[Path, list[Path]], None]


@settings(
    max_examples=EXAMPLES or 5,
    derandomize=EXAMPLES is None,  # `make test`: the same examples every time; `make fuzz`: new ones
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(others=st.lists(entries, min_size=1, max_size=5))
def test_no_landing_file_can_stop_the_gate_or_pass_it_unseen(
    others: list[Any], good_shards: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    landing, home = root / "landing", root / "home"
    landing.mkdir()
    good = [Path(shutil.copy(path, landing / path.name)) for path in good_shards]
    written: list[Path] = []
    for k, entry in enumerate(others):
        path = landing / f"other-{k}.h5"
        entry.write(path, good_shards)
        written.append(path)
    before = landing_state(landing)

    ingested = run_cli(["ingest", "--source", str(landing)], home)
    validated = run_cli(["validate"], home)

    accepted = {Path(path).name for path in validated["accepted"]}
    with Ledger(home / "ledger.sqlite") as ledger:
        by_source = {}
        for record in ledger.with_status("accepted", "quarantined"):
            by_source[record.sha256] = record
        for path in good:
            record = by_source[hashlib.sha256(path.read_bytes()).hexdigest()]
            assert record.name in accepted, f"good shard {path.name} not accepted: {record.reason}"
        skipped = {entry["source"]: entry["reason"] for entry in ingested["skipped_entries"]}
        for path, entry in zip(written, others, strict=True):
            if isinstance(entry, NotAFile):
                assert skipped.get(str(path)), f"{path.name} ({entry.kind}) was not reported as skipped"
                continue
            record = by_source.get(hashlib.sha256(path.read_bytes()).hexdigest())
            assert record is not None, f"{path.name} ({entry}) has no verdict"
            assert record.status == "quarantined" and record.reason, (
                f"{path.name} ({entry}) was {record.status}"
            )
    assert landing_state(landing) == before

    after = home_state(home)
    again_ingested = run_cli(["ingest", "--source", str(landing)], home)
    again_validated = run_cli(["validate"], home)
    assert again_ingested["new"] == [] and again_ingested["quarantined"] == []
    assert again_validated["accepted"] == [] and again_validated["quarantined"] == []
    assert home_state(home) == after
    assert landing_state(landing) == before
