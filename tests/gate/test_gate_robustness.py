"""No file can stop the data gate: ingest and validate go on past any file, record why, and never touch the
source. Each test starts from what was reported (issue 15) or from a way a landing zone goes wrong."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from astrospect.gate import validate
from astrospect.gate.ingest import INCOMING, FolderLanding, ingest, sha256_file, store_name
from astrospect.gate.ledger import QUARANTINED, SKIPPED, Ledger
from astrospect.gate.validate import validate_pending
from astrospect.settings import Settings, load_settings
from harness.corpus import write_fake_shard

pytestmark = pytest.mark.data

ROWS = 40


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings().replace(home=tmp_path / "home")


def tree(folder: Path) -> dict[str, tuple[str, int]]:
    """Every regular file under ``folder`` (links not followed): sha256 and mtime."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                found[str(path.relative_to(folder))] = (sha256_file(path), path.stat().st_mtime_ns)
    return found


def text_redshift_shard(path: Path) -> Path:
    """The reported file: a shard whose redshift dataset holds text, not numbers."""
    good = write_fake_shard(path.with_suffix(".tmp.h5"), ROWS, seed=9, objid_start=900_000)
    with h5py.File(good) as source, h5py.File(path, "w") as shard:
        for name in ("images", "objid", "specz_redshift_err"):
            shard[name] = source[name][()]
        shard["specz_redshift"] = np.array([f"{z:.4f}".encode() for z in source["specz_redshift"][()]])
        shard.attrs["bands"] = "ugriz"
    good.unlink()
    return path


def test_a_non_numeric_redshift_no_longer_stops_ingest_or_validate(
    tmp_path: Path, settings: Settings
) -> None:
    """Issue 15: `TypeError: ufunc 'isfinite' not supported` from data/shards.py via ingest._rows, and no file
    sorted after it was ever ingested."""
    landing = tmp_path / "landing"
    landing.mkdir()
    bad = text_redshift_shard(landing / "a-text-redshift.h5")
    after = write_fake_shard(landing / "b-good.h5", ROWS, seed=1, objid_start=1000)
    before = tree(landing)

    ingested = ingest(landing, settings)
    assert sorted(Path(p).name.split(".")[0] for p in ingested.new) == ["a-text-redshift", "b-good"]
    verdicts = validate_pending(settings)
    assert [Path(p).name for p in verdicts.accepted] == [store_name(after.name, sha256_file(after))]
    [refused] = verdicts.quarantined
    assert refused["shard"] == store_name(bad.name, sha256_file(bad))
    assert "structure: field 'specz_redshift': expected real numbers, got dtype |S6" in refused["reason"]
    assert tree(landing) == before


def test_a_half_ingested_file_is_checked_like_any_other_and_the_retry_goes_on(
    tmp_path: Path, settings: Settings
) -> None:
    """Issue 15: every retry adopted the same half-ingested file and crashed again. What an interrupted run
    leaves (the bad file published, no ledger row) is now kept only for the same bytes, then validated."""
    landing = tmp_path / "landing"
    landing.mkdir()
    bad = text_redshift_shard(landing / "a-text-redshift.h5")
    after = write_fake_shard(landing / "b-good.h5", ROWS, seed=1, objid_start=1000)
    published = settings.raw_dir / store_name(bad.name, sha256_file(bad))
    published.parent.mkdir(parents=True)
    shutil.copyfile(bad, published)
    (settings.raw_dir / INCOMING).mkdir()
    (settings.raw_dir / INCOMING / f".{after.name}.x1y2.part").write_bytes(b"half a copy")

    for attempt in range(2):  # the retry of the night, and the night after: same result, no error
        result = ingest(landing, settings)
        assert (len(result.new), result.quarantined) == ((2, []) if attempt == 0 else (0, []))
    assert list((settings.raw_dir / INCOMING).iterdir()) == []
    verdicts = validate_pending(settings)
    assert len(verdicts.accepted) == 1 and [q["shard"] for q in verdicts.quarantined] == [published.name]


def test_directories_symlinks_and_special_files_are_skipped_with_a_reason(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: a directory named like a shard appeared neither in the ingest result nor in the ledger."""
    landing, outside = tmp_path / "landing", tmp_path / "outside"
    landing.mkdir()
    outside.mkdir()
    secret = write_fake_shard(outside / "not-in-the-landing-zone.h5", ROWS, seed=3, objid_start=3000)
    (landing / "looks-like.h5").mkdir()
    inside = write_fake_shard(landing / "looks-like.h5" / "inner.h5", ROWS, seed=4, objid_start=4000)
    (landing / "link-to-shard.h5").symlink_to(secret)
    (landing / "link-to-folder").symlink_to(outside, target_is_directory=True)
    os.mkfifo(landing / "pipe.h5")
    (landing / "notes.txt").write_text("not a shard: ignored without a word")
    before = tree(landing)

    first = ingest(landing, settings)
    reasons = {Path(e["source"]).name: e["reason"] for e in first.skipped_entries}
    assert reasons == {
        "looks-like.h5": "a directory named like a shard (its files are listed on their own)",
        "link-to-shard.h5": f"a symbolic link to {secret}: not followed",
        "link-to-folder": f"a symbolic link to {outside}: not followed",
        "pipe.h5": "not a regular file (a FIFO)",
    }
    assert [Path(p).name for p in first.new] == [store_name(inside.name, sha256_file(inside))]
    with Ledger(settings.ledger_path) as ledger:
        recorded = ledger.landing_entries()
        assert {(Path(e["source"]).name, e["verdict"], e["reason"]) for e in recorded} == {
            (name, SKIPPED, reason) for name, reason in reasons.items()
        }
        assert ledger.get(sha256_file(secret)) is None  # never read through the link

    second = ingest(landing, settings)  # reported again, recorded once
    assert len(second.skipped_entries) == 4 and second.new == []
    with Ledger(settings.ledger_path) as ledger:
        assert ledger.landing_entries() == recorded
    assert tree(landing) == before

    # A person finds them where they look for what the gate refused: `astrospect quarantine list`.
    from typer.testing import CliRunner

    from astrospect.cli import app

    monkeypatch.setenv("ASTROSPECT_HOME", str(settings.home))
    listing = CliRunner().invoke(app, ["quarantine", "list"])
    assert listing.exit_code == 0, listing.output
    assert "landing entries skipped by ingest (left where they are): 4" in listing.output
    assert "not a regular file (a FIFO)" in listing.output
    as_json = json.loads(CliRunner().invoke(app, ["quarantine", "list", "--json"]).output)
    assert as_json["skipped_landing_entries"] == recorded and as_json["shards"] == []


def test_a_file_that_cannot_be_copied_is_quarantined_and_the_run_goes_on(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = tmp_path / "landing"
    first = write_fake_shard(landing / "a-vanishes.h5", ROWS, seed=1, objid_start=1000)
    second = write_fake_shard(landing / "b-good.h5", ROWS, seed=2, objid_start=2000)
    kept = first.read_bytes()
    real_download = FolderLanding.download

    def vanish_first(self: FolderLanding, obj, sink) -> None:  # type: ignore[no-untyped-def]
        if obj.name == first.name:  # deleted by its producer between the listing and the copy
            first.unlink()
        real_download(self, obj, sink)

    monkeypatch.setattr(FolderLanding, "download", vanish_first)
    result = ingest(landing, settings)
    [refused] = result.quarantined
    assert refused["source"] == str(first)
    assert refused["reason"].startswith("FileNotFoundError: [Errno 2] No such file or directory")
    assert [Path(p).name for p in result.new] == [store_name(second.name, sha256_file(second))]
    with Ledger(settings.ledger_path) as ledger:
        [entry] = ledger.landing_entries()
        assert (entry["source"], entry["verdict"]) == (str(first), QUARANTINED)
    assert list((settings.raw_dir / INCOMING).iterdir()) == []

    monkeypatch.setattr(FolderLanding, "download", real_download)
    first.write_bytes(kept)  # the producer puts it back: the next run copies it
    again = ingest(landing, settings)
    assert [Path(p).name for p in again.new] == [store_name(first.name, hashlib.sha256(kept).hexdigest())]


def test_an_exception_while_judging_is_the_runs_failure_not_the_shards_quarantine(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 31: an exception in the gate's own process (a bug, memory, a GE error) was recorded as that shard's
    quarantine, for good. Now it fails the run, nothing is recorded against the shard, and the run after the
    fix gives every shard the verdict a fault-free run gives."""
    landing = tmp_path / "landing"
    shards = [write_fake_shard(landing / f"{k}.h5", ROWS, seed=k, objid_start=k * 1000) for k in (1, 2, 3)]
    ingest(landing, settings)
    victim = store_name(shards[1].name, sha256_file(shards[1]))
    real_statistics_row = validate.statistics_row

    def statistics_row(name: str, *args):  # type: ignore[no-untyped-def]
        if name == victim:
            raise ValueError("a table this suite cannot take")
        return real_statistics_row(name, *args)

    monkeypatch.setattr(validate, "statistics_row", statistics_row)
    with pytest.raises(ValueError, match="a table this suite cannot take"):
        validate_pending(settings)
    with Ledger(settings.ledger_path) as ledger:
        assert ledger.with_status(QUARANTINED) == []
        assert {record.name for record in ledger.with_status("raw")} >= {victim}
    assert not (settings.quarantine_dir / victim).exists()

    monkeypatch.setattr(validate, "statistics_row", real_statistics_row)
    verdicts = validate_pending(settings)
    assert verdicts.quarantined == []
    with Ledger(settings.ledger_path) as ledger:
        assert len(ledger.with_status("accepted")) == 3 and ledger.with_status("raw") == []


def test_shards_judged_together_get_the_verdicts_of_one_after_another(
    tmp_path: Path, settings: Settings
) -> None:
    """Within one run the summary suite of a shard counts the objids of the shards before it; when one of
    those is refused later (here for a NaN pixel, found by the row-wise suite), the ones after it that
    shared its objids are judged again without it."""
    landing = tmp_path / "landing"
    refused = write_fake_shard(landing / "a-nan-pixel.h5", ROWS, seed=1, objid_start=1000)
    with h5py.File(refused, "r+") as handle:
        handle["images"][3, 2, 10, 10] = np.nan
    same_ids = write_fake_shard(landing / "b-same-objids.h5", ROWS, seed=2, objid_start=1000)
    accepted = write_fake_shard(landing / "c-good.h5", ROWS, seed=3, objid_start=5000)
    duplicate = write_fake_shard(landing / "d-objids-of-c.h5", ROWS, seed=4, objid_start=5000)
    ingest(landing, settings)

    verdicts = validate_pending(settings)
    names = {
        path.stem.split(".")[0]: store_name(path.name, sha256_file(path))
        for path in (refused, same_ids, accepted, duplicate)
    }
    assert sorted(Path(p).name for p in verdicts.accepted) == sorted(
        [names["b-same-objids"], names["c-good"]]
    )
    reasons = {q["shard"]: q["failed"] for q in verdicts.quarantined}
    assert reasons[names["a-nan-pixel"]] == ["expect_column_values_to_be_between(finite_frac_r)"]
    assert reasons[names["d-objids-of-c"]] == ["expect_column_values_to_be_null(objid_accepted_in)"]
