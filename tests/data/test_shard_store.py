"""The shard store in S3 (moto's server on loopback): the gate writes every shard and manifest there, and a
second machine (another ASTROSPECT_HOME, no shared folder) trains from verified copies of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from astrospect.data.store import S3Store, local_copies, sha256_file
from astrospect.gate.ingest import ingest
from astrospect.gate.snapshot import create_snapshot
from astrospect.gate.validate import validate_pending
from astrospect.settings import Settings, load_settings
from harness.corpus import write_fake_shard

pytestmark = pytest.mark.integration

LANDING = "s3://landing/incoming/"
STORE = "s3://shard-store/nightly/"


@pytest.fixture
def gate(s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The gate's machine, with the shard store turned on."""
    monkeypatch.setenv("ASTROSPECT_STORE", STORE)
    return load_settings().replace(home=tmp_path / "gate-home")


def listing(client: Any) -> dict[str, str]:
    contents = client.list_objects_v2(Bucket="shard-store").get("Contents", [])
    return {item["Key"]: item["ETag"] for item in contents}


def land(client: Any, tmp_path: Path) -> list[Path]:
    shards = [write_fake_shard(tmp_path / f"night-{k}.h5", 40, seed=k, objid_start=k * 1000) for k in (1, 2)]
    for shard in shards:
        client.upload_file(str(shard), "landing", f"incoming/{shard.name}")
    client.put_object(Bucket="landing", Key="incoming/broken.h5", Body=b"not an HDF5 file")
    return shards


def test_the_gate_fills_the_store_and_another_machine_trains_from_it(
    s3: Any, gate: Settings, tmp_path: Path
) -> None:
    shards = land(s3, tmp_path)
    ingest(LANDING, gate)
    verdicts = validate_pending(gate)
    assert len(verdicts.accepted) == 2 and len(verdicts.quarantined) == 1
    snapshot = create_snapshot(gate).summary()

    stored = listing(s3)
    raw = sorted(key for key in stored if key.startswith("nightly/raw/"))
    assert len(raw) == 3  # every ingested shard, the quarantined one too: nothing is lost
    assert sorted(snapshot["shards"]) == sorted(
        f"s3://shard-store/{key}" for key in raw if not key.startswith("nightly/raw/broken.")
    )
    broken = verdicts.quarantined[0]["shard"]
    assert {f"nightly/quarantine/{broken}.report.html", f"nightly/quarantine/{broken}.result.json"} <= set(
        stored
    )
    store = S3Store(STORE)
    manifest = json.loads(store.get_text(f"snapshots/{snapshot['version']}.json"))
    assert manifest == json.loads(Path(snapshot["manifest"]).read_text())
    assert store.get_text("snapshots/LATEST").strip() == snapshot["version"]

    # Another machine: its own home, nothing shared but S3.
    worker = gate.replace(home=tmp_path / "gpu-home")
    copies = local_copies(snapshot["shards"], snapshot["sha256"], worker)
    assert [path.parent for path in copies] == [worker.cache_dir] * 2
    assert sorted(sha256_file(path) for path in copies) == sorted(sha256_file(s) for s in shards)
    assert sorted(path.name for path in worker.home.iterdir()) == ["cache"]
    mtimes = [path.stat().st_mtime_ns for path in copies]
    assert local_copies(snapshot["shards"], snapshot["sha256"], worker) == copies  # cached: not fetched again
    assert [path.stat().st_mtime_ns for path in copies] == mtimes

    # A second night with nothing new changes nothing in the store.
    ingest(LANDING, gate)
    validate_pending(gate)
    assert create_snapshot(gate).version == snapshot["version"]
    assert listing(s3) == stored


def test_a_store_object_that_fails_its_hash_is_refused_and_not_cached(
    s3: Any, gate: Settings, tmp_path: Path
) -> None:
    land(s3, tmp_path)
    ingest(LANDING, gate)
    validate_pending(gate)
    snapshot = create_snapshot(gate).summary()
    bucket_key = snapshot["shards"][0].removeprefix("s3://shard-store/")
    s3.put_object(Bucket="shard-store", Key=bucket_key, Body=b"bit rot")  # behind the store's back

    worker = gate.replace(home=tmp_path / "gpu-home")
    with pytest.raises(
        ValueError, match=rf"{snapshot['shards'][0]}: sha256 [0-9a-f]{{64}} but the snapshot says"
    ):
        local_copies(snapshot["shards"], snapshot["sha256"], worker)
    assert list(worker.cache_dir.iterdir()) == []  # neither the bad copy nor a partial file


def test_the_store_never_replaces_a_shard_with_other_bytes(s3: Any, tmp_path: Path) -> None:
    store = S3Store(STORE)
    shard = write_fake_shard(tmp_path / "a.0123456789ab.h5", 10, seed=1, objid_start=1)
    sha = sha256_file(shard)
    uri = store.put_shard(shard, "raw", sha)
    assert uri == f"{STORE}raw/{shard.name}"
    assert store.put_shard(shard, "raw", sha) == uri  # the same bytes again: a no-op
    before = listing(s3)

    impostor = write_fake_shard(tmp_path / "other" / shard.name, 10, seed=2, objid_start=1)
    with pytest.raises(FileExistsError, match=rf"{uri}: already holds sha256 {sha}, not [0-9a-f]{{64}}"):
        store.put_shard(impostor, "raw", sha256_file(impostor))
    assert listing(s3) == before
