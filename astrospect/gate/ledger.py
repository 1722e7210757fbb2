"""The data gate's ledger (SQLite): every shard ever ingested, where it came from, and what became of it.

One row per distinct content (sha256) in ``shards``; ``sightings`` remembers each (source, fingerprint) seen
so a re-run skips unchanged objects without reading them again; ``events`` is the append-only history
(ingested, accepted, quarantined, released with the person's reason); ``landing_entries`` records each
landing entry ingest did not copy and why (skipped: not a regular file; quarantined: the copy failed), once
per distinct reason; ``accepted_cutouts`` holds the objid
and per-band magnitudes of every accepted cutout: the cross-shard objid check and the flux reference both
read it, so validation never re-opens accepted shards.

Only data verdicts are verdicts (:mod:`astrospect.faults`). Earlier versions also recorded environment faults
(a full disk, an S3 error, an exception in the gate's own process) as quarantines; those entries are kept, as
everything is, but never shown as verdicts (:meth:`Ledger.verdicts`, :meth:`Ledger.landing_entries`), and such
a shard is pending again (:meth:`Ledger.reopen_environment_quarantines`, called by validate).

Nothing is ever deleted from the ledger. :func:`gate_lock` serializes the processes that move shards.
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from astrospect.faults import is_environment_reason
from astrospect.settings import BANDS, Settings, get_logger

log = get_logger(__name__)

RAW, ACCEPTED, QUARANTINED, RELEASED = "raw", "accepted", "quarantined", "released"
STATUSES = (RAW, ACCEPTED, QUARANTINED, RELEASED)
SKIPPED = "skipped"  # a landing entry that is not a file ingest copies (a directory, a symbolic link, ...)
LANDING_VERDICTS = (SKIPPED, QUARANTINED)  # QUARANTINED here: an object that could not be copied
MAG_COLUMNS = tuple(f"mag_{band}" for band in BANDS)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS shards (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,          -- file name in the stores: <stem>.<sha256[:12]>.h5
    source TEXT NOT NULL,               -- where it was first seen: s3://bucket/key or an absolute path
    size INTEGER NOT NULL,              -- bytes
    rows INTEGER,                       -- cutouts; NULL until validation has read the header
    ingested_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    reason TEXT,                        -- why quarantined, or the person's reason for a release
    report TEXT,                        -- the quarantine report (HTML)
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sightings (
    source TEXT NOT NULL,
    fingerprint TEXT NOT NULL,          -- size and ETag (S3) or size, mtime and inode (folder)
    sha256 TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (source, fingerprint)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256 TEXT NOT NULL,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS accepted_cutouts (
    objid INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    {", ".join(f"{column} REAL NOT NULL" for column in MAG_COLUMNS)}
);
CREATE INDEX IF NOT EXISTS accepted_cutouts_objid ON accepted_cutouts (objid);
CREATE TABLE IF NOT EXISTS landing_entries (
    source TEXT NOT NULL,               -- s3://bucket/key or an absolute path
    fingerprint TEXT NOT NULL,          -- as listed; '' for an entry that is not a file
    verdict TEXT NOT NULL CHECK (verdict IN ({", ".join(repr(s) for s in LANDING_VERDICTS)})),
    reason TEXT NOT NULL,               -- names the entry's kind, or the exception's class and message
    first_seen TEXT NOT NULL,
    PRIMARY KEY (source, fingerprint, verdict, reason)
);
"""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ShardRecord:
    sha256: str
    name: str
    source: str
    size: int
    rows: int | None
    ingested_at: str
    status: str
    reason: str | None
    report: str | None
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    """The ledger database. Use as a context manager; each method commits its own transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=60.0)
        self._db.row_factory = sqlite3.Row
        # WAL: `quarantine list` and snapshot readers never wait for a long validation.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    # -- ingest ---------------------------------------------------------------------------------------------
    def sighting(self, source: str, fingerprint: str) -> str | None:
        """The sha256 last seen for this exact source object, or None if it is new or changed."""
        row = self._db.execute(
            "SELECT sha256 FROM sightings WHERE source = ? AND fingerprint = ?", (source, fingerprint)
        ).fetchone()
        return None if row is None else str(row["sha256"])

    def record_sighting(self, source: str, fingerprint: str, sha256: str) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO sightings (source, fingerprint, sha256, seen_at) VALUES (?, ?, ?, ?)",
                (source, fingerprint, sha256, now()),
            )

    def add_shard(
        self, *, sha256: str, name: str, source: str, fingerprint: str, size: int, rows: int | None
    ) -> None:
        """Record a newly ingested shard (status ``raw``) and its sighting in one transaction."""
        stamp = now()
        with self._db:
            self._db.execute(
                "INSERT INTO shards (sha256, name, source, size, rows, ingested_at, status, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (sha256, name, source, size, rows, stamp, RAW, stamp),
            )
            self._db.execute(
                "INSERT OR IGNORE INTO sightings (source, fingerprint, sha256, seen_at) VALUES (?, ?, ?, ?)",
                (source, fingerprint, sha256, stamp),
            )
            counted = "" if rows is None else f", {rows} rows"
            self._event(sha256, "ingested", f"from {source} ({size} bytes{counted})")

    def record_landing_entry(self, source: str, fingerprint: str, verdict: str, reason: str) -> bool:
        """Record why a landing entry was not ingested; True when this is new (the same entry, verdict and
        reason are recorded once, so a re-run over an unchanged landing zone changes nothing)."""
        with self._db:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO landing_entries (source, fingerprint, verdict, reason, first_seen)"
                " VALUES (?, ?, ?, ?, ?)",
                (source, fingerprint, verdict, reason, now()),
            )
        return cursor.rowcount == 1

    def landing_entries(self, *, include_environment: bool = False) -> list[dict[str, Any]]:
        """The landing entries not ingested and why; without those an earlier version recorded as quarantined
        for an environment fault (unless ``include_environment``): ingest copies those objects again."""
        rows = [
            dict(row) for row in self._db.execute("SELECT * FROM landing_entries ORDER BY first_seen, rowid")
        ]
        if include_environment:
            return rows
        return [
            row
            for row in rows
            if not (row["verdict"] == QUARANTINED and is_environment_reason(row["reason"]))
        ]

    # -- queries --------------------------------------------------------------------------------------------
    def get(self, sha256: str) -> ShardRecord | None:
        row = self._db.execute("SELECT * FROM shards WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else ShardRecord(**dict(row))

    def find(self, name_or_sha: str) -> ShardRecord:
        """A shard by its store name, its original file name, or a sha256 prefix (at least 8 hex digits)."""
        rows = self._db.execute(
            "SELECT * FROM shards WHERE name = ? OR (length(?) >= 8 AND sha256 LIKE ? || '%')",
            (name_or_sha, name_or_sha, name_or_sha.lower()),
        ).fetchall()
        if not rows:
            rows = self._db.execute(
                "SELECT * FROM shards WHERE source LIKE '%/' || ? ORDER BY ingested_at", (name_or_sha,)
            ).fetchall()
        if not rows:
            raise KeyError(f"{name_or_sha}: no such shard in the ledger {self.path}")
        if len(rows) > 1:
            names = ", ".join(row["name"] for row in rows)
            raise KeyError(f"{name_or_sha}: ambiguous, matches {names}; give the store name or the sha256")
        return ShardRecord(**dict(rows[0]))

    def with_status(self, *statuses: str) -> list[ShardRecord]:
        """Shards in any of ``statuses``, in ingest order (the order validation sees them)."""
        marks = ", ".join("?" for _ in statuses)
        rows = self._db.execute(
            f"SELECT * FROM shards WHERE status IN ({marks}) ORDER BY ingested_at, rowid", statuses
        ).fetchall()
        return [ShardRecord(**dict(row)) for row in rows]

    def verdicts(self, *statuses: str) -> list[ShardRecord]:
        """As :meth:`with_status`, without quarantines an earlier version recorded for an environment fault."""
        return [
            record
            for record in self.with_status(*statuses)
            if not (record.status == QUARANTINED and is_environment_reason(record.reason))
        ]

    def events(self, sha256: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT at, event, detail FROM events WHERE sha256 = ? ORDER BY id", (sha256,)
        )
        return [dict(row) for row in rows]

    def accepted_owner(self, objids: npt.NDArray[np.int64]) -> dict[int, str]:
        """For each of ``objids`` already accepted: the name of the shard that holds it."""
        with self._db:
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS probe (objid INTEGER PRIMARY KEY)")
            self._db.execute("DELETE FROM probe")
            self._db.executemany("INSERT OR IGNORE INTO probe VALUES (?)", ((int(o),) for o in objids))
            rows = self._db.execute(
                "SELECT a.objid, s.name FROM probe p JOIN accepted_cutouts a ON a.objid = p.objid"
                " JOIN shards s ON s.sha256 = a.sha256"
            ).fetchall()
        return {int(row[0]): str(row[1]) for row in rows}

    def accepted_magnitudes(self) -> npt.NDArray[np.float64]:
        """Per-band magnitudes of every accepted cutout, shape (N, 5): the data the flux reference comes from."""
        rows = self._db.execute(f"SELECT {', '.join(MAG_COLUMNS)} FROM accepted_cutouts").fetchall()
        return np.asarray(rows, dtype=np.float64).reshape(-1, len(MAG_COLUMNS))

    # -- verdicts -------------------------------------------------------------------------------------------
    def mark_accepted(
        self,
        sha256: str,
        rows: int,
        objids: npt.NDArray[np.int64],
        mags: npt.NDArray[np.float64],
        detail: str,
    ) -> None:
        self._admit(sha256, ACCEPTED, rows, objids, mags, reason=None, detail=detail)

    def mark_released(
        self,
        sha256: str,
        rows: int,
        objids: npt.NDArray[np.int64],
        mags: npt.NDArray[np.float64],
        reason: str,
    ) -> None:
        self._admit(
            sha256, RELEASED, rows, objids, mags, reason=reason, detail=f"released by a person: {reason}"
        )

    def mark_quarantined(self, sha256: str, rows: int | None, reason: str, report: str) -> None:
        with self._db:
            self._db.execute(
                "UPDATE shards SET status = ?, rows = COALESCE(?, rows), reason = ?, report = ?, updated_at = ?"
                " WHERE sha256 = ?",
                (QUARANTINED, rows, reason, report, now(), sha256),
            )
            self._event(sha256, "quarantined", reason)

    def reopen_environment_quarantines(self) -> list[str]:
        """Make pending again (``raw``) every shard an earlier version quarantined for an environment fault,
        with an event that says why; returns their names. Its file stays where it is (validate finds it)."""
        reopened = [
            record for record in self.with_status(QUARANTINED) if is_environment_reason(record.reason)
        ]
        with self._db:
            for record in reopened:
                self._db.execute(
                    "UPDATE shards SET status = ?, reason = NULL, report = NULL, updated_at = ? WHERE sha256 = ?",
                    (RAW, now(), record.sha256),
                )
                self._event(
                    record.sha256,
                    "reopened",
                    f"the quarantine recorded was an environment fault, not a verdict ({record.reason})",
                )
        return [record.name for record in reopened]

    def _admit(
        self,
        sha256: str,
        status: str,
        rows: int,
        objids: npt.NDArray[np.int64],
        mags: npt.NDArray[np.float64],
        *,
        reason: str | None,
        detail: str,
    ) -> None:
        if mags.shape != (len(objids), len(MAG_COLUMNS)):
            raise ValueError(f"magnitudes of shape {mags.shape} do not match {len(objids)} objids x 5 bands")
        marks = ", ".join("?" for _ in range(2 + len(MAG_COLUMNS)))
        with self._db:  # the status and the cutouts change together or not at all
            self._db.execute(
                "UPDATE shards SET status = ?, rows = ?, reason = ?, updated_at = ? WHERE sha256 = ?",
                (status, rows, reason, now(), sha256),
            )
            self._db.executemany(
                f"INSERT INTO accepted_cutouts (objid, sha256, {', '.join(MAG_COLUMNS)}) VALUES ({marks})",
                ((int(o), sha256, *map(float, m)) for o, m in zip(objids, mags, strict=True)),
            )
            self._event(sha256, status, detail)

    def _event(self, sha256: str, event: str, detail: str | None) -> None:
        self._db.execute(
            "INSERT INTO events (sha256, at, event, detail) VALUES (?, ?, ?, ?)",
            (sha256, now(), event, detail),
        )


@contextlib.contextmanager
def gate_lock(settings: Settings) -> Iterator[None]:
    """One ingest/validate/release at a time per ASTROSPECT_HOME (an OS lock: released if the process dies)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    with open(settings.home / ".gate.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another ingest/validate on %s to finish", settings.home)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
