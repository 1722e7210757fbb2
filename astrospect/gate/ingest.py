"""Ingest: copy new shards from the landing zone (``s3://bucket/prefix/`` or a folder) into the raw store.

New means new content (sha256), not a new name: a re-run, or the same bytes under another name, copies
nothing. The source is only ever read. Ingest moves bytes and never parses them: judging a file's content is
validation's job (:mod:`astrospect.gate.validate`, which reads every file in a sandboxed child process), so no
file's content can make ingest fail. Each object streams into a temp file under ``raw/.incoming`` (S3:
boto3's transfer manager, multipart ranged GETs, never the whole object in memory) and is hashed on the way
in; it is then fsynced and published under ``raw/<stem>.<sha256[:12]>.h5`` with a hard link, which fails
rather than overwrite (:mod:`astrospect.atomic`). A killed ingest leaves at most a temp file, removed by the
next run; the ledger row is written after the file is in place, and a file found in place without its row
(an interrupted run) is kept only if its bytes hash to the same sha256 as the fresh copy, then recorded and
validated like any other. One object's fsync, publishing and ledger row overlap the next one's download (a
single publisher thread with its own ledger connection; an object's content is looked up in the ledger only
after the one before it is recorded, so the rows keep the listing's order). With a shard store (``ASTROSPECT_STORE``, see :mod:`astrospect.data.store`) each new
shard is also written to its ``raw/`` there before the ledger row, so workers on other machines can read it.

Whatever one landing entry does, the run goes on with the others, and the ledger records why:

- a directory, a symbolic link (never followed) or another entry that is not a regular file, named like a
  shard, is **skipped**, with its reason;
- an object that is not what was listed (a :class:`~astrospect.faults.DataFault`: it vanished or changed
  while copying, or the raw store already holds other bytes under its content name) is **quarantined** in
  the ledger with the reason; no bytes are kept, and the next run tries it again.

A fault of the machine is not the object's (:mod:`astrospect.faults`): a full disk, an I/O or permission
error, S3 failing after boto3's retries, a bug. It stops the run with an
:class:`~astrospect.faults.EnvironmentFault` naming the resource; the shards copied before it are recorded,
and the object it hit gets no ledger entry at all, so it is pending for the retry.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from astrospect.atomic import TEMP_SUFFIX, publish, remove_stale_temp_files
from astrospect.data.store import S3Store, open_store, sha256_file
from astrospect.faults import DataFault, EnvironmentFault, describe, guard
from astrospect.gate.landing import SHARD_SUFFIXES, Landing, LandingObject, open_landing
from astrospect.gate.landing import FolderLanding as FolderLanding  # imported from here by tests
from astrospect.gate.ledger import QUARANTINED, SKIPPED, Ledger, gate_lock
from astrospect.settings import Settings, get_logger

log = get_logger(__name__)

INCOMING = ".incoming"  # temp folder inside the raw store; hidden, so list_shards never sees it


@dataclass
class IngestResult:
    source: str
    new: list[str] = field(default_factory=list)  # raw store paths of the shards copied this run
    skipped: int = 0  # objects already held (same source unchanged, or same content under another name)
    skipped_entries: list[dict[str, str]] = field(default_factory=list)  # source, reason: not regular files
    quarantined: list[dict[str, str]] = field(default_factory=list)  # source, reason: not what was listed
    bytes_copied: int = 0
    seconds: float = 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes_copied / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "mb_per_s": round(self.mb_per_s, 2)}


class HashingSink:
    """Writes bytes in order to a file and hashes them on the way: the copy is never read back to hash it.
    A failed write (a full disk) is an environment fault naming ``store``, the folder written to."""

    def __init__(self, handle: IO[bytes], store: Path) -> None:
        self.handle = handle
        self.store = store
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        with guard(f"the raw store {self.store} (writing a copy)"):
            self.handle.write(data)
        self.size += len(data)
        return len(data)

    def seekable(self) -> bool:  # boto3 then writes sequentially instead of at offsets
        return False


def ingest(source: str | Path, settings: Settings) -> IngestResult:
    """Copy every shard of ``source`` whose content the raw store has not seen; a re-run is a no-op."""
    landing = open_landing(source, settings)
    result = IngestResult(source=str(source))
    started = time.perf_counter()
    incoming = settings.raw_dir / INCOMING
    store = open_store(settings)
    # Anything the inner guards did not name yet (the ledger, the lock) is named by this one.
    with (
        guard(f"ingest into {settings.home} (ledger {settings.ledger_path})"),
        gate_lock(settings),
        Ledger(settings.ledger_path) as ledger,
    ):
        removed = remove_stale_temp_files(incoming)  # we hold the gate lock: none is in use
        if removed:
            log.info("ingest: removed %d partial file(s) left by an interrupted run", removed)
        listing = landing.list()
        log.info(
            "ingest: %d shard file(s) in %s, %d other entries skipped",
            len(listing.objects),
            source,
            len(listing.skipped),
        )
        for entry in listing.skipped:
            log.warning("ingest: skipped %s: %s", entry.uri, entry.reason)
            ledger.record_landing_entry(entry.uri, "", SKIPPED, entry.reason)
            result.skipped_entries.append({"source": entry.uri, "reason": entry.reason})
        with Publisher(settings, store) as publisher:
            in_flight: Publishing | None = None
            for obj in listing.objects:
                if ledger.sighting(obj.uri, obj.fingerprint) is not None:
                    result.skipped += 1
                    continue
                try:
                    copy = _download(landing, obj, settings)
                except DataFault as fault:  # the object is not what was listed: its record; the run goes on
                    log.warning("ingest: %s quarantined: %s", obj.uri, fault.reason)
                    _quarantine(ledger, result, obj, fault.reason)
                    continue
                except EnvironmentFault as fault:
                    # The object before it was copied whole: it is recorded; this one gets no entry at all.
                    log.error("ingest: stopped at %s: %s", obj.uri, fault)
                    _record(ledger, result, in_flight, started, len(listing.objects))
                    raise
                # The previous object is recorded before this one's content is looked up in the ledger.
                _record(ledger, result, in_flight, started, len(listing.objects))
                in_flight = _start_publishing(publisher, ledger, copy)
            _record(ledger, result, in_flight, started, len(listing.objects))
    result.seconds = time.perf_counter() - started
    log.info(
        "ingest: %d new, %d already held, %d skipped, %d quarantined, %.1f MB in %.1f s (%.1f MB/s)",
        len(result.new),
        result.skipped,
        len(result.skipped_entries),
        len(result.quarantined),
        result.bytes_copied / 1e6,
        result.seconds,
        result.mb_per_s,
    )
    return result


@dataclass
class Copy:
    """An object streamed into a temp file of ``raw/.incoming``, hashed, not yet published."""

    obj: LandingObject
    temp: Path
    sha256: str


@dataclass
class Publishing:
    """A copy being fsynced and published by the publisher thread (or already held: ``future`` None)."""

    copy: Copy
    future: Future[Path] | None


def _download(landing: Landing, obj: LandingObject, settings: Settings) -> Copy:
    """Stream one object into a temp file, hashing it on the way; the temp file is removed on any failure."""
    folder = settings.raw_dir / INCOMING
    with guard(f"the raw store {settings.raw_dir} (starting a copy)"):
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(prefix=f".{obj.name}.", suffix=TEMP_SUFFIX, dir=folder)
    temp = Path(name)
    try:
        with (
            guard(f"the raw store {settings.raw_dir} (closing a copy)"),
            os.fdopen(descriptor, "wb") as handle,
        ):
            sink = HashingSink(handle, settings.raw_dir)
            landing.download(obj, sink)
        if sink.size != obj.size:
            raise DataFault(
                obj.uri, f"copied {sink.size} bytes but the listing said {obj.size}: changed while copying?"
            )
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return Copy(obj, temp, sink.digest.hexdigest())


class Publisher:
    """One thread that fsyncs, publishes and records copies, in the order they are handed over, while the main
    thread downloads the next object. It has its own ledger connection (sqlite's are per thread), opened and
    closed on that thread."""

    def __init__(self, settings: Settings, store: S3Store | None) -> None:
        self.settings, self.store = settings, store
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ingest-publish")
        self._ledger: Ledger | None = None

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._executor.submit(self._close).result()
        finally:
            self._executor.shutdown()

    def submit(self, copy: Copy) -> Future[Path]:
        return self._executor.submit(self._publish_and_record, copy)

    def _close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()

    def _publish_and_record(self, copy: Copy) -> Path:
        """Publish under the content name, copy to the shard store, then the ledger row (last: a run killed
        before it redoes this shard next time). The temp file goes either way."""
        final = self.settings.raw_dir / store_name(copy.obj.name, copy.sha256)
        try:
            with guard(f"the raw store {self.settings.raw_dir} (publishing {final.name})"):
                published = publish(copy.temp, final)
                # A run killed after publishing but before its ledger row: keep that file only if it holds
                # exactly the bytes just copied; it is then validated like any other.
                squatted = not published and sha256_file(final) != copy.sha256
            if squatted:
                raise DataFault(
                    copy.obj.uri,
                    f"FileExistsError: {final}: exists with different content; refusing to overwrite",
                )
            if not published:
                log.info(
                    "ingest: %s was already in place from an interrupted run: same sha256, kept", final.name
                )
        finally:
            copy.temp.unlink(missing_ok=True)
        if self.store is not None:
            with guard(f"the shard store {self.store.uri('raw/')} (writing {final.name})"):
                try:
                    self.store.put_shard(final, "raw", copy.sha256)
                except FileExistsError as error:  # other bytes under this content name there
                    raise DataFault(copy.obj.uri, describe(error)) from error
        with guard(f"the ledger {self.settings.ledger_path}"):
            if self._ledger is None:
                self._ledger = Ledger(self.settings.ledger_path)
            self._ledger.add_shard(
                sha256=copy.sha256,
                name=final.name,
                source=copy.obj.uri,
                fingerprint=copy.obj.fingerprint,
                size=copy.obj.size,
                rows=None,
            )
        return final


def _start_publishing(publisher: Publisher, ledger: Ledger, copy: Copy) -> Publishing:
    """Hand a copy to the publisher, unless the ledger already holds its content."""
    held = ledger.get(copy.sha256)
    if held is not None:
        copy.temp.unlink(missing_ok=True)
        log.info(
            "ingest: %s has the same content as %s (sha256 %s): not copied",
            copy.obj.uri,
            held.name,
            copy.sha256[:12],
        )
        ledger.record_sighting(copy.obj.uri, copy.obj.fingerprint, copy.sha256)
        return Publishing(copy, None)
    return Publishing(copy, publisher.submit(copy))


def _record(
    ledger: Ledger, result: IngestResult, publishing: Publishing | None, started: float, listed: int
) -> None:
    """Wait for a copy's publishing and count it (or quarantine it, when publishing failed)."""
    if publishing is None:
        return
    obj = publishing.copy.obj
    if publishing.future is None:
        result.skipped += 1
        return
    try:
        final = publishing.future.result()
    except DataFault as fault:  # as in ingest(); an environment fault stops the run
        log.warning("ingest: %s quarantined: %s", obj.uri, fault.reason)
        _quarantine(ledger, result, obj, fault.reason)
        return
    result.new.append(str(final))
    result.bytes_copied += obj.size
    log.info(
        "ingest: %s -> %s (%d/%d, %.1f MB/s)",
        obj.uri,
        final.name,
        len(result.new),
        listed,
        result.bytes_copied / 1e6 / max(time.perf_counter() - started, 1e-9),
    )


def _quarantine(ledger: Ledger, result: IngestResult, obj: LandingObject, reason: str) -> None:
    ledger.record_landing_entry(obj.uri, obj.fingerprint, QUARANTINED, reason)
    result.quarantined.append({"source": obj.uri, "reason": reason})


def store_name(original: str, sha256: str) -> str:
    """``<stem>.<sha256[:12]><suffix>``: the same name with different content never collides."""
    path = Path(original)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem).lstrip(".") or "shard"
    suffix = path.suffix if path.suffix in SHARD_SUFFIXES else ".h5"
    return f"{stem}.{sha256[:12]}{suffix}"
