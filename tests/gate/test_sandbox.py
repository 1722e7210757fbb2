"""The gate's sandboxed reader: a child process that reads untrusted shards with limits, and whatever
happens to it (an error, a crash, a hang, too much memory) comes back as that file's reason."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from astrospect.data.shards import write_shard
from astrospect.data.summaries import COLUMNS, summarize_columns
from astrospect.faults import EnvironmentFault
from astrospect.gate.sandbox import Limits, Reading, Sandbox
from harness.corpus import write_fake_shard

pytestmark = pytest.mark.unit

GIB = 1024**3
LIMITS = Limits(seconds=120.0, memory_bytes=2 * GIB, declared_bytes=8 * GIB)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_shard(tmp_path_factory.mktemp("good") / "good.h5", 30, seed=1, objid_start=1)


def _child_pid(sandbox: Sandbox) -> int:
    assert sandbox._child is not None
    return sandbox._child.pid


def test_the_reading_is_the_summary_the_gate_would_compute_itself(good: Path) -> None:
    with Sandbox(LIMITS) as sandbox:
        reading = sandbox.read(good)
    assert reading.error is None and reading.info is not None and reading.columns is not None
    assert (reading.info.n, reading.info.size, reading.info.objid_dtype) == (30, 32, "int64")
    assert reading.info.attrs["bands"] == "ugriz"
    expected = summarize_columns(good)
    assert list(reading.columns) == list(COLUMNS)
    for name in COLUMNS:
        np.testing.assert_array_equal(reading.columns[name], expected[name])


def test_a_format_error_and_any_other_exception_are_the_files_reason(tmp_path: Path, good: Path) -> None:
    text_labels = tmp_path / "text-labels.h5"
    with h5py.File(text_labels, "w") as handle:
        handle["images"] = np.zeros((3, 5, 32, 32), np.float32)
        handle["objid"] = np.arange(1, 4)
        handle["specz_redshift"] = np.array([b"0.1", b"0.2", b"x"])
        handle["specz_redshift_err"] = np.full(3, 1e-4, np.float32)
    with Sandbox(LIMITS) as sandbox:
        bad = sandbox.read(text_labels)
        # A file of the raw store that is not there is the machine's fault (the store lost it), not a verdict.
        with pytest.raises(EnvironmentFault, match=r"the raw store's file .*nowhere\.h5.*FileNotFoundError"):
            sandbox.read(tmp_path / "nowhere.h5")
        after = sandbox.read(good)
    assert bad.error is not None and bad.columns is None
    assert (bad.error.field, bad.error.reason) == ("specz_redshift", "expected real numbers, got dtype |S3")
    assert after.error is None  # the same child goes on with the next file


def test_a_reader_that_hangs_is_killed_at_the_time_limit_and_the_next_file_is_read(good: Path) -> None:
    with Sandbox(Limits(seconds=1.0, memory_bytes=2 * GIB, declared_bytes=8 * GIB)) as sandbox:
        sandbox.read(good)  # the child is up
        pid = _child_pid(sandbox)
        os.kill(pid, signal.SIGSTOP)  # a reader stuck in a file (on fill values, say) behaves like this
        sandbox.submit(good)
        hung = (
            sandbox.result()
        )  # returns at all only because the limit ends the wait: the child never answers
        stopped_child_is_gone = not Path(f"/proc/{pid}").exists()  # killed and reaped, not left stopped
        after = sandbox.read(good)
        assert _child_pid(sandbox) != pid
    assert hung.error is not None and hung.columns is None
    assert hung.error.field == "<file>"
    assert hung.error.reason == "TimeoutError: not read within 1 s; the reader was killed"
    assert stopped_child_is_gone
    assert after.error is None


@pytest.mark.parametrize("crash", [signal.SIGSEGV, signal.SIGKILL])
def test_a_reader_that_dies_is_the_files_reason_and_a_fresh_one_reads_the_next(
    good: Path, crash: signal.Signals
) -> None:
    with Sandbox(LIMITS) as sandbox:
        sandbox.read(good)
        pid = _child_pid(sandbox)
        os.kill(pid, signal.SIGSTOP)
        sandbox.submit(good)
        os.kill(pid, crash)  # what a segfault in the HDF5 library, or the OOM killer, looks like from here
        os.kill(pid, signal.SIGCONT)
        died = sandbox.result()
        after = sandbox.read(good)
    assert died.error is not None
    assert died.error.reason == f"ChildProcessError: the reader died of {crash.name}"
    assert after.error is None


def test_memory_beyond_the_limit_fails_in_the_reader_not_in_the_gate(tmp_path: Path, good: Path) -> None:
    rows = 1024  # 84 MB of 64x64 cutouts: one read of 1,024 of them needs more than 200 MB with the summaries
    big = write_shard(
        tmp_path / "big.h5",
        np.random.default_rng(0).normal(0, 0.05, (rows, 5, 64, 64)).astype(np.float32),
        np.arange(1, rows + 1),
        np.full(rows, 0.1),
        np.full(rows, 1e-4),
    )
    with Sandbox(Limits(seconds=120.0, memory_bytes=200 * 1024**2, declared_bytes=8 * GIB)) as sandbox:
        hungry = sandbox.read(big)
        after = sandbox.read(good)
    assert hungry.error is not None and hungry.error.reason.startswith("MemoryError: ")
    assert after.error is None


def test_the_limits_are_set_on_the_child(good: Path) -> None:
    with Sandbox(Limits(seconds=7.0, memory_bytes=GIB, declared_bytes=8 * GIB)) as sandbox:
        sandbox.read(good)
        limits = Path(f"/proc/{_child_pid(sandbox)}/limits").read_text()
        environment = Path(f"/proc/{_child_pid(sandbox)}/environ").read_bytes().split(b"\0")
    rows = {line[:26].strip(): line[26:].split() for line in limits.splitlines()[1:]}
    assert rows["Max address space"][:2] == [str(GIB), str(GIB)]
    assert rows["Max file size"][:2] == ["0", "0"]  # it cannot write any file
    assert rows["Max core file size"][:2] == ["0", "0"]
    assert int(rows["Max cpu time"][0]) >= 7  # per file: what it has used plus the time limit
    assert b"HDF5_PLUGIN_PRELOAD=::" in environment


def test_declared_sizes_beyond_the_configured_limit_are_refused(tmp_path: Path, good: Path) -> None:
    with Sandbox(Limits(seconds=120.0, memory_bytes=2 * GIB, declared_bytes=100_000)) as sandbox:
        reading = sandbox.read(good)  # 30 cutouts of 32x32x5 float32: 614,400 bytes of images
    assert reading.error is not None and reading.error.field == "images"
    assert "more than the limit of 100000" in reading.error.reason


def test_read_all_keeps_the_order_and_reads_ahead(
    tmp_path: Path, good: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an HDF5 file")
    paths = [good, garbage, good, good]
    with Sandbox(LIMITS) as sandbox:
        # Every reading the background reader finishes, in order: the real Sandbox.read, watched.
        finished: list[Path] = []
        changed = threading.Condition()
        read = sandbox.read

        def watched_read(path: Path) -> Reading:
            reading = read(path)
            with changed:
                finished.append(path)
                changed.notify_all()
            return reading

        monkeypatch.setattr(sandbox, "read", watched_read)
        readings = sandbox.read_all(paths, ahead=2)
        first = next(readings)
        # A slow judge still holds the first reading: meanwhile the reader finishes the next two (ahead=2),
        # which nobody has asked for yet. The wait is a bound for a busy machine, not a measurement.
        with changed:
            read_ahead = changed.wait_for(lambda: len(finished) >= 3, timeout=120)
        assert read_ahead, f"only {finished} were read while the first reading was held"
        assert finished[:3] == paths[:3]
        rest = list(readings)
    assert finished == paths
    assert [reading.path for reading in (first, *rest)] == paths
    assert [reading.error is None for reading in (first, *rest)] == [True, False, True, True]
