"""A fault is not a verdict: the one place that says which failures are the data's and which the machine's.

Two kinds, and what each does (docs/reference/faults.md has the table, fault by step):

- a **data fault** (:class:`DataFault`): the object itself is wrong. Its bytes (format, values, labels,
  identifiers, calibration: the gate's suites and its sandboxed reader find these), or the landing object is
  not the one listed (it vanished or changed while being copied, or the store already holds other bytes under
  its content-hashed name). It is recorded against the object, with its reason, and the run goes on.
- an **environment fault** (:class:`EnvironmentFault`): a resource the step needs failed. A full disk, an I/O
  or permission error, a network error, S3 answering 5xx, throttling or timing out after boto3's own retries
  (``ASTROSPECT_S3_*`` settings), an unreachable tracking server, memory running out, a bug in our code.
  The step fails with a message naming the resource; nothing is recorded against the object, which stays
  pending for Airflow's retry or the next night.

Code that could meet an environment fault wraps the call in :func:`guard`, which turns the specific exception
types of :func:`environment_error_types` into an :class:`EnvironmentFault` naming the resource. A bug (a
``TypeError``, ``KeyError``, ...) is not caught anywhere: it fails the step with its own traceback.

Ledgers written by earlier versions recorded some environment faults as quarantines (reason text such as
``OSError: [Errno 28] No space left on device``); :func:`is_environment_reason` recognises them, so they are
neither shown as verdicts nor kept as ones.
"""

from __future__ import annotations

import contextlib
import errno
import re
import sqlite3
from collections.abc import Iterator

# errno values that say the machine, not the file, failed: space, I/O, permissions, limits, the network.
ENVIRONMENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EIO,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENOMEM,
        errno.EMFILE,
        errno.ENFILE,
        errno.ESTALE,
        errno.ENODEV,
        errno.ENXIO,
        errno.ETIMEDOUT,
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EPIPE,
    }
)
# What S3 answers when the object is not there (any more): the landing object's fault, not the store's.
S3_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# Exception class names an earlier version wrote into the ledger for what was the environment's fault.
_ENVIRONMENT_CLASS_NAMES = frozenset(
    {
        "PermissionError",
        "MemoryError",
        "TimeoutError",
        "ConnectionError",
        "ConnectionResetError",
        "ConnectionRefusedError",
        "ConnectionAbortedError",
        "BrokenPipeError",
        "OperationalError",  # sqlite3: database or disk is full, disk I/O error
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ResponseStreamingError",
        "IncompleteReadError",
        "ProxyConnectionError",
        "NoCredentialsError",
        "RetriesExceededError",
        "TrackingServerError",
        "MlflowException",
    }
)
_REASON = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_.]*): (?P<message>.*)$", re.DOTALL)
_ERRNO = re.compile(r"^\[Errno (?P<number>\d+)\]")
_CLIENT_ERROR_CODE = re.compile(r"An error occurred \((?P<code>[^)]+)\)")
# validate's entry for a shard it could not judge (an exception in the gate's own process): never a verdict.
JUDGING_FAILURE = "judged_by_the_gate"


class DataFault(Exception):  # noqa: N818 - the taxonomy's own word, as in docs/reference/faults.md
    """The object is wrong: recorded against it with ``reason``; the run goes on with the others."""

    def __init__(self, subject: str, reason: str) -> None:
        self.subject = subject
        self.reason = reason
        super().__init__(f"{subject}: {reason}")


class EnvironmentFault(RuntimeError):  # noqa: N818 - as DataFault
    """A resource the step needs failed: the step stops, nothing is recorded against the data."""

    def __init__(self, resource: str, cause: BaseException | str) -> None:
        self.resource = resource
        self.cause = describe(cause) if isinstance(cause, BaseException) else cause
        super().__init__(
            f"{resource}: {self.cause} (an environment fault: nothing was recorded against the data, which "
            "stays pending for the retry)"
        )


def describe(error: BaseException) -> str:
    """``ClassName: message``, the form the ledger has always used."""
    return f"{type(error).__name__}: {error}"


def environment_error_types() -> tuple[type[BaseException], ...]:
    """The exception types that mean a resource failed: the operating system's (disk, permissions, the
    network), memory, SQLite's, and boto3's once its own retries are spent (botocore and s3transfer)."""
    types: list[type[BaseException]] = [OSError, MemoryError, sqlite3.Error]
    try:
        from botocore.exceptions import BotoCoreError, ClientError
        from s3transfer.exceptions import RetriesExceededError
    except ImportError:  # boto3 is a dependency; without it nothing here talks to S3 anyway
        return tuple(types)
    return (*types, BotoCoreError, ClientError, RetriesExceededError)


@contextlib.contextmanager
def guard(resource: str) -> Iterator[None]:
    """Turn an environment error raised inside into an :class:`EnvironmentFault` naming ``resource``.

    Data faults, environment faults raised deeper (which name their resource already) and bugs go through as
    they are."""
    try:
        yield
    except environment_error_types() as error:
        raise EnvironmentFault(resource, error) from error


def is_s3_missing(error: BaseException) -> bool:
    """An S3 answer that the object is not there (HEAD's 404, GET's NoSuchKey)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    return str(response.get("Error", {}).get("Code", "")) in S3_MISSING_CODES


def is_environment_oserror(error: BaseException) -> bool:
    """An OSError whose errno says the machine failed (a full disk, EIO, EACCES, ...)."""
    return isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS


def is_environment_reason(reason: str | None) -> bool:
    """Whether a reason an earlier version recorded as a quarantine describes an environment fault.

    Recognised: validate's "could not judge" entry (an exception in the gate's own process), an OSError with
    an environment errno, an exception class that only resources raise, and an S3 error other than a missing
    object. A reason that names the data (a failed expectation, a vanished object) is kept as a verdict."""
    if not reason:
        return False
    if reason.startswith(JUDGING_FAILURE):
        return True
    match = _REASON.match(reason)
    if match is None:
        return False
    name, message = match.group("name").rsplit(".", 1)[-1], match.group("message")
    if name in _ENVIRONMENT_CLASS_NAMES:
        return True
    number = _ERRNO.match(message)
    if number is not None:
        return int(number.group("number")) in ENVIRONMENT_ERRNOS
    if name == "ClientError":
        code = _CLIENT_ERROR_CODE.search(message)
        return code is None or code.group("code") not in S3_MISSING_CODES
    return False
