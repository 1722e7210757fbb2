"""Ingest: copy new shards from the landing zone (``s3://bucket/prefix/`` or a folder) into the raw store.

New means new content (sha256), not a new name: a re-run, or the same bytes under another name, copies
nothing. The source is only ever read. Each object streams into a temp file under ``raw/.incoming`` (S3:
boto3's transfer manager, multipart ranged GETs, never the whole object in memory), is hashed, fsynced and
then published under ``raw/<stem>.<sha256[:12]>.h5`` with a hard link, which fails rather than overwrite.
A killed ingest leaves at most a temp file, removed by the next run; the ledger row is written after the
file is in place, and a file found in place without its row is verified and adopted. With a shard store
(``ASTROSPECT_STORE``, see :mod:`astrospect.store`) each new shard is also written to its ``raw/`` there
before the ledger row, so workers on other machines can read it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from astrospect.data.shards import ShardFormatError, inspect_shard
from astrospect.ledger import Ledger, gate_lock
from astrospect.settings import Settings, get_logger
from astrospect.store import HASH_BLOCK, S3Store, open_store, s3_client, sha256_file, split_s3_uri

log = get_logger(__name__)

SHARD_SUFFIXES = (".h5", ".hdf5")
INCOMING = ".incoming"  # temp folder inside the raw store; hidden, so list_shards never sees it


@dataclass(frozen=True)
class LandingObject:
    """One shard file in the landing zone, as listed (nothing read yet)."""

    uri: str  # s3://bucket/key or an absolute path
    name: str  # the file name
    size: int  # bytes
    fingerprint: str  # changes whenever the content may have: size + ETag (S3), size + mtime + inode (folder)


class Landing(Protocol):
    def list(self) -> list[LandingObject]: ...

    def download(self, obj: LandingObject, sink: IO[bytes]) -> None: ...


@dataclass
class IngestResult:
    source: str
    new: list[str] = field(default_factory=list)  # raw store paths of the shards copied this run
    skipped: int = 0  # objects already held (same source unchanged, or same content under another name)
    bytes_copied: int = 0
    seconds: float = 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes_copied / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "mb_per_s": round(self.mb_per_s, 2)}


class FolderLanding:
    """A local landing folder, searched recursively for ``*.h5``/``*.hdf5`` (hidden files skipped)."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: landing folder does not exist")
        self.folder = folder.resolve()

    def list(self) -> list[LandingObject]:
        found = []
        for path in sorted(self.folder.rglob("*")):
            if path.suffix not in SHARD_SUFFIXES or path.name.startswith(".") or not path.is_file():
                continue
            stat = path.stat()
            found.append(
                LandingObject(
                    str(path), path.name, stat.st_size, f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
                )
            )
        return found

    def download(self, obj: LandingObject, sink: IO[bytes]) -> None:
        with open(obj.uri, "rb") as source:
            shutil.copyfileobj(source, sink, HASH_BLOCK)


class S3Landing:
    """``s3://bucket/prefix/`` through boto3; endpoint, credentials and region come from the standard AWS
    environment and config (``AWS_ENDPOINT_URL`` for MinIO, moto or any S3-compatible store)."""

    def __init__(self, uri: str, settings: Settings) -> None:
        from boto3.s3.transfer import TransferConfig

        self.bucket, self.prefix = split_s3_uri(uri)
        self.client = s3_client()
        self.transfer = TransferConfig(
            multipart_threshold=settings.ingest_chunk_bytes,
            multipart_chunksize=settings.ingest_chunk_bytes,
            max_concurrency=settings.ingest_max_concurrency,
            max_bandwidth=settings.ingest_max_bandwidth,
        )

    def list(self) -> list[LandingObject]:
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                key = str(item["Key"])
                name = key.rsplit("/", 1)[-1]
                if not name.endswith(SHARD_SUFFIXES) or name.startswith("."):
                    continue
                size = int(item["Size"])
                found.append(LandingObject(f"s3://{self.bucket}/{key}", name, size, f"{size}:{item['ETag']}"))
        return sorted(found, key=lambda obj: obj.uri)

    def download(self, obj: LandingObject, sink: IO[bytes]) -> None:
        key = obj.uri.removeprefix(f"s3://{self.bucket}/")
        # Ranged GETs of multipart_chunksize, written at their offsets: memory stays at a few chunks.
        self.client.download_fileobj(self.bucket, key, sink, Config=self.transfer)


def open_landing(source: str | Path, settings: Settings) -> Landing:
    text = str(source)
    if text.startswith("s3://"):
        return S3Landing(text, settings)
    return FolderLanding(Path(text).expanduser())


def ingest(source: str | Path, settings: Settings) -> IngestResult:
    """Copy every shard of ``source`` whose content the raw store has not seen; a re-run is a no-op."""
    landing = open_landing(source, settings)
    result = IngestResult(source=str(source))
    started = time.perf_counter()
    incoming = settings.raw_dir / INCOMING
    store = open_store(settings)
    with gate_lock(settings), Ledger(settings.ledger_path) as ledger:
        _remove_stale_temp_files(incoming)
        objects = landing.list()
        log.info("ingest: %d shard file(s) in %s", len(objects), source)
        for obj in objects:
            if ledger.sighting(obj.uri, obj.fingerprint) is not None:
                result.skipped += 1
                continue
            path = _copy_one(landing, obj, ledger, settings, store)
            if path is None:
                result.skipped += 1
                continue
            result.new.append(str(path))
            result.bytes_copied += obj.size
            elapsed = time.perf_counter() - started
            log.info(
                "ingest: %s -> %s (%d/%d, %.1f MB/s)",
                obj.uri,
                path.name,
                len(result.new),
                len(objects),
                result.bytes_copied / 1e6 / max(elapsed, 1e-9),
            )
    result.seconds = time.perf_counter() - started
    log.info(
        "ingest: %d new, %d already held, %.1f MB in %.1f s (%.1f MB/s)",
        len(result.new),
        result.skipped,
        result.bytes_copied / 1e6,
        result.seconds,
        result.mb_per_s,
    )
    return result


def _copy_one(
    landing: Landing, obj: LandingObject, ledger: Ledger, settings: Settings, store: S3Store | None
) -> Path | None:
    """Copy one object into the raw store (and the shard store, when there is one); None when its content
    is already held. The ledger row comes last, so a run killed before it redoes this shard next time."""
    with _temp_file(settings.raw_dir / INCOMING, obj.name) as (temp_path, handle):
        landing.download(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
        size = os.fstat(handle.fileno()).st_size
        if size != obj.size:
            raise OSError(
                f"{obj.uri}: copied {size} bytes but the listing said {obj.size}: changed while copying?"
            )
        sha256 = sha256_file(temp_path)
        held = ledger.get(sha256)
        if held is not None:
            log.info(
                "ingest: %s has the same content as %s (sha256 %s): not copied",
                obj.uri,
                held.name,
                sha256[:12],
            )
            ledger.record_sighting(obj.uri, obj.fingerprint, sha256)
            return None
        final = settings.raw_dir / store_name(obj.name, sha256)
        _publish(temp_path, final, sha256)
    if store is not None:
        store.put_shard(final, "raw", sha256)
    ledger.add_shard(
        sha256=sha256,
        name=final.name,
        source=obj.uri,
        fingerprint=obj.fingerprint,
        size=size,
        rows=_rows(final),
    )
    return final


def store_name(original: str, sha256: str) -> str:
    """``<stem>.<sha256[:12]><suffix>``: the same name with different content never collides."""
    path = Path(original)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem).lstrip(".") or "shard"
    suffix = path.suffix if path.suffix in SHARD_SUFFIXES else ".h5"
    return f"{stem}.{sha256[:12]}{suffix}"


def _publish(temp_path: Path, final: Path, sha256: str) -> None:
    """Give the temp file its final name without ever replacing a file (link fails if the name exists)."""
    try:
        os.link(temp_path, final)
    except FileExistsError:
        # A previous run was killed after publishing but before writing the ledger: adopt its file.
        if sha256_file(final) != sha256:
            raise FileExistsError(f"{final}: exists with different content; refusing to overwrite") from None
        log.info("ingest: %s was already in place from an interrupted run: adopted", final.name)
    _fsync_dir(final.parent)


def _remove_stale_temp_files(incoming: Path) -> None:
    """Temp files left by a killed ingest (we hold the gate lock, so none is in use)."""
    incoming.mkdir(parents=True, exist_ok=True)
    stale = sorted(incoming.glob("*.part"))
    for path in stale:
        path.unlink()
    if stale:
        log.info("ingest: removed %d partial file(s) left by an interrupted run", len(stale))


@contextlib.contextmanager
def _temp_file(folder: Path, name: str) -> Iterator[tuple[Path, IO[bytes]]]:
    """A temp file in ``folder``; gone on exit (a published copy lives on under its final name: a hard link)."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(prefix=f"{name}.", suffix=".part", dir=folder)
    path = Path(temp_name)
    try:
        with os.fdopen(descriptor, "w+b") as handle:
            yield path, handle
    finally:
        path.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _rows(path: Path) -> int | None:
    """Cutouts in the shard from its header; None when the structure is broken (validation says why)."""
    try:
        return inspect_shard(path).n
    except ShardFormatError:
        return None
