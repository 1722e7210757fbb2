"""The data gate's reader of untrusted shards: a child process with limits on time, memory and writes.

Every file in the landing zone is untrusted, and the HDF5 library that parses it is large C code. So the
gate never opens a shard in its own process: a child (``python -m astrospect.gate.sandbox``) opens it once,
inspects it (:func:`astrospect.data.shards.open_shard`, which refuses outside references, and declared
sizes beyond ``ASTROSPECT_GATE_MAX_DECLARED_MB`` or what the file stores, before reading anything) and
summarises its pixels (:func:`astrospect.data.summaries.summarize_cutouts`). The limits, per file:

- **time**: the parent waits ``seconds`` (``ASTROSPECT_GATE_TIMEOUT_S``) of wall-clock time for an answer,
  then kills the child and starts a fresh one for the next file; a CPU-time rlimit of the same length is a
  backstop should the parent die first;
- **memory**: ``RLIMIT_AS`` of ``memory_bytes`` (``ASTROSPECT_GATE_MEMORY_MB``) on the child, so an
  allocation beyond it fails as a ``MemoryError`` in the child, not in the gate;
- **writes**: ``RLIMIT_FSIZE`` of 0, so the child cannot write any file (the source is only ever read);
  HDF5 filter plugins are not loaded (``HDF5_PLUGIN_PRELOAD=::``).

Whatever the file makes happen in the child (a format error, any exception, a crash, a timeout, memory
beyond the limit) comes back as a :class:`Reading` with a reason naming the exception class and its message:
the gate quarantines that file and goes on. What is the machine's fault is not the file's
(:mod:`astrospect.faults`): a file of the raw store the child cannot open at all, or an I/O, permission or
disk error (by errno) while reading it, comes back as such and raises an
:class:`~astrospect.faults.EnvironmentFault` naming the file; so does a child that cannot be started. Answers are JSON and ``.npz`` arrays loaded without pickle, checked before use: the parent
trusts nothing the child sends. One child serves a whole run, one file at a time, and
:meth:`Sandbox.read_all` keeps it reading ahead while the gate judges. What it costs (measured by
``make bench-ingest``, 2 cores): about 0.35 s to start per run, and reading a shard through it runs at
about 0.9 of the same reading in the gate's own process (the answer's encoding and the pipe).
"""

from __future__ import annotations

import errno
import io
import json
import os
import queue
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from astrospect.data.shards import ShardFormatError, ShardInfo
from astrospect.faults import EnvironmentFault, describe, guard
from astrospect.settings import Settings, child_environment, get_logger

log = get_logger(__name__)

FRAME = struct.Struct(">Q")  # every message: its length, then its bytes
READY = b"ready"  # the child's first message, once its imports are done
START_SECONDS = 300.0  # for the child's start (imports on a busy machine), not counted against any file
FILE_FIELD = "<file>"
# errno values, once the file is open, that are the machine's fault: the device failed, or the process ran
# out of descriptors. Not ENOENT or EACCES: once the shard itself opened, those can only come from another
# file it names (refused by inspect_shard, and led nowhere by HDF5_*_PREFIX), so the file's verdict. Not
# ENOMEM: the child's memory is limited on purpose, and a file needing more than the limit is its verdict.
CHILD_ENVIRONMENT_ERRNOS = frozenset(
    {errno.EIO, errno.ESTALE, errno.ENODEV, errno.ENXIO, errno.EMFILE, errno.ENFILE}
)
# Environment of the child: one BLAS thread (it reads one file), no HDF5 plugins, and prefixes for HDF5's
# external files that lead nowhere (inspect_shard refuses those files anyway; this is a second wall).
CHILD_ENVIRONMENT = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "HDF5_PLUGIN_PRELOAD": "::",
    "HDF5_EXT_PREFIX": "/nonexistent/astrospect-sandbox",
    "HDF5_VDS_PREFIX": "/nonexistent/astrospect-sandbox",
    "HDF5_EXTFILE_PREFIX": "/nonexistent/astrospect-sandbox",
}


@dataclass(frozen=True)
class Limits:
    """What one file may cost the child."""

    seconds: float
    memory_bytes: int
    declared_bytes: int  # the most any dataset the gate reads may declare (see inspect_shard)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.gate_timeout_s, settings.gate_memory_bytes, settings.gate_max_declared_bytes)


@dataclass
class Reading:
    """What the child learned from one shard: its description and summary columns, or why it has none."""

    path: Path
    info: ShardInfo | None
    columns: dict[str, npt.NDArray[np.generic]] | None
    error: ShardFormatError | None  # the field and reason; set whenever columns is None
    seconds: float = 0.0


class Sandbox:
    """One child process reading shards one at a time. Use as a context manager."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._child: subprocess.Popen[bytes] | None = None
        self._pending: tuple[Path, float, float] | None = None  # path, when submitted, deadline
        self._reader: threading.Thread | None = None  # read_all's background thread
        self._stop = threading.Event()
        self._ready = False  # the child has sent READY

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, path: Path) -> Reading:
        self.submit(path)
        return self.result()

    def read_all(self, paths: Sequence[Path], *, ahead: int) -> Iterator[Reading]:
        """The readings of ``paths`` in order. A background thread, started now, keeps up to ``ahead`` of them
        ready, so the child reads the first shards while the caller sets up and the next ones while the caller
        judges this one (the thread only waits on the pipe)."""
        ready: queue.Queue[Reading | BaseException] = queue.Queue(maxsize=max(1, ahead))
        self._stop.clear()

        def produce() -> None:
            try:
                for path in paths:
                    reading = self.read(path)
                    while not self._stop.is_set():
                        try:
                            ready.put(reading, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    if self._stop.is_set():
                        return
            except BaseException as error:  # noqa: BLE001 - handed to the consumer, who raises it
                ready.put(error)

        self._reader = threading.Thread(target=produce, name="sandbox-reader", daemon=True)
        self._reader.start()
        return _collect(ready, len(paths))

    def start(self) -> None:
        """Start the child now (it imports while the caller sets up); reading waits for it to be ready."""
        self._launch()

    def submit(self, path: Path) -> None:
        """Start reading ``path`` in the child (returns at once; :meth:`result` collects it)."""
        if self._pending is not None:
            raise RuntimeError(f"{self._pending[0]} is still being read; collect its result first")
        request = json.dumps({"path": str(path), "declared_bytes": self.limits.declared_bytes}).encode()
        for attempt in (1, 2):
            child = self._running_child()
            assert child.stdin is not None
            try:
                child.stdin.write(_frame(request))
                child.stdin.flush()
                break
            except BrokenPipeError:  # it died after its last answer: start a fresh one, once
                log.warning("sandbox: the reader %s; starting another", self._stop_child())
                if attempt == 2:
                    raise EnvironmentFault(
                        "the sandboxed reader (a child process)", "it died twice on start"
                    ) from None
        started = time.monotonic()
        self._pending = (path, started, started + self.limits.seconds)

    def result(self) -> Reading:
        """The reading of the submitted file; a timeout or a crash is a reading with its reason."""
        if self._pending is None:
            raise RuntimeError("nothing was submitted")
        path, started, deadline = self._pending
        self._pending = None
        assert self._child is not None and self._child.stdout is not None
        stream = self._child.stdout
        try:
            header = json.loads(_read_frame(stream, deadline))
            blob = _read_frame(stream, deadline)
        except TimeoutError:
            self._stop_child()
            return _failed(
                path, f"TimeoutError: not read within {self.limits.seconds:g} s; the reader was killed"
            )
        except EOFError:
            return _failed(path, f"ChildProcessError: the reader {self._stop_child()}")
        seconds = time.monotonic() - started
        try:
            return _reading(path, header, blob, seconds)
        except (ValueError, KeyError, TypeError) as error:  # the child's answer is not what it must be
            self._stop_child()
            return _failed(path, f"{type(error).__name__}: malformed answer from the reader: {error}")

    def close(self) -> None:
        if self._reader is not None and self._reader.is_alive():
            self._stop.set()
            if self._child is not None:
                self._child.kill()  # a read in progress ends at once (a failed reading nobody collects)
            self._reader.join()
        self._reader = None
        if self._child is None:
            return
        assert self._child.stdin is not None
        try:
            self._child.stdin.close()  # the child exits at end of input
            self._child.wait(timeout=10)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            pass
        self._stop_child()

    def _launch(self) -> subprocess.Popen[bytes]:
        if self._child is None or self._child.poll() is not None:
            limits = json.dumps({"seconds": self.limits.seconds, "memory_bytes": self.limits.memory_bytes})
            with guard("the sandboxed reader (starting its process)"):
                self._child = subprocess.Popen(
                    [sys.executable, "-m", "astrospect.gate.sandbox", limits],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,  # with RLIMIT_FSIZE 0 it could not write a log file anyway
                    env=child_environment(CHILD_ENVIRONMENT),
                )
            self._ready = False
        return self._child

    def _running_child(self) -> subprocess.Popen[bytes]:
        child = self._launch()
        if not self._ready:
            assert child.stdout is not None
            try:  # a file's time limit starts once the reader is ready, not while Python imports numpy
                ready = _read_frame(child.stdout, time.monotonic() + START_SECONDS)
            except (EOFError, TimeoutError):  # no file was read yet: the machine's fault
                raise EnvironmentFault(
                    "the sandboxed reader (a child process)", f"it did not start: it {self._stop_child()}"
                ) from None
            if ready != READY:
                self._stop_child()
                raise EnvironmentFault(
                    "the sandboxed reader (a child process)", f"it started with {ready[:40]!r}, not {READY!r}"
                )
            self._ready = True
        return child

    def _stop_child(self) -> str:
        """Kill the child (if it still runs) and say how it ended."""
        child, self._child = self._child, None
        if child is None:
            return "was not running"
        if child.poll() is None:
            child.kill()
        code = child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (CPU time limit)" if -code == signal.SIGXCPU else ""
            return f"died of {name}{hint}"
        return f"exited with status {code}"


def _failed(path: Path, reason: str) -> Reading:
    return Reading(path, None, None, ShardFormatError(path, FILE_FIELD, reason))


def _reading(path: Path, header: Mapping[str, Any], blob: bytes, seconds: float) -> Reading:
    """Rebuild a :class:`Reading` from the child's answer, checking its shape and types."""
    from astrospect.data.summaries import COLUMNS

    for key in ("error", "read_error"):
        if key in header and header[key].get("traceback"):
            log.warning("sandbox: %s: %s\n%s", path, header[key]["reason"], header[key]["traceback"])
    if "environment" in header:  # the machine failed the child, not the file: no verdict on it
        raise EnvironmentFault(
            f"the raw store's file {path} (read by the sandboxed reader)",
            str(header["environment"]["reason"]),
        )
    if "error" in header:
        error = header["error"]
        return Reading(
            path, None, None, ShardFormatError(path, str(error["field"]), str(error["reason"])), seconds
        )
    raw_info = header["info"]
    info = ShardInfo(
        path=path,
        n=int(raw_info["n"]),
        size=int(raw_info["size"]),
        has_labels=bool(raw_info["has_labels"]),
        objid_dtype=str(raw_info["objid_dtype"]),
        attrs={str(key): value for key, value in dict(raw_info["attrs"]).items()},
    )
    if "read_error" in header:  # the header is fine, the pixels are not
        error = header["read_error"]
        return Reading(
            path, info, None, ShardFormatError(path, str(error["field"]), str(error["reason"])), seconds
        )
    with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
        columns = {name: arrays[name] for name in arrays.files}
    if set(columns) != set(COLUMNS):
        raise ValueError(f"columns {sorted(columns)} are not the summary's")
    for name, values in columns.items():
        if values.shape != (info.n,) or values.dtype.kind not in "iuf":
            raise ValueError(f"column {name}: {values.dtype} {values.shape}, expected {info.n} numbers")
    return Reading(path, info, columns, None, seconds)


# -- the child -------------------------------------------------------------------------------------------------
def _serve(requests: IO[bytes], answers: IO[bytes], limits: Mapping[str, Any]) -> None:
    import astrospect.data.summaries  # noqa: F401 - imported before the limits, not on the first file

    resource.setrlimit(resource.RLIMIT_AS, (int(limits["memory_bytes"]),) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    answers.write(_frame(READY))
    answers.flush()
    while True:
        try:
            request = json.loads(_read_frame(requests, None))
        except EOFError:
            return
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu_budget = int(used.ru_utime + used.ru_stime + float(limits["seconds"])) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_budget, resource.RLIM_INFINITY))
        header, blob = _answer(Path(request["path"]), int(request["declared_bytes"]))
        answers.write(_frame(json.dumps(header).encode()) + _frame(blob))
        answers.flush()


def _answer(path: Path, declared_bytes: int) -> tuple[dict[str, Any], bytes]:
    """Inspect and summarise one shard, opening it once; every failure becomes a field and a reason."""
    from astrospect.data.shards import chunks_of, open_shard
    from astrospect.data.summaries import summarize_cutouts

    header: dict[str, Any] = {}
    try:  # a file of the raw store that cannot even be opened: the machine's fault, whatever its bytes
        os.close(os.open(path, os.O_RDONLY))
    except OSError as error:
        return {"environment": {"reason": describe(error)}}, b""
    try:
        with open_shard(path, max_declared_bytes=declared_bytes) as (info, handle):
            header["info"] = {
                "n": info.n,
                "size": info.size,
                "has_labels": info.has_labels,
                "objid_dtype": info.objid_dtype,
                "attrs": {key: _json_value(value) for key, value in info.attrs.items()},
            }
            try:
                columns = summarize_cutouts(chunks_of(info, handle))
            except OSError as error:  # the header reads but the pixels do not (a corrupt compressed chunk)
                if _machine_failed(error):
                    return {"environment": {"reason": describe(error)}}, b""
                header["read_error"] = {"field": "images", "reason": f"pixel data unreadable: {error}"}
                return header, b""
            except ShardFormatError as error:
                header["read_error"] = {"field": error.field, "reason": error.reason}
                return header, b""
            except Exception as error:  # noqa: BLE001 - any failure on a file's content is that file's verdict
                if _machine_failed(error):  # ... unless its errno says the disk or the machine failed
                    return {"environment": {"reason": describe(error)}}, b""
                header["read_error"] = _describe(FILE_FIELD, error)
                return header, b""
    except ShardFormatError as error:
        return {"error": {"field": error.field, "reason": error.reason}}, b""
    except Exception as error:  # noqa: BLE001 - as above
        if _machine_failed(error):
            return {"environment": {"reason": describe(error)}}, b""
        if "info" in header:  # failed while closing the file: the reading above is complete
            header["read_error"] = _describe(FILE_FIELD, error)
            return header, b""
        return {"error": _describe(FILE_FIELD, error)}, b""
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **columns)
    return header, buffer.getvalue()


def _machine_failed(error: BaseException) -> bool:
    """An OSError whose errno is the machine's (:data:`CHILD_ENVIRONMENT_ERRNOS`); HDF5's format errors carry
    none."""
    return isinstance(error, OSError) and error.errno in CHILD_ENVIRONMENT_ERRNOS


def _describe(field: str, error: Exception) -> dict[str, str]:
    """A failure as the parent reports it: the exception class and message, and the traceback for its log."""
    return {"field": field, "reason": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}


def _json_value(value: object) -> object:
    """An attribute as JSON: plain scalars as they are, anything else as a short text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)[:200]


# -- framing ---------------------------------------------------------------------------------------------------
def _collect(ready: queue.Queue[Reading | BaseException], count: int) -> Iterator[Reading]:
    for _ in range(count):
        item = ready.get()
        if isinstance(item, BaseException):
            raise item
        yield item


def _frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload)) + payload


def _read_frame(stream: IO[bytes], deadline: float | None) -> bytes:
    (length,) = FRAME.unpack(_read_exact(stream, FRAME.size, deadline))
    return _read_exact(stream, length, deadline)


def _read_exact(stream: IO[bytes], size: int, deadline: float | None) -> bytes:
    """``size`` bytes from a pipe; EOFError when it closes first, TimeoutError after ``deadline``."""
    descriptor = stream.fileno()
    parts, missing = [], size
    while missing:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([descriptor], [], [], remaining)[0]:
                raise TimeoutError
        part = os.read(descriptor, min(missing, 1 << 20))
        if not part:
            raise EOFError
        parts.append(part)
        missing -= len(part)
    return b"".join(parts)


def main() -> None:
    """The child: answer requests on stdin until it closes. Its stdout carries only answers, so anything
    that would print there goes to stderr (``/dev/null``) instead."""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(sys.stdin.buffer, answers, json.loads(sys.argv[1]))


if __name__ == "__main__":
    main()
