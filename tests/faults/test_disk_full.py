"""A full disk under ingest, validate and snapshot: the step fails naming the disk, nothing is quarantined for
it, and the run after space comes back reaches exactly the state of a run that never met the fault.

Why a small tmpfs: it is a real filesystem, so the kernel itself answers ENOSPC to whichever write comes
first (a copy's bytes, SQLite's WAL, a report, a manifest), exactly as a full worker disk does; nothing in
the code under test is patched. ``ASTROSPECT_HOME`` lives on it; a ballast file (``posix_fallocate``) takes
all but a chosen number of bytes, and deleting it is the fault clearing. Mounting needs root (CAP_SYS_ADMIN),
as in CI's container; where ``mount`` is refused the module is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from astrospect.settings import Settings, load_settings
from tests.faults.conftest import GateState, Record, fault_free_state, gate_state, normalised, run_step

pytestmark = [pytest.mark.integration, pytest.mark.faults]

DISK_BYTES = 48 * 1024 * 1024
FULL = "disk full (ASTROSPECT_HOME on a small tmpfs)"
# How a full disk reads: ENOSPC from a write, SQLite's "database or disk is full", or SQLite's "disk I/O
# error" when it cannot even make its shared-memory file.
DISK_ERRORS = ("No space left on device", "database or disk is full", "disk I/O error")


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mount_point = tmp_path_factory.mktemp("tmpfs")
    if shutil.which("mount") is None:
        pytest.skip("no `mount` command: cannot make a small filesystem to fill")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here (needs root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture(scope="module")
def reference(landing: list[Path], tmp_path_factory: pytest.TempPathFactory) -> GateState:
    return fault_free_state(landing[0].parent, tmp_path_factory.mktemp("fault-free") / "home")


def fill(disk: Path, leave: int) -> Path:
    """Take all the free space of ``disk`` but ``leave`` bytes; delete the file to give it back."""
    ballast = disk / "ballast"
    ballast.unlink(missing_ok=True)
    stats = os.statvfs(disk)
    size = stats.f_bavail * stats.f_frsize - leave
    with open(ballast, "wb") as handle:
        if size > 0:
            os.posix_fallocate(handle.fileno(), 0, size)
    return ballast


def fresh_home(disk: Path) -> Settings:
    home = disk / "home"
    shutil.rmtree(home, ignore_errors=True)
    (disk / "ballast").unlink(missing_ok=True)
    return load_settings().replace(home=home)


def converged(state: GateState, reference: GateState) -> str:
    same = (
        state.accepted == reference.accepted
        and state.quarantined == reference.quarantined
        and state.snapshot == reference.snapshot
        and not state.raw
    )
    return (
        "converges: the same accepted and quarantined sets and the same snapshot version as a fault-free run"
        if same
        else "DIFFERS from a fault-free run"
    )


def test_a_full_disk_during_ingest(
    disk: Path, landing: list[Path], reference: GateState, record: Record
) -> None:
    settings = fresh_home(disk)
    environment = {"ASTROSPECT_HOME": str(settings.home)}
    source = str(landing[0].parent)
    fill(disk, leave=int(2.5 * landing[0].stat().st_size))  # room for two shards and the ledger

    run = run_step(["ingest", "--source", source], environment)
    (disk / "ballast").unlink()  # the fault clears (reading the ledger needs room for SQLite's -shm)
    state = gate_state(settings)
    assert run.exit_status != 0, run.message
    assert any(text in run.message for text in DISK_ERRORS), run.message
    assert str(settings.home) in run.message  # names the disk it could not write
    assert state.quarantined == frozenset() and state.landing_quarantined == 0  # not the shards' fault
    published = sorted(settings.raw_dir.glob("*.h5"))
    partial = (
        list((settings.raw_dir / ".incoming").glob("*")) if (settings.raw_dir / ".incoming").is_dir() else []
    )
    assert 0 < len(state.raw) < len(landing)

    rerun = run_step(["ingest", "--source", source], environment)
    assert rerun.exit_status == 0, rerun.message
    after = fault_free_state(landing[0].parent, settings.home)  # validate and snapshot (ingest: a no-op)
    assert converged(after, reference).startswith("converges"), (after, reference)
    record.add(
        "disk-1-ingest",
        fault=FULL,
        step="ingest",
        exit_status=run.exit_status,
        message=normalised(run.message, settings.home, landing[0].parent),
        ledger=state.ledger_text(len(landing)),
        store=f"raw/: {len(published)} shard(s) published whole, {len(partial)} partial file(s)",
        rerun=f"exit {rerun.exit_status}; {converged(after, reference)}",
    )


def test_a_full_disk_during_validate(
    disk: Path, landing: list[Path], reference: GateState, record: Record
) -> None:
    from astrospect.gate.ingest import ingest

    settings = fresh_home(disk)
    environment = {"ASTROSPECT_HOME": str(settings.home)}
    ingest(str(landing[0].parent), settings)
    fill(disk, leave=96 * 1024)  # room for SQLite's files, not for a quarantine report

    run = run_step(["validate"], environment)
    (disk / "ballast").unlink()  # the fault clears (reading the ledger needs room for SQLite's -shm)
    state = gate_state(settings)
    assert run.exit_status != 0, run.message
    assert any(text in run.message for text in DISK_ERRORS), run.message
    assert str(settings.home) in run.message
    assert state.quarantined == frozenset()  # the broken shard's verdict was not reached, or not written
    assert state.accepted <= reference.accepted and state.raw
    reports = (
        len(list(settings.quarantine_dir.glob("*.report.html"))) if settings.quarantine_dir.is_dir() else 0
    )

    rerun = run_step(["validate"], environment)
    assert rerun.exit_status == 0, rerun.message
    after = fault_free_state(landing[0].parent, settings.home)
    assert converged(after, reference).startswith("converges"), (after, reference)
    record.add(
        "disk-2-validate",
        fault=FULL,
        step="validate",
        exit_status=run.exit_status,
        message=normalised(run.message, settings.home),
        ledger=state.ledger_text(len(landing)),
        store=f"quarantine/: {reports} report(s); no shard recorded as quarantined",
        rerun=f"exit {rerun.exit_status}; {converged(after, reference)}",
    )


def test_a_full_disk_during_snapshot(
    disk: Path, landing: list[Path], reference: GateState, record: Record
) -> None:
    from astrospect.gate.ingest import ingest
    from astrospect.gate.validate import validate_pending

    settings = fresh_home(disk)
    environment = {"ASTROSPECT_HOME": str(settings.home)}
    ingest(str(landing[0].parent), settings)
    validate_pending(settings)
    fill(disk, leave=0)

    run = run_step(["snapshot"], environment)
    (disk / "ballast").unlink()  # the fault clears (reading the ledger needs room for SQLite's -shm)
    state = gate_state(settings)
    assert run.exit_status != 0, run.message
    assert any(text in run.message for text in DISK_ERRORS), run.message
    assert str(settings.home) in run.message  # the ledger (SQLite cannot open) or the snapshots folder
    manifests = list(settings.snapshots_dir.glob("*")) if settings.snapshots_dir.is_dir() else []
    assert state.snapshot is None and manifests == []  # no manifest, no LATEST, no temp file left

    rerun = run_step(["snapshot"], environment)
    assert rerun.exit_status == 0, rerun.message
    after = gate_state(settings)
    assert converged(after, reference).startswith("converges"), (after, reference)
    record.add(
        "disk-3-snapshot",
        fault=FULL,
        step="snapshot",
        exit_status=run.exit_status,
        message=normalised(run.message, settings.home),
        ledger=state.ledger_text(len(landing)),
        store=f"snapshots/: {len(manifests)} file(s) (no manifest, no LATEST)",
        rerun=f"exit {rerun.exit_status}; {converged(after, reference)}",
    )


def test_a_full_disk_in_the_training_workers_shard_cache(
    disk: Path, landing: list[Path], reference: GateState, record: Record, s3: Any, tmp_path: Path
) -> None:
    """A worker fetching a snapshot's shards from the store (train, promote, drift) into a full cache."""
    from astrospect.data.store import local_copies, sha256_file
    from astrospect.faults import EnvironmentFault
    from astrospect.gate.snapshot import create_snapshot

    # The gate runs on its own disk with the store on; the worker's home (its cache) is the small disk.
    gate = load_settings().replace(home=tmp_path / "gate")
    os.environ["ASTROSPECT_STORE"] = "s3://shard-store/"
    try:
        fault_free_state(landing[0].parent, gate.home)
        snapshot = create_snapshot(gate)
        worker = fresh_home(disk)
        fill(disk, leave=int(1.5 * landing[0].stat().st_size))  # room for one shard
        with pytest.raises(EnvironmentFault) as caught:
            local_copies(snapshot.shards, snapshot.sha256, worker)
        message = f"EnvironmentFault: {caught.value}"
        assert str(worker.cache_dir) in message and "No space left on device" in message, message
        cached = sorted(worker.cache_dir.glob("*"))
        partial = [path for path in cached if path.name.startswith(".")]
        assert partial == [] and len(cached) < len(snapshot.shards)  # whole, verified copies only

        (disk / "ballast").unlink()  # the fault clears: the retried task
        paths = local_copies(snapshot.shards, snapshot.sha256, worker)
    finally:
        os.environ.pop("ASTROSPECT_STORE", None)
    same = [sha256_file(path) for path in paths] == snapshot.sha256 and snapshot.version == reference.snapshot
    assert same
    record.add(
        "disk-4-shard-cache",
        fault=FULL,
        step="a worker's shard cache (train, promote, drift: local_copies)",
        exit_status="the task raises EnvironmentFault (Airflow: failed, retried)",
        message=normalised(message, worker.home, gate.home),
        ledger="nothing: the worker records no verdict",
        store=f"cache/: {len(cached)} verified shard(s) of {len(snapshot.shards)}, {len(partial)} partial",
        rerun="every shard fetched and its sha256 checked: the snapshot's bytes, as a fault-free run",
    )
