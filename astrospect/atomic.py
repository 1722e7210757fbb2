"""Atomic file publishing: write a temp file beside the target, fsync it, then give it its name in one step.

Two ways to name it:

- :func:`publish` (and :func:`write_once`) links the temp file under its final name. ``link(2)`` fails when
  the name is taken, so a published file is never replaced: shards, snapshot manifests and cached copies,
  whose names stand for their content.
- :func:`write_replacing` renames over the old file: pointers and reports that are meant to be refreshed
  (``snapshots/LATEST``, a quarantine report).

Either way a reader sees the old state or the new one, never half a file, and a crash leaves at most a hidden
temp file ``.<name>.<random>.part`` (see :data:`TEMP_GLOB`) that nothing lists as data.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TEMP_SUFFIX = ".part"
TEMP_GLOB = f"*{TEMP_SUFFIX}"  # what a killed writer may leave behind in a folder


@contextlib.contextmanager
def temp_file(folder: Path, name: str) -> Iterator[tuple[Path, IO[bytes]]]:
    """An open, empty temp file ``folder/.<name>.<random>.part``, removed on exit whatever happens.

    Publish it from inside the block; the published copy lives on under its final name (a hard link).
    """
    folder.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=TEMP_SUFFIX, dir=folder)
    path = Path(temp_name)
    try:
        with os.fdopen(descriptor, "w+b") as handle:
            yield path, handle
    finally:
        path.unlink(missing_ok=True)


def publish(temp: Path, final: Path) -> bool:
    """Give ``temp`` the name ``final`` without ever replacing a file: True when published, False when
    ``final`` already existed (it is left exactly as it was; the caller decides what that means).

    The temp file's data is fsynced first and the folder after, so a published name survives a power cut
    with its content.
    """
    fsync_file(temp)
    try:
        os.link(temp, final)
    except FileExistsError:
        return False
    fsync_dir(final.parent)
    return True


def write_once(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically unless ``path`` exists; True when written (see :func:`publish`)."""
    with temp_file(path.parent, path.name) as (temp, handle):
        handle.write(data)
        handle.flush()
        return publish(temp, path)


def write_replacing(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, replacing what was there: for pointers and reports only."""
    with temp_file(path.parent, path.name) as (temp, handle):
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        os.replace(temp, path)
    fsync_dir(path.parent)


def remove_stale_temp_files(folder: Path) -> int:
    """Delete the temp files a killed writer left in ``folder``; only safe while no writer is running there
    (the data gate holds its lock). Returns how many were removed."""
    stale = sorted(folder.glob(TEMP_GLOB)) if folder.is_dir() else []
    for path in stale:
        path.unlink()
    return len(stale)


def fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
