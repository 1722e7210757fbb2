"""Records that stay true (issue 31): a quarantine an earlier version recorded for an environment fault (a
full disk while copying, an exception in the gate's own process) is not a verdict. `astrospect quarantine
list` shows data verdicts only, and such a shard or landing object is pending again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from astrospect.cli import app
from astrospect.gate.ingest import ingest
from astrospect.gate.ledger import ACCEPTED, QUARANTINED, Ledger
from astrospect.gate.validate import move, quarantine_list, skipped_landing_entries, validate_pending
from astrospect.settings import Settings, load_settings
from harness.corpus import write_fake_shard

pytestmark = pytest.mark.data

DISK_FULL = "OSError: [Errno 28] No space left on device"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings().replace(home=tmp_path / "home")


def test_environment_quarantines_of_an_earlier_version_are_not_listed_and_are_judged_again(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = tmp_path / "landing"
    write_fake_shard(landing / "a-good.h5", 40, seed=1, objid_start=1000)
    (landing / "b-broken.h5").write_bytes(b"not HDF5")
    ingest(landing, settings)
    validate_pending(settings)  # a-good accepted, b-broken quarantined: a data verdict
    later = write_fake_shard(landing / "c-later.h5", 40, seed=3, objid_start=3000)
    [new] = ingest(landing, settings).new
    # What an earlier version wrote: c-later "quarantined" for an exception while judging it, and a landing
    # object "quarantined" because the disk was full while copying it.
    with Ledger(settings.ledger_path) as ledger:
        record = ledger.find(Path(new).name)
        move(Path(new), settings.quarantine_dir)
        ledger.mark_quarantined(record.sha256, None, "judged_by_the_gate: observed MemoryError: ", "")
        ledger.record_landing_entry(str(landing / "d-copied.h5"), "1:2:3", QUARANTINED, DISK_FULL)

    assert [item["name"].split(".")[0] for item in quarantine_list(settings)] == ["b-broken"]
    assert skipped_landing_entries(settings) == []
    monkeypatch.setenv("ASTROSPECT_HOME", str(settings.home))
    listed = json.loads(CliRunner().invoke(app, ["quarantine", "list", "--json"]).output)
    assert [item["name"].split(".")[0] for item in listed["shards"]] == ["b-broken"]
    assert listed["skipped_landing_entries"] == []
    with Ledger(settings.ledger_path) as ledger:  # kept in the ledger all the same: nothing is deleted
        assert [e["reason"] for e in ledger.landing_entries(include_environment=True)] == [DISK_FULL]

    verdicts = validate_pending(settings)  # c-later is pending again, judged, and accepted
    assert [Path(p).name for p in verdicts.accepted] == [Path(new).name] and verdicts.quarantined == []
    with Ledger(settings.ledger_path) as ledger:
        reopened = ledger.find(Path(new).name)
        assert reopened.status == ACCEPTED and (settings.accepted_dir / reopened.name).is_file()
        assert [e["event"] for e in ledger.events(reopened.sha256)] == [
            "ingested",
            "quarantined",
            "reopened",
            "accepted",
        ]
    assert later.is_file()
