"""Ingest from a real S3 endpoint on loopback (moto's server, driven through boto3 over HTTP): copies,
idempotence, multipart streaming, a killed-then-rerun ingest, and a source left exactly as it was."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from astrospect.gate.ingest import INCOMING, ingest, sha256_file
from astrospect.gate.ledger import Ledger
from astrospect.gate.validate import validate_pending
from astrospect.settings import Settings, load_settings
from harness.corpus import write_fake_shard

pytestmark = pytest.mark.integration

BUCKET = "landing"  # created by the s3 fixture (conftest.py)
PREFIX = "incoming/"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings().replace(home=tmp_path / "home", ingest_chunk_bytes=1024 * 1024)


def source_state(client: Any) -> dict[str, tuple[int, str, str, str]]:
    """Every object under the bucket: size, ETag, LastModified and the sha256 of its bytes."""
    state = {}
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        state[item["Key"]] = (
            item["Size"],
            item["ETag"],
            str(item["LastModified"]),
            hashlib.sha256(body).hexdigest(),
        )
    return state


def upload(client: Any, path: Path, key: str) -> str:
    client.upload_file(str(path), BUCKET, key)
    return sha256_file(path)


def test_ingest_from_s3_copies_new_content_once_and_leaves_the_source_untouched(
    s3: Any, settings: Settings, tmp_path: Path
) -> None:
    shards = [write_fake_shard(tmp_path / f"s{k}.h5", 30, seed=k, objid_start=k * 1000) for k in (1, 2)]
    expected = {upload(s3, shard, f"{PREFIX}{shard.name}") for shard in shards}
    # A large object, bigger than the part size, so it is fetched in several ranged GETs.
    big = write_fake_shard(tmp_path / "big.h5", 300, seed=3, objid_start=3000)
    assert big.stat().st_size > 3 * settings.ingest_chunk_bytes
    expected.add(upload(s3, big, f"{PREFIX}nested/big.h5"))
    upload(s3, shards[0], f"{PREFIX}same-bytes-other-name.h5")  # same content: not copied again
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}zero.h5", Body=b"")  # a 0-byte object
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}_SUCCESS", Body=b"")  # not a shard: ignored
    s3.put_object(Bucket=BUCKET, Key="elsewhere/other.h5", Body=b"outside the prefix")
    before = source_state(s3)

    first = ingest(f"s3://{BUCKET}/{PREFIX}", settings)
    empty_sha = hashlib.sha256(b"").hexdigest()
    assert {sha256_file(Path(p)) for p in first.new} == expected | {empty_sha}
    assert first.skipped == 1  # same-bytes-other-name
    assert first.bytes_copied == sum(shard.stat().st_size for shard in (*shards, big))
    with Ledger(settings.ledger_path) as ledger:
        record = ledger.get(sha256_file(big))
    # Ingest copies bytes and never parses them: the row count comes with validation's verdict.
    assert (
        record is not None and record.source == f"s3://{BUCKET}/{PREFIX}nested/big.h5" and record.rows is None
    )

    second = ingest(f"s3://{BUCKET}/{PREFIX}", settings)
    assert second.new == [] and second.skipped == 5
    assert source_state(s3) == before
    assert list((settings.raw_dir / INCOMING).iterdir()) == []

    verdicts = validate_pending(settings)
    assert len(verdicts.accepted) == 3
    with Ledger(settings.ledger_path) as ledger:
        validated = ledger.get(sha256_file(big))
    assert validated is not None and validated.rows == 300
    [zero] = verdicts.quarantined
    assert zero["shard"].startswith("zero.") and "field '<file>': file is empty (0 bytes)" in zero["reason"]


def test_a_killed_ingest_leaves_no_half_file_and_a_rerun_finishes(
    s3: Any, settings: Settings, tmp_path: Path
) -> None:
    small = write_fake_shard(tmp_path / "small.h5", 20, seed=1, objid_start=1000)
    upload(s3, small, f"{PREFIX}a-small.h5")
    big = tmp_path / "b-big.h5"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    big_sha = upload(s3, big, f"{PREFIX}b-big.h5")
    before = source_state(s3)

    # The ingest runs as its own process, throttled to 2 MB/s in 1 MB parts, and is killed mid-copy.
    env = {
        **os.environ,
        "ASTROSPECT_HOME": str(settings.home),
        "ASTROSPECT_INGEST_CHUNK_MB": "1",
        "ASTROSPECT_INGEST_CONCURRENCY": "1",
        "ASTROSPECT_INGEST_MAX_BANDWIDTH": str(2 * 1024 * 1024),
    }
    command = [
        str(Path(sys.executable).parent / "astrospect"),
        "ingest",
        "--source",
        f"s3://{BUCKET}/{PREFIX}",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    incoming = settings.raw_dir / INCOMING
    deadline = time.monotonic() + 60
    partial: list[Path] = []
    while time.monotonic() < deadline and process.poll() is None:
        partial = [p for p in incoming.glob(".b-big.h5.*.part")] if incoming.is_dir() else []
        if partial and partial[0].stat().st_size >= 2 * 1024 * 1024:
            break
        time.sleep(0.02)
    assert process.stderr is not None
    assert process.poll() is None, f"ingest ended before it could be killed: {process.stderr.read()!r}"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.stderr.close()

    # Killed: the small shard is complete, the big one exists only as a temp file, the ledger knows 1 shard.
    assert 0 < partial[0].stat().st_size < big.stat().st_size
    published = sorted(p.name for p in settings.raw_dir.glob("*.h5"))
    assert len(published) == 1 and published[0].startswith("a-small.")
    assert sha256_file(settings.raw_dir / published[0]) == sha256_file(small)
    with Ledger(settings.ledger_path) as ledger:
        assert ledger.get(big_sha) is None

    rerun = ingest(f"s3://{BUCKET}/{PREFIX}", settings)
    assert [Path(p).name for p in rerun.new] == [f"b-big.{big_sha[:12]}.h5"] and rerun.skipped == 1
    assert sha256_file(Path(rerun.new[0])) == big_sha
    assert list(incoming.iterdir()) == []  # the half file is gone
    assert ingest(f"s3://{BUCKET}/{PREFIX}", settings).new == []
    assert source_state(s3) == before
