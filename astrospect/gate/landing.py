"""The landing zone as ingest sees it: a folder or ``s3://bucket/prefix/``, listed and read, never written.

:func:`open_landing` picks the reader. A listing holds the shard files (:class:`LandingObject`, nothing read
yet) and the entries named like shards that ingest skips, with their reason (:class:`SkippedEntry`).
Reading streams an object's bytes into a sink; an object that vanished or changed since the listing is a
:class:`~astrospect.faults.DataFault`, a failing disk or S3 an :class:`~astrospect.faults.EnvironmentFault`.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from astrospect.data.store import HASH_BLOCK, s3_client, split_s3_uri
from astrospect.faults import DataFault, EnvironmentFault, describe, guard, is_s3_missing
from astrospect.settings import Settings

SHARD_SUFFIXES = (".h5", ".hdf5")


@dataclass(frozen=True)
class LandingObject:
    """One shard file in the landing zone, as listed (nothing read yet)."""

    uri: str  # s3://bucket/key or an absolute path
    name: str  # the file name
    size: int  # bytes
    fingerprint: str  # changes whenever the content may have: size + ETag (S3), size + mtime + inode (folder)


@dataclass(frozen=True)
class SkippedEntry:
    """A landing entry named like a shard that is not a file ingest copies, and why."""

    uri: str
    reason: str


@dataclass
class Listing:
    objects: list[LandingObject] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)


class Sink(Protocol):
    def write(self, data: bytes) -> int: ...


class Landing(Protocol):
    def list(self) -> Listing: ...

    def download(self, obj: LandingObject, sink: Sink) -> None: ...


class FolderLanding:
    """A local landing folder, searched recursively for ``*.h5``/``*.hdf5`` (hidden entries skipped).

    Symbolic links are never followed (a link could lead anywhere on the worker's disk): one named like a
    shard, or leading to a folder, is reported as skipped, as is any other non-regular entry named like a shard.
    """

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: landing folder does not exist")
        self.folder = folder.resolve()

    def list(self) -> Listing:
        listing = Listing()
        self._scan(self.folder, listing)
        listing.objects.sort(key=lambda obj: obj.uri)
        listing.skipped.sort(key=lambda entry: entry.uri)
        return listing

    def _scan(self, folder: Path, listing: Listing) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            listing.skipped.append(SkippedEntry(_display(folder), f"folder not listed: {describe(error)}"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            uri = _display(path)
            shard_like = path.suffix in SHARD_SUFFIXES
            try:
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    if shard_like or path.is_dir():
                        listing.skipped.append(
                            SkippedEntry(uri, f"a symbolic link to {os.readlink(path)}: not followed")
                        )
                    continue
                if stat.S_ISDIR(info.st_mode):
                    if shard_like:
                        listing.skipped.append(
                            SkippedEntry(
                                uri, "a directory named like a shard (its files are listed on their own)"
                            )
                        )
                    self._scan(path, listing)
                    continue
                if not shard_like:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    listing.skipped.append(
                        SkippedEntry(uri, f"not a regular file ({_file_kind(info.st_mode)})")
                    )
                    continue
                if uri != str(path):
                    listing.skipped.append(SkippedEntry(uri, "the file name is not valid UTF-8"))
                    continue
            except OSError as error:  # vanished or unreadable between listing and stat
                listing.skipped.append(SkippedEntry(uri, f"not listed: {describe(error)}"))
                continue
            fingerprint = f"{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"
            listing.objects.append(LandingObject(uri, path.name, info.st_size, fingerprint))

    def download(self, obj: LandingObject, sink: Sink) -> None:
        try:
            # O_NOFOLLOW: the entry was listed as a regular file; if it became a link since, refuse it.
            descriptor = os.open(obj.uri, os.O_RDONLY | os.O_NOFOLLOW)
        except (
            FileNotFoundError,
            NotADirectoryError,
        ) as error:  # its producer took it away since the listing
            raise DataFault(obj.uri, describe(error)) from error
        except OSError as error:
            if error.errno != errno.ELOOP:
                raise EnvironmentFault(f"the landing folder's file {obj.uri}", error) from error
            raise DataFault(
                obj.uri, f"became a symbolic link after the listing: {describe(error)}"
            ) from error
        with guard(f"the landing folder's file {obj.uri}"), os.fdopen(descriptor, "rb") as source:
            shutil.copyfileobj(source, sink, HASH_BLOCK)  # the sink names the raw store for its own faults


class S3Landing:
    """``s3://bucket/prefix/`` through boto3; endpoint, credentials and region come from the standard AWS
    environment and config (``AWS_ENDPOINT_URL`` for MinIO, moto or any S3-compatible store)."""

    def __init__(self, uri: str, settings: Settings) -> None:
        from boto3.s3.transfer import TransferConfig

        self.bucket, self.prefix = split_s3_uri(uri)
        self.client = s3_client(settings)
        self.transfer = TransferConfig(
            multipart_threshold=settings.ingest_chunk_bytes,
            multipart_chunksize=settings.ingest_chunk_bytes,
            max_concurrency=settings.ingest_max_concurrency,
            max_bandwidth=settings.ingest_max_bandwidth,
        )

    def list(self) -> Listing:
        with guard(f"the landing zone s3://{self.bucket}/{self.prefix} (listing it)"):
            return self._list()

    def _list(self) -> Listing:
        listing = Listing()
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                key = str(item["Key"])
                uri = f"s3://{self.bucket}/{key}"
                if key.endswith("/"):  # a "folder" marker some tools write
                    if key.rstrip("/").endswith(SHARD_SUFFIXES):
                        listing.skipped.append(
                            SkippedEntry(uri, "a folder marker named like a shard, not a file")
                        )
                    continue
                name = key.rsplit("/", 1)[-1]
                if not name.endswith(SHARD_SUFFIXES) or name.startswith("."):
                    continue
                size = int(item["Size"])
                listing.objects.append(LandingObject(uri, name, size, f"{size}:{item['ETag']}"))
        listing.objects.sort(key=lambda obj: obj.uri)
        return listing

    def download(self, obj: LandingObject, sink: Sink) -> None:
        key = obj.uri.removeprefix(f"s3://{self.bucket}/")
        from botocore.exceptions import ClientError

        # Ranged GETs of multipart_chunksize; the sink is not seekable, so the transfer manager hands the
        # parts over in order (holding early arrivals in memory: a few parts at most). A part that fails is
        # retried by boto3 (the client's retry settings, then s3transfer's own attempts), never here.
        with guard(f"the landing zone's object {obj.uri} (reading it)"):
            try:
                self.client.download_fileobj(self.bucket, key, sink, Config=self.transfer)
            except ClientError as error:
                if is_s3_missing(error):  # deleted since the listing: that object's record, not the run's end
                    raise DataFault(obj.uri, describe(error)) from error
                raise


def open_landing(source: str | Path, settings: Settings) -> Landing:
    text = str(source)
    if text.startswith("s3://"):
        return S3Landing(text, settings)
    return FolderLanding(Path(text).expanduser())


def _display(path: Path) -> str:
    """A path as text the ledger can store: undecodable bytes of a file name shown as escapes."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return f"mode {oct(mode)}"
