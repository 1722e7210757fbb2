"""Dataset snapshots: a version is the content hash of the accepted shards; manifests are never rewritten."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from astrospect.gate.ledger import Ledger
from astrospect.gate.snapshot import create_snapshot, dataset_version, load_manifest
from astrospect.settings import Settings, load_settings

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings().replace(home=tmp_path / "home")


def accept(settings: Settings, name: str, content: bytes, rows: int) -> str:
    """Put a file in accepted/ and record it accepted, as validation would."""
    sha = hashlib.sha256(content).hexdigest()
    settings.accepted_dir.mkdir(parents=True, exist_ok=True)
    (settings.accepted_dir / name).write_bytes(content)
    with Ledger(settings.ledger_path) as ledger:
        ledger.add_shard(
            sha256=sha, name=name, source=f"/landing/{name}", fingerprint="f", size=len(content), rows=rows
        )
        objids = np.arange(rows, dtype=np.int64) + 1000 * len(name)
        ledger.mark_accepted(sha, rows, objids, np.full((rows, 5), 17.0), "passed")
    return sha


def test_version_is_order_independent_and_content_sensitive() -> None:
    assert dataset_version(["b" * 64, "a" * 64]) == dataset_version(["a" * 64, "b" * 64])
    assert dataset_version(["a" * 64]) != dataset_version(["a" * 64, "b" * 64])
    assert dataset_version(["a" * 64]) == hashlib.sha256(("a" * 64).encode()).hexdigest()


def test_manifest_lists_the_accepted_shards(settings: Settings) -> None:
    sha_a = accept(settings, "a.h5", b"shard a", rows=3)
    sha_b = accept(settings, "b.h5", b"shard bb", rows=4)

    snapshot = create_snapshot(settings)
    assert snapshot.new and snapshot.version == dataset_version([sha_a, sha_b])
    assert snapshot.n_rows == 7
    assert snapshot.shards == [str(settings.accepted_dir / "a.h5"), str(settings.accepted_dir / "b.h5")]
    manifest = json.loads(Path(snapshot.manifest_path).read_text())
    assert [(s["path"], s["sha256"], s["rows"], s["size"]) for s in manifest["shards"]] == [
        ("accepted/a.h5", sha_a, 3, 7),
        ("accepted/b.h5", sha_b, 4, 8),
    ]
    assert snapshot.summary()["shards"] == snapshot.shards


def test_nothing_new_returns_the_same_snapshot_unchanged(settings: Settings) -> None:
    accept(settings, "a.h5", b"shard a", rows=3)
    first = create_snapshot(settings)
    manifest = Path(first.manifest_path)
    stamp, text = manifest.stat().st_mtime_ns, manifest.read_text()

    again = create_snapshot(settings)
    assert not again.new and again.version == first.version and again.created_at == first.created_at
    assert (manifest.stat().st_mtime_ns, manifest.read_text()) == (stamp, text)

    accept(settings, "b.h5", b"shard b", rows=2)
    grown = create_snapshot(settings)
    assert grown.new and grown.version != first.version and grown.n_rows == 5
    assert manifest.read_text() == text  # the old version's manifest is kept as it was


def test_load_manifest_by_path_version_prefix_or_latest(settings: Settings) -> None:
    accept(settings, "a.h5", b"shard a", rows=3)
    snapshot = create_snapshot(settings)
    for key in (snapshot.manifest_path, snapshot.version, snapshot.version[:10], "latest"):
        loaded = load_manifest(key, settings)
        assert (loaded.version, loaded.shards, loaded.rows) == (snapshot.version, snapshot.shards, [3])
    with pytest.raises(FileNotFoundError, match="no snapshot manifest"):
        load_manifest("0" * 12, settings)


def test_an_accepted_shard_changed_on_disk_is_refused(settings: Settings) -> None:
    accept(settings, "a.h5", b"shard a", rows=3)
    (settings.accepted_dir / "a.h5").write_bytes(b"shard a, edited")
    with pytest.raises(ValueError, match=r"a\.h5: 15 bytes on disk but 7 in the ledger"):
        create_snapshot(settings)


def test_no_accepted_data_gives_an_empty_snapshot(settings: Settings) -> None:
    snapshot = create_snapshot(settings)
    assert snapshot.shards == [] and snapshot.n_rows == 0
    assert snapshot.summary()["n_shards"] == 0
