"""Ingest from a landing folder: new content only, atomic, idempotent, the source untouched."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from astrospect.gate.ingest import INCOMING, ingest, sha256_file, store_name
from astrospect.gate.ledger import RAW, Ledger
from astrospect.settings import Settings, load_settings
from harness.corpus import write_fake_shard

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings().replace(home=tmp_path / "home")


def snapshot_tree(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Every file under ``folder``: sha256, size and mtime (what "untouched" means)."""
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_size,
            path.stat().st_mtime_ns,
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_store_name_keeps_the_name_and_adds_the_content_hash() -> None:
    assert store_name("sim-s1-0.h5", "0123456789abcdef" * 4) == "sim-s1-0.0123456789ab.h5"
    assert store_name("odd name (1).hdf5", "f" * 64) == "odd_name__1_.ffffffffffff.hdf5"


def test_ingest_copies_new_shards_and_a_rerun_is_a_noop(tmp_path: Path, settings: Settings) -> None:
    landing = tmp_path / "landing"
    write_fake_shard(landing / "a.h5", 6, seed=1, objid_start=100)
    write_fake_shard(landing / "night2" / "b.h5", 4, seed=2, objid_start=200)
    (landing / "README.txt").write_text("not a shard: ignored")
    before = snapshot_tree(landing)

    first = ingest(landing, settings)
    assert len(first.new) == 2 and first.skipped == 0
    assert first.bytes_copied == sum(size for _, size, _ in before.values()) - len("not a shard: ignored")
    for path in map(Path, first.new):
        assert path.parent == settings.raw_dir
        assert path.name.split(".")[1] == sha256_file(path)[:12]
    with Ledger(settings.ledger_path) as ledger:
        records = ledger.with_status(RAW)
    # Ingest never parses a file (validation reads it, sandboxed): the row count comes with the verdict.
    assert sorted((r.source, r.rows) for r in records) == [
        (str(landing / "a.h5"), None),
        (str(landing / "night2" / "b.h5"), None),
    ]
    raw_before = snapshot_tree(settings.raw_dir)

    second = ingest(landing, settings)
    assert second.new == [] and second.skipped == 2
    assert snapshot_tree(settings.raw_dir) == raw_before
    assert snapshot_tree(landing) == before  # never modified, never deleted
    assert list((settings.raw_dir / INCOMING).iterdir()) == []


def test_same_content_under_another_name_is_not_copied_again(tmp_path: Path, settings: Settings) -> None:
    landing = tmp_path / "landing"
    write_fake_shard(landing / "a.h5", 5, seed=1, objid_start=100)
    ingest(landing, settings)
    (landing / "copy-of-a.h5").write_bytes((landing / "a.h5").read_bytes())
    touched = landing / "a.h5"
    os.utime(
        touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9)
    )  # new mtime, same bytes

    result = ingest(landing, settings)
    assert result.new == [] and result.skipped == 2
    assert len(list(settings.raw_dir.glob("*.h5"))) == 1


def test_a_reused_name_with_new_content_keeps_both_versions(tmp_path: Path, settings: Settings) -> None:
    landing = tmp_path / "landing"
    write_fake_shard(landing / "a.h5", 5, seed=1, objid_start=100)
    first = ingest(landing, settings)
    (landing / "a.h5").unlink()  # the producer replaces its file
    write_fake_shard(landing / "a.h5", 5, seed=2, objid_start=100)

    second = ingest(landing, settings)
    assert len(second.new) == 1 and second.new != first.new
    assert sorted(p.name.split(".")[0] for p in settings.raw_dir.glob("*.h5")) == ["a", "a"]
    assert Path(first.new[0]).is_file()  # the first version is still there, unchanged


def test_an_interrupted_run_is_cleaned_up_and_its_published_file_adopted(
    tmp_path: Path, settings: Settings
) -> None:
    landing = tmp_path / "landing"
    shard = write_fake_shard(landing / "a.h5", 5, seed=1, objid_start=100)
    sha = sha256_file(shard)
    # What a kill leaves: a partial temp file, and a published file whose ledger row was never written.
    incoming = settings.raw_dir / INCOMING
    incoming.mkdir(parents=True)
    (incoming / "b.h5.x1y2.part").write_bytes(b"half a shard")
    published = settings.raw_dir / store_name("a.h5", sha)
    published.write_bytes(shard.read_bytes())

    result = ingest(landing, settings)
    assert result.new == [str(published)]
    assert list(incoming.iterdir()) == []
    with Ledger(settings.ledger_path) as ledger:
        record = ledger.get(sha)
    assert record is not None and record.name == published.name


def test_a_different_file_under_the_final_name_is_never_overwritten(
    tmp_path: Path, settings: Settings
) -> None:
    landing = tmp_path / "landing"
    shard = write_fake_shard(landing / "a.h5", 5, seed=1, objid_start=100)
    other = write_fake_shard(landing / "b.h5", 5, seed=2, objid_start=200)
    squatter = settings.raw_dir / store_name("a.h5", sha256_file(shard))
    squatter.parent.mkdir(parents=True)
    squatter.write_bytes(b"something else")

    result = ingest(landing, settings)  # that object's quarantine, not the run's end
    [refused] = result.quarantined
    assert refused["source"] == str(shard)
    assert refused["reason"].startswith("FileExistsError: ") and "refusing to overwrite" in refused["reason"]
    assert [Path(p).name for p in result.new] == [store_name("b.h5", sha256_file(other))]
    assert squatter.read_bytes() == b"something else"
    with Ledger(settings.ledger_path) as ledger:
        assert [(e["source"], e["verdict"]) for e in ledger.landing_entries()] == [
            (str(shard), "quarantined")
        ]
        assert ledger.sighting(str(shard), f"{shard.stat().st_size}") is None  # tried again next run


def test_missing_landing_folder_is_an_error_naming_it(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ingest(tmp_path / "nowhere", settings)
