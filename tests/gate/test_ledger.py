"""The ledger: what it records about shards, and that it never loses or mixes them up."""

from __future__ import annotations

import fcntl
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from astrospect.gate.ledger import ACCEPTED, QUARANTINED, RAW, RELEASED, Ledger, gate_lock
from astrospect.settings import load_settings

pytestmark = pytest.mark.unit

SHA_A = "a" * 64
SHA_B = "b" * 64


def _add(
    ledger: Ledger, sha: str, name: str, source: str = "s3://landing/in/x.h5", rows: int | None = 3
) -> None:
    ledger.add_shard(sha256=sha, name=name, source=source, fingerprint="10:etag", size=10, rows=rows)


def test_add_shard_records_source_size_rows_and_sighting(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        _add(ledger, SHA_A, "x.aaaaaaaaaaaa.h5")
        record = ledger.get(SHA_A)
        assert record is not None
        assert (record.name, record.source, record.size, record.rows, record.status) == (
            "x.aaaaaaaaaaaa.h5",
            "s3://landing/in/x.h5",
            10,
            3,
            RAW,
        )
        assert ledger.sighting("s3://landing/in/x.h5", "10:etag") == SHA_A
        assert ledger.sighting("s3://landing/in/x.h5", "11:other-etag") is None
        assert [event["event"] for event in ledger.events(SHA_A)] == ["ingested"]


def test_same_content_cannot_be_recorded_twice(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        _add(ledger, SHA_A, "x.aaaaaaaaaaaa.h5")
        with pytest.raises(sqlite3.IntegrityError):
            _add(ledger, SHA_A, "y.aaaaaaaaaaaa.h5")


def test_find_by_store_name_sha_prefix_or_original_name(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        _add(ledger, SHA_A, "x.aaaaaaaaaaaa.h5", source="/landing/x.h5")
        _add(ledger, SHA_B, "x.bbbbbbbbbbbb.h5", source="/landing/again/x.h5")
        assert ledger.find("x.aaaaaaaaaaaa.h5").sha256 == SHA_A
        assert ledger.find("bbbbbbbb").sha256 == SHA_B
        with pytest.raises(KeyError, match="ambiguous"):
            ledger.find("x.h5")  # two versions of the same original name
        with pytest.raises(KeyError, match="no such shard"):
            ledger.find("nothing.h5")


def test_accept_stores_objids_and_magnitudes_and_finds_owners(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        _add(ledger, SHA_A, "a.h5")
        mags = np.arange(15, dtype=np.float64).reshape(3, 5)
        ledger.mark_accepted(SHA_A, 3, np.array([7, 8, 9]), mags, "passed")
        assert ledger.accepted_owner(np.array([8, 9, 10])) == {8: "a.h5", 9: "a.h5"}
        np.testing.assert_array_equal(ledger.accepted_magnitudes(), mags)
        assert [r.name for r in ledger.with_status(ACCEPTED)] == ["a.h5"]
        with pytest.raises(ValueError, match="do not match"):
            ledger.mark_accepted(SHA_A, 3, np.array([1, 2]), mags, "wrong shape")


def test_quarantine_then_release_keeps_the_history(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        _add(ledger, SHA_A, "a.h5", rows=None)
        ledger.mark_quarantined(
            SHA_A, 2, "expect_column_values_to_be_between(redshift): 1 row(s)", "/q/a.html"
        )
        held = ledger.get(SHA_A)
        assert (
            held is not None and held.status == QUARANTINED and held.rows == 2 and held.report == "/q/a.html"
        )
        ledger.mark_released(SHA_A, 2, np.array([1, 2]), np.zeros((2, 5)), "z = 2.1 is a real quasar host")
        released = ledger.get(SHA_A)
        assert released is not None and released.status == RELEASED
        assert released.reason == "z = 2.1 is a real quasar host"
        events = ledger.events(SHA_A)
        assert [e["event"] for e in events] == ["ingested", "quarantined", "released"]
        assert "quasar host" in events[-1]["detail"]


def test_ingest_order_is_the_validation_order(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        _add(ledger, SHA_B, "b.h5")
        _add(ledger, SHA_A, "a.h5")
        assert [r.name for r in ledger.with_status(RAW)] == ["b.h5", "a.h5"]


def test_gate_lock_is_exclusive(tmp_path: Path) -> None:
    settings = load_settings().replace(home=tmp_path)
    with gate_lock(settings), open(tmp_path / ".gate.lock", "a+b") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(tmp_path / ".gate.lock", "a+b") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again once the holder is done
