"""What the fault-injection suite shares: a landing zone, the state a fault-free run reaches, running a step
as an operator does (the ``astrospect`` command, its exit status and its message), and the record of every
case, written to docs/results/faults.json when the suite ends (docs/reference/faults.md shows it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from astrospect.data.store import sha256_file
from astrospect.gate.ledger import ACCEPTED, QUARANTINED, RAW, Ledger
from astrospect.settings import Settings, load_settings
from harness import faults_table
from harness.corpus import write_fake_shard

ROWS = 40  # cutouts per shard: about 0.8 MB each
GOOD_SHARDS = 4
ASTROSPECT = Path(sys.executable).parent / "astrospect"


def write_landing(folder: Path) -> list[Path]:
    """Four good shards and one that is not HDF5 at all (a data fault: quarantined in every run)."""
    folder.mkdir(parents=True, exist_ok=True)
    shards = [
        write_fake_shard(
            folder / f"{chr(ord('a') + k)}-night.h5", ROWS, seed=k + 1, objid_start=(k + 1) * 1000
        )
        for k in range(GOOD_SHARDS)
    ]
    broken = folder / "e-not-hdf5.h5"
    broken.write_bytes(b"not an HDF5 file, whatever its name says\n" * 100)
    return [*shards, broken]


@dataclass(frozen=True)
class GateState:
    """What the gate's records say: sha256 sets by status, landing entries, the snapshot LATEST names."""

    accepted: frozenset[str]
    quarantined: frozenset[str]
    raw: frozenset[str]
    landing_quarantined: int
    snapshot: str | None

    def ledger_text(self, total: int) -> str:
        return (
            f"{len(self.accepted)} accepted, {len(self.quarantined)} quarantined, {len(self.raw)} pending of "
            f"{total}; {self.landing_quarantined} landing entries quarantined"
        )


def gate_state(settings: Settings) -> GateState:
    if not settings.ledger_path.is_file():
        return GateState(frozenset(), frozenset(), frozenset(), 0, None)
    with Ledger(settings.ledger_path) as ledger:
        by_status = {
            status: frozenset(record.sha256 for record in ledger.with_status(status))
            for status in (ACCEPTED, QUARANTINED, RAW)
        }
        landing = sum(
            1 for entry in ledger.landing_entries(include_environment=True) if entry["verdict"] == QUARANTINED
        )
    latest = settings.snapshots_dir / "LATEST"
    return GateState(
        by_status[ACCEPTED],
        by_status[QUARANTINED],
        by_status[RAW],
        landing,
        latest.read_text().strip() if latest.is_file() else None,
    )


def fault_free_state(landing: Path, home: Path, environment: Mapping[str, str] | None = None) -> GateState:
    """Ingest, validate and snapshot ``landing`` with no fault: the state every rerun must reach."""
    from astrospect.gate.ingest import ingest
    from astrospect.gate.snapshot import create_snapshot
    from astrospect.gate.validate import validate_pending

    saved = {name: os.environ.get(name) for name in environment or {}}
    os.environ.update(environment or {})
    try:
        settings = load_settings().replace(home=home)
        ingest(str(landing), settings)
        validate_pending(settings)
        create_snapshot(settings)
        return gate_state(settings)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def shas(paths: list[Path]) -> frozenset[str]:
    return frozenset(sha256_file(path) for path in paths)


@dataclass
class StepRun:
    exit_status: int
    message: str  # the environment fault's line, or the last line of stderr
    stdout: str


def run_step(args: list[str], environment: Mapping[str, str], timeout: float = 600) -> StepRun:
    """``astrospect <args>`` as its own process, as an operator or Airflow's task runs it."""
    done = subprocess.run(
        [str(ASTROSPECT), *args],
        env={**os.environ, "TYPER_STANDARD_TRACEBACK": "1", **environment},  # the message on one line
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    faults = [line for line in lines if line.startswith("astrospect.faults.EnvironmentFault: ")]
    message = faults[-1].removeprefix("astrospect.faults.") if faults else (lines[-1] if lines else "")
    return StepRun(done.returncode, message, done.stdout)


def normalised(text: str, *homes: Path) -> str:
    """A message without this run's temporary paths and ports, so the recorded table does not change."""
    for home in homes:
        text = text.replace(str(home), "<home>")
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
    text = re.sub(r"port=\d+", "port=<port>", text)  # urllib3's form of the same address
    text = re.sub(r"\b[0-9a-f]{32}\b", "<run id>", text)  # an MLflow run id in a failed request's URL
    text = re.sub(r"/tmp/[^ '\"]*", "<tmp>", text)
    return text.split(" (an environment fault:")[0]


class Record:
    """The suite's outcomes: one per case, keyed by its id (the table's order)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, dict[str, Any]] = {}

    def add(self, case: str, **outcome: Any) -> None:
        self.outcomes[case] = {"case": case, **outcome}


@pytest.fixture(scope="session")
def record() -> Iterator[Record]:
    """Collects the cases; at the end merges them into docs/results/faults.json."""
    collected = Record()
    yield collected
    if not collected.outcomes:
        return
    known = {outcome["case"]: outcome for outcome in faults_table.load()}
    known.update(collected.outcomes)
    outcomes = [known[case] for case in sorted(known)]
    faults_table.write(outcomes)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_landing(tmp_path_factory.mktemp("landing") / "incoming")
