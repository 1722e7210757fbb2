"""What makes an import resumable: the progress file and the rejects table, committed range by range, the
lock that keeps a second importer of the same name out, and what a killed run leaves (its temp files, the
objids of the shards it published).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from astrospect.atomic import write_replacing
from astrospect.importers.errors import ImporterError

PROGRESS_FORMAT = 1
REJECT_FIELDS = ("row", "objid", "reason")


@dataclass
class ImportProgress:
    """The progress file ``<name>.import.json`` and the rejects table ``<name>.rejects.csv``."""

    path: Path
    rejects_path: Path
    header: dict[str, object]
    next_row: int = 0
    accepted: int = 0
    shards: list[str] = field(default_factory=list)
    rejects: list[tuple[int, int, str]] = field(default_factory=list)

    @classmethod
    def load_or_start(cls, out_dir: Path, name: str, *, identity: Mapping[str, object]) -> ImportProgress:
        """The import ``name``'s state in ``out_dir``, new or as a killed run left it. ``identity`` (the
        source, its layout and size, the shard size, the reader's options) must match the stored one."""
        header: dict[str, object] = {"format": PROGRESS_FORMAT, **identity}
        state = cls(out_dir / f"{name}.import.json", out_dir / f"{name}.rejects.csv", header)
        if not state.path.exists():
            return state
        held = json.loads(state.path.read_text())
        stored_header = {key: held.get(key) for key in header}
        if stored_header != json.loads(json.dumps(header)):
            changed = sorted(
                key for key in header if stored_header[key] != json.loads(json.dumps(header[key]))
            )
            raise ImporterError(
                f"{state.path}: field '{changed[0]}': this import was started with "
                f"{stored_header[changed[0]]!r}, now {header[changed[0]]!r}; resume with the same source "
                "and options, or import under another --name"
            )
        state.next_row, state.accepted, state.shards = held["next_row"], held["accepted"], held["shards"]
        if state.rejects_path.exists():
            with state.rejects_path.open(newline="") as handle:
                # Rows past the progress file's point belong to a range that was not committed: read again.
                state.rejects = [
                    (int(r["row"]), int(r["objid"]), r["reason"])
                    for r in csv.DictReader(handle)
                    if int(r["row"]) < state.next_row
                ]
        return state

    def record(self, next_row: int, accepted: int, rejects: list[tuple[int, int, str]]) -> None:
        """Commit a finished range: rejects first, then the progress file that points past them."""
        self.next_row = next_row
        self.accepted += accepted
        if rejects or not self.rejects_path.exists():
            self.rejects.extend(rejects)
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(REJECT_FIELDS)
            writer.writerows(self.rejects)
            write_replacing(self.rejects_path, text.getvalue().encode())
        body = {
            **self.header,
            "next_row": self.next_row,
            "accepted": self.accepted,
            "rejected": len(self.rejects),
            "shards": self.shards,
        }
        write_replacing(self.path, (json.dumps(body, indent=1) + "\n").encode())


def objids_of(out_dir: Path, shards: list[str]) -> set[int]:
    """The galaxies already imported (a resume must not take any of them again)."""
    seen: set[int] = set()
    for name in shards:
        with h5py.File(out_dir / name, "r") as shard:
            seen.update(int(objid) for objid in shard["objid"][()])
    return seen


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """One importer per name and folder at a time (a second would write the same ranges)."""
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ImporterError(f"{lock_path}: another import of this name is running here") from None
        yield


def remove_own_temp_files(out_dir: Path, name: str) -> None:
    """A killed writer leaves its hidden temp file; only this import's names are touched (others may be
    writing into the same landing folder)."""
    for stale in out_dir.glob(f".{name}-r*.part"):
        stale.unlink()
