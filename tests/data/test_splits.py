import numpy as np

from astrospect.data.splits import Split, assign_split, objid_unit_hash, split_mask
import pytest

pytestmark = pytest.mark.unit


def test_split_fractions_are_close_to_80_10_10() -> None:
    objid = np.arange(1_237_650_000_000_000_000, 1_237_650_000_000_000_000 + 100_000, dtype=np.int64)
    splits = assign_split(objid)
    fractions = {name: float(np.mean(splits == name)) for name in ("train", "val", "holdout")}
    assert abs(fractions["train"] - 0.8) < 0.01
    assert abs(fractions["val"] - 0.1) < 0.01
    assert abs(fractions["holdout"] - 0.1) < 0.01


def test_a_galaxy_never_changes_split_as_data_grows() -> None:
    rng = np.random.default_rng(3)
    first_night = rng.integers(0, 2**62, 1000)
    second_night = np.concatenate([rng.integers(0, 2**62, 5000), first_night[::-1]])
    before = dict(zip(first_night.tolist(), assign_split(first_night).tolist(), strict=True))
    after = dict(zip(second_night.tolist(), assign_split(second_night).tolist(), strict=True))
    assert all(after[objid] == split for objid, split in before.items())


def test_hash_values_are_pinned() -> None:
    # Pinned so a refactor cannot silently move galaxies between splits (and leak the holdout).
    assert objid_unit_hash([0, 1, 1_237_648_720_693_755_918]).round(6).tolist() == [
        0.883311,
        0.566562,
        0.784033,
    ]


def test_split_mask_matches_assign_split() -> None:
    objid = np.arange(1000)
    assert np.array_equal(split_mask(objid, Split.HOLDOUT), assign_split(objid) == "holdout")
