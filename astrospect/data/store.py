"""The shard store: the copy of every shard and snapshot manifest that any worker, on any machine, can read.

``ASTROSPECT_STORE=s3://bucket/prefix/`` turns it on (the scaled-out topology); unset, the embedded default
keeps everything in ``ASTROSPECT_HOME`` and nothing here is used. The layout under the prefix:

- ``raw/<stem>.<sha256[:12]>.h5``: every ingested shard, written once at ingest and never replaced or deleted.
  Names carry the content hash, so a key always means the same bytes. A shard's status (accepted,
  quarantined, released) lives in the ledger and in the manifests, not in its key: S3 has no atomic
  rename, and a copy-then-delete "move" could lose a shard between its two calls.
- ``quarantine/<shard>.report.html`` and ``.result.json``: the gate's readable reports.
- ``snapshots/<version>.json`` (written once) and ``snapshots/LATEST``: the dataset versions training reads.

Shards are written with a conditional PUT (``If-None-Match: *``), so two writers can never replace each
other's object; a worker reads a shard through :func:`local_copies`, which downloads it once into its own
cache and checks its sha256 before anything trains on it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from astrospect.atomic import publish, temp_file
from astrospect.faults import EnvironmentFault, guard
from astrospect.settings import Settings, get_logger

log = get_logger(__name__)

HASH_BLOCK = 1024 * 1024  # bytes read per step when hashing
SHA256_METADATA = "sha256"  # object metadata key holding the content hash
# What S3 (and MinIO, moto) answer when an If-None-Match: * write finds the key taken.
ALREADY_EXISTS = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", uri)
    if match is None:
        raise ValueError(f"{uri}: expected s3://bucket/prefix/")
    return match.group(1), match.group(2)


def s3_client(settings: Settings | None = None) -> Any:
    """A boto3 S3 client from the standard AWS environment (``AWS_ENDPOINT_URL`` for MinIO, moto or any
    S3-compatible store, which on a plain host:port needs path-style addressing), with the retries and
    timeouts of ``settings`` (``ASTROSPECT_S3_RETRY_MODE``, ``_MAX_ATTEMPTS``, ``_CONNECT_TIMEOUT_S``,
    ``_READ_TIMEOUT_S``): botocore retries throttling, 5xx and connection errors itself, with back-off; what
    still fails after that is an environment fault of the step (:mod:`astrospect.faults`).

    Each call reads the environment and credentials afresh (a new session); only botocore's parsed service
    models are shared, which is most of the cost of a new client (about 0.1 s of JSON each time otherwise).
    """
    import boto3
    import botocore.session
    from botocore.config import Config

    if settings is None:
        from astrospect.settings import load_settings

        settings = load_settings()
    custom_endpoint = settings.s3_endpoint_url is not None
    config = Config(
        retries={"mode": settings.s3_retry_mode, "total_max_attempts": settings.s3_max_attempts},
        connect_timeout=settings.s3_connect_timeout_s,
        read_timeout=settings.s3_read_timeout_s,
        s3={"addressing_style": "path"} if custom_endpoint else None,
    )
    session = botocore.session.get_session()
    session.register_component("data_loader", _service_models())
    return boto3.session.Session(botocore_session=session).client("s3", config=config)


@functools.cache
def _service_models() -> Any:
    import botocore.loaders

    return botocore.loaders.create_loader()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class S3Store:
    """The store under ``s3://bucket/prefix/``."""

    def __init__(self, uri: str, client: Any | None = None, settings: Settings | None = None) -> None:
        self.bucket, prefix = split_s3_uri(uri)
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.client = client if client is not None else s3_client(settings)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def put_shard(self, path: Path, area: str, sha256: str) -> str:
        """Upload a shard to ``<area>/<name>`` unless that object already holds these bytes; never replaces.

        Returns the object's URI. An object of the same name with other content (which content-hashed
        names make a sign of tampering or a bug) raises :class:`FileExistsError` naming both hashes.
        """
        key = f"{area}/{path.name}"
        held = self._held_sha256(key)
        if held is None:
            from botocore.exceptions import ClientError

            with open(path, "rb") as body:
                try:
                    # A single streamed PUT: S3 allows 5 GB, and only PutObject takes If-None-Match.
                    self.client.put_object(
                        Bucket=self.bucket,
                        Key=self.prefix + key,
                        Body=body,
                        IfNoneMatch="*",
                        Metadata={SHA256_METADATA: sha256},
                    )
                    log.info("store: %s -> %s", path.name, self.uri(key))
                    return self.uri(key)
                except ClientError as error:
                    if error.response["Error"]["Code"] not in ALREADY_EXISTS:
                        raise
            held = self._held_sha256(key)  # another writer got there first: check what it wrote
        if held != sha256:
            raise FileExistsError(
                f"{self.uri(key)}: already holds sha256 {held}, not {sha256}; refusing to overwrite"
            )
        return self.uri(key)

    def put_text(self, key: str, text: str, *, once: bool) -> str:
        """Write a small text object; ``once`` makes it create-only (an existing object is left as it is)."""
        from botocore.exceptions import ClientError

        extra = {"IfNoneMatch": "*"} if once else {}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=text.encode(), **extra)
        except ClientError as error:
            if not once or error.response["Error"]["Code"] not in ALREADY_EXISTS:
                raise
        return self.uri(key)

    def get_text(self, key: str) -> str:
        return str(self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read().decode())

    def _held_sha256(self, key: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as error:
            if error.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return str(head.get("Metadata", {}).get(SHA256_METADATA, "<no sha256 metadata>"))


def open_store(settings: Settings) -> S3Store | None:
    """The shard store when ``ASTROSPECT_STORE`` names one, else None (everything stays in the home folder)."""
    return S3Store(settings.store_uri, settings=settings) if settings.store_uri else None


def _download(client: Any, bucket: str, key: str, handle: Any, shard: str) -> None:
    """One object into ``handle``; the store's failures name the object (the cache's name the cache)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from s3transfer.exceptions import RetriesExceededError

    try:
        client.download_fileobj(bucket, key, handle)
    except (BotoCoreError, ClientError, RetriesExceededError) as error:
        raise EnvironmentFault(f"the shard store's object {shard}", error) from error


def local_copies(shards: Sequence[str], sha256s: Sequence[str], settings: Settings) -> list[Path]:
    """Local paths for a snapshot's shards: folder paths as they are; ``s3://`` ones downloaded once into
    ``ASTROSPECT_HOME/cache/`` and checked against the manifest's sha256 before they are used.

    A full cache disk or the store failing after boto3's retries raises an
    :class:`~astrospect.faults.EnvironmentFault` naming the cache or the object; no partial file is left,
    so the retried task downloads it again."""
    if len(shards) != len(sha256s):
        raise ValueError(f"{len(shards)} shard(s) but {len(sha256s)} sha256(s) in the snapshot")
    if not any(str(shard).startswith("s3://") for shard in shards):
        return [Path(shard) for shard in shards]
    client = s3_client(settings)
    cache = settings.cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    started, fetched_bytes, paths = time.perf_counter(), 0, []
    for index, (shard, sha256) in enumerate(zip(shards, sha256s, strict=True), start=1):
        if not shard.startswith("s3://"):
            paths.append(Path(shard))
            continue
        bucket, key = split_s3_uri(shard)
        # The cache is keyed by content hash: a cached file is the right bytes by construction, because it is
        # only ever renamed into place after its hash was checked.
        target = cache / f"{sha256}{Path(key).suffix}"
        if not target.is_file():
            with (
                guard(f"the shard cache {cache} (fetching {shard})"),
                temp_file(cache, target.name) as (
                    temp,
                    handle,
                ),
            ):
                _download(client, bucket, key, handle, shard)
                handle.flush()
                got = sha256_file(temp)
                if got != sha256:
                    raise ValueError(f"{shard}: sha256 {got} but the snapshot says {sha256}; not used")
                publish(temp, target)  # False only if another task cached the same verified bytes first
            fetched_bytes += target.stat().st_size
            log.info(
                "store: fetched %s (%d/%d, %.1f MB/s)",
                shard,
                index,
                len(shards),
                fetched_bytes / 1e6 / max(time.perf_counter() - started, 1e-9),
            )
        paths.append(target)
    log.info("store: %d shard(s) ready in %s (%.1f MB fetched)", len(paths), cache, fetched_bytes / 1e6)
    return paths
