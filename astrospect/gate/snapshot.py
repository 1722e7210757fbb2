"""Snapshot: the dataset version training reads, so every model traces to exactly the shards it saw.

A version is the sha256 of the sorted sha256s of the accepted shards (accepted or released in the ledger):
the same accepted set always gives the same version, whatever the order or time it was built in. The
manifest ``snapshots/<version>.json`` lists each shard's path (relative to ``ASTROSPECT_HOME``), sha256,
size and rows; ``snapshots/LATEST`` names the newest. Creating a snapshot when nothing new was accepted
returns the existing manifest unchanged.

With a shard store (``ASTROSPECT_STORE``) each shard entry also has its ``uri`` there, the manifest and
``LATEST`` are written there too, and the snapshot lists those URIs: a worker on another machine trains
from them through :func:`astrospect.data.store.local_copies`, with no shared folder.

A full disk, a lost file of the accepted store or a failing shard store stops it with an
:class:`~astrospect.faults.EnvironmentFault` naming the resource; the manifest is written once and ``LATEST``
moves last, so the retry writes the same version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from astrospect.atomic import write_once, write_replacing
from astrospect.data.store import S3Store, open_store
from astrospect.faults import guard
from astrospect.gate.ledger import ACCEPTED, RELEASED, Ledger, ShardRecord
from astrospect.settings import Settings, get_logger

log = get_logger(__name__)

LATEST = "LATEST"


@dataclass
class Snapshot:
    version: str
    manifest_path: str
    shards: list[str]  # the store's s3:// URIs when there is one, else absolute paths; in manifest order
    sha256: list[str]
    rows: list[int]
    n_rows: int
    created_at: str
    new: bool = False  # True when this call wrote the manifest

    @property
    def shard_paths(self) -> list[Path]:
        return [Path(path) for path in self.shards]

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "manifest": self.manifest_path,
            "shards": self.shards,
            "sha256": self.sha256,
            "n_shards": len(self.shards),
            "n_rows": self.n_rows,
            "new": self.new,
        }


def dataset_version(sha256s: list[str]) -> str:
    """The content hash of a set of shards: order-independent, changes when any shard does."""
    return hashlib.sha256("\n".join(sorted(sha256s)).encode()).hexdigest()


def create_snapshot(settings: Settings) -> Snapshot:
    """Write the manifest of the accepted shards (or return the existing one for the same set)."""
    with guard(f"snapshot in {settings.home} (ledger {settings.ledger_path})"):  # what no inner guard named
        return _create_snapshot(settings)


def _create_snapshot(settings: Settings) -> Snapshot:
    with Ledger(settings.ledger_path) as ledger:
        records = sorted(ledger.with_status(ACCEPTED, RELEASED), key=lambda record: record.name)
    version = dataset_version([record.sha256 for record in records])
    manifest_path = settings.snapshots_dir / f"{version}.json"
    store = open_store(settings)
    new = not manifest_path.is_file()
    if new:
        manifest = _manifest(settings, version, records, store)
        with guard(f"the snapshots folder {settings.snapshots_dir} (writing {manifest_path.name})"):
            _write_json_once(manifest_path, manifest)
        log.info(
            "snapshot %s: %d shard(s), %d cutouts -> %s",
            version[:12],
            manifest["n_shards"],
            manifest["n_rows"],
            manifest_path,
        )
    else:
        log.info("snapshot %s already exists (%d shards): unchanged", version[:12], len(records))
    if store is not None:  # create-only; after a run killed before this upload, the next one finishes it
        with guard(f"the shard store {store.uri('snapshots/')}"):
            store.put_text(f"snapshots/{manifest_path.name}", manifest_path.read_text(), once=True)
    _point_latest(settings, version, store)  # after the manifest: LATEST never names a missing one
    snapshot = load_manifest(manifest_path)
    snapshot.new = new
    return snapshot


def _manifest(
    settings: Settings, version: str, records: list[ShardRecord], store: S3Store | None
) -> dict[str, Any]:
    shards = []
    for record in records:
        path = settings.accepted_dir / record.name
        with guard(f"the accepted store {settings.accepted_dir}"):  # names the path if the store lost it
            size = path.stat().st_size
        if size != record.size:
            raise ValueError(
                f"{path}: {size} bytes on disk but {record.size} in the ledger: modified after ingest?"
            )
        if record.rows is None:
            raise ValueError(f"{path}: accepted without a row count in the ledger")
        entry: dict[str, Any] = {
            "name": record.name,
            "path": str(path.relative_to(settings.home)),
            "sha256": record.sha256,
            "size": record.size,
            "rows": record.rows,
            "source": record.source,
        }
        # Normally already in the store since ingest; a shard ingested before the store existed goes now.
        if store is not None:
            with guard(f"the shard store {store.uri('raw/')} (writing {record.name})"):
                entry["uri"] = store.put_shard(path, "raw", record.sha256)
        shards.append(entry)
    return {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_shards": len(shards),
        "n_rows": sum(int(record.rows or 0) for record in records),
        "shards": shards,
    }


def load_manifest(path_or_version: str | Path, settings: Settings | None = None) -> Snapshot:
    """A snapshot from its manifest path, its version (or a unique prefix of it), or ``"latest"``."""
    path = _resolve(path_or_version, settings)
    manifest = json.loads(path.read_text())
    home = path.resolve().parent.parent  # snapshots/ lives directly under ASTROSPECT_HOME
    shards = manifest["shards"]
    return Snapshot(
        version=manifest["version"],
        manifest_path=str(path),
        shards=[shard.get("uri") or str(home / shard["path"]) for shard in shards],
        sha256=[shard["sha256"] for shard in shards],
        rows=[int(shard["rows"]) for shard in shards],
        n_rows=int(manifest["n_rows"]),
        created_at=manifest["created_at"],
    )


def _resolve(path_or_version: str | Path, settings: Settings | None) -> Path:
    candidate = Path(path_or_version)
    if candidate.suffix == ".json" and candidate.is_file():
        return candidate
    if settings is None:
        from astrospect.settings import load_settings

        settings = load_settings()
    folder = settings.snapshots_dir
    version = str(path_or_version)
    if version == "latest":
        latest = folder / LATEST
        if not latest.is_file():
            raise FileNotFoundError(f"{latest}: no snapshot yet (run `astrospect snapshot`)")
        version = latest.read_text().strip()
    matches = sorted(folder.glob(f"{version}*.json"))
    if len(matches) != 1:
        found = "no" if not matches else f"{len(matches)}"
        raise FileNotFoundError(f"{path_or_version}: {found} snapshot manifest(s) match in {folder}")
    return matches[0]


def _write_json_once(path: Path, payload: dict[str, Any]) -> None:
    """Write a manifest atomically; an existing manifest is never replaced (its version names its content).
    One written by a concurrent call for the same accepted set lists the same shards: the first is kept."""
    write_once(path, (json.dumps(payload, indent=2) + "\n").encode())


def _point_latest(settings: Settings, version: str, store: S3Store | None) -> None:
    with guard(f"the snapshots folder {settings.snapshots_dir} (moving {LATEST})"):
        write_replacing(
            settings.snapshots_dir / LATEST, (version + "\n").encode()
        )  # a pointer: meant to move
    if store is not None:
        with guard(f"the shard store {store.uri('snapshots/')} (moving {LATEST})"):
            store.put_text(f"snapshots/{LATEST}", version + "\n", once=False)
