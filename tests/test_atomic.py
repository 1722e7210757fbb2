"""The atomic-publish helper every writer uses: never replaces a published file, leaves no temp file behind
whatever happens, and fsyncs the data before the name and the folder after it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from astrospect.atomic import (
    TEMP_SUFFIX,
    publish,
    remove_stale_temp_files,
    temp_file,
    write_once,
    write_replacing,
)

pytestmark = pytest.mark.unit


def test_publish_never_replaces_an_existing_file(tmp_path: Path) -> None:
    final = tmp_path / "shard.h5"
    final.write_bytes(b"first")
    with temp_file(tmp_path, final.name) as (temp, handle):
        handle.write(b"second")
        handle.flush()
        assert publish(temp, final) is False
    assert final.read_bytes() == b"first"
    assert write_once(final, b"third") is False
    assert final.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard.h5"]


def test_publish_gives_the_temp_file_its_name_and_the_temp_file_goes(tmp_path: Path) -> None:
    final = tmp_path / "deep" / "manifest.json"
    assert write_once(final, b"{}") is True
    assert final.read_bytes() == b"{}"
    assert [p.name for p in final.parent.iterdir()] == ["manifest.json"]
    assert final.stat().st_nlink == 1  # the temp name was a second link and is gone


def test_no_temp_file_is_left_when_the_writer_fails(tmp_path: Path) -> None:
    seen: list[Path] = []

    def writer_that_dies() -> None:
        with temp_file(tmp_path, "a.h5") as (temp, handle):
            handle.write(b"half a shard")
            seen.append(temp)
            raise RuntimeError("writer died")

    with pytest.raises(RuntimeError, match="writer died"):
        writer_that_dies()
    assert seen[0].name.startswith(".a.h5.") and seen[0].name.endswith(TEMP_SUFFIX)
    assert list(tmp_path.iterdir()) == []


def test_write_replacing_swaps_the_whole_file(tmp_path: Path) -> None:
    pointer = tmp_path / "LATEST"
    write_replacing(pointer, b"old\n")
    before = pointer.stat().st_ino
    write_replacing(pointer, b"new\n")
    assert pointer.read_bytes() == b"new\n"
    assert pointer.stat().st_ino != before  # a new file renamed over the old one, never rewritten in place
    assert [p.name for p in tmp_path.iterdir()] == ["LATEST"]


def test_data_is_fsynced_before_the_name_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(descriptor: int) -> None:
        mode = os.fstat(descriptor).st_mode
        synced.append("folder" if stat.S_ISDIR(mode) else f"file:{os.fstat(descriptor).st_ino}")
        real_fsync(descriptor)

    def link(source: os.PathLike[str], target: os.PathLike[str]) -> None:
        synced.append("link")
        real_link(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    final = tmp_path / "a.h5"
    assert write_once(final, b"bytes")
    assert synced == [f"file:{final.stat().st_ino}", "link", "folder"]


def test_stale_temp_files_are_removed_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / ".a.h5.x1y2.part").write_bytes(b"killed mid-copy")
    (tmp_path / "b.h5.old.part").write_bytes(b"an older writer's name")
    (tmp_path / "c.h5").write_bytes(b"a shard")
    assert remove_stale_temp_files(tmp_path) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["c.h5"]
    assert remove_stale_temp_files(tmp_path / "missing") == 0
