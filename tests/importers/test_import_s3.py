"""`astrospect import --out s3://...`: shards are staged locally (the progress file lives there) and uploaded
create-only as each is written to a real S3 endpoint on loopback (moto's server); `astrospect ingest` then
takes them from the bucket; running the command again uploads nothing new."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from astrospect.cli import app
from harness.corpus import write_fake_shard

pytestmark = pytest.mark.integration

BUCKET = "landing"  # created by the s3 fixture (conftest.py)


def _objects(client: Any) -> dict[str, str]:
    return {item["Key"]: item["ETag"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_an_import_to_s3_uploads_each_shard_once_and_ingest_takes_them(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASTROSPECT_HOME", str(tmp_path / "home"))
    # An HDF5 cube with the shard format's own dataset names: the hdf5 importer's defaults.
    cube = write_fake_shard(tmp_path / "cube.h5", 90, seed=4, objid_start=5000)
    command = [
        "import",
        "hdf5",
        "--data",
        str(cube),
        "--out",
        f"s3://{BUCKET}/incoming/",
        "--shard-size",
        "40",
    ]
    runner = CliRunner()
    first = runner.invoke(app, [*command, "--no-progress"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout[first.stdout.index("{") :])["accepted"] == 90
    uploaded = _objects(s3)
    assert sorted(uploaded) == [
        "incoming/cube-r000000000-000000040.h5",
        "incoming/cube-r000000040-000000080.h5",
        "incoming/cube-r000000080-000000090.h5",
    ]
    staged = tmp_path / "home" / "import-staging" / "cube"
    assert (staged / "cube.import.json").exists()

    again = runner.invoke(app, [*command, "--no-progress"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout[again.stdout.index("{") :])["resumed_at_row"] == 90
    assert _objects(s3) == uploaded  # nothing re-uploaded or replaced

    ingested = runner.invoke(app, ["ingest", "--source", f"s3://{BUCKET}/incoming/"])
    assert ingested.exit_code == 0, ingested.output
    assert len(json.loads(ingested.stdout[ingested.stdout.index("{") :])["new"]) == 3
