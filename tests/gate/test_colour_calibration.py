"""The colour-calibration check (issue 21), through the real gate: a 0.1 mag zero-point error in any one band
is quarantined with that band and its offset in the report; clean shards of an unusual galaxy mix (all red,
all blue) are accepted."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from astrospect.data.shards import Cutouts, read_shard, write_shard
from astrospect.gate.colour_calibration import COLOURS, ColourReference, band_direction, colour_reference
from astrospect.gate.ingest import ingest
from astrospect.gate.validate import ValidationResult, validate_pending
from astrospect.settings import BANDS, Settings, load_settings
from astrospect.simulate.conditions import ObservingConditions

pytestmark = pytest.mark.data

GALAXIES = 400  # enough for u (the noisiest colour) at 0.1 mag; a few seconds to render
OFFSET_MAG = 0.1


def _write(path: Path, cutouts: Cutouts, objid_offset: int) -> Path:
    assert cutouts.redshift is not None and cutouts.redshift_err is not None
    return write_shard(
        path,
        np.ascontiguousarray(cutouts.images.transpose(0, 3, 1, 2)),
        cutouts.objid + objid_offset,
        cutouts.redshift,
        cutouts.redshift_err,
    )


def _subset(cutouts: Cutouts, keep: np.ndarray) -> Cutouts:
    assert cutouts.redshift is not None and cutouts.redshift_err is not None
    return replace(
        cutouts,
        images=cutouts.images[keep],
        objid=cutouts.objid[keep],
        redshift=cutouts.redshift[keep],
        redshift_err=cutouts.redshift_err[keep],
    )


def _with_offset(cutouts: Cutouts, band: str) -> Cutouts:
    """The shard seen through a zero point off by OFFSET_MAG in ``band``: the simulator's own step."""
    night = ObservingConditions.with_offsets({band: OFFSET_MAG})
    band_first = night.calibrate(np.ascontiguousarray(cutouts.images.transpose(0, 3, 1, 2)))
    return replace(cutouts, images=np.ascontiguousarray(band_first.transpose(0, 2, 3, 1)))


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, ValidationResult]:
    """One night through ingest and validate: the clean shard, its red and blue thirds (by the simulator's
    true colour score: what the galaxies are, not their noisy measured colours), and the clean shard with a
    0.1 mag zero-point error in each band. Each shard has its own objids. (The LRG tail is left out of the
    red third: a shard of LRGs, faint in u at z ~ 0.4, fails the flux reference's magnitude ranges, which
    this check does not change.)"""
    from astrospect.simulate import synthesize

    root = tmp_path_factory.mktemp("colour-gate")
    [rendered] = synthesize(
        root / "sim", GALAXIES, seed=21, shard_size=GALAXIES, lrg_fraction=0.05, workers=1
    )
    clean = read_shard(rendered)
    with h5py.File(rendered, "r") as handle:
        score = handle["truth/colour_score"][()]  # NaN for the LRG tail
    low, high = np.nanpercentile(score, [100 / 3, 200 / 3])
    landing = root / "landing"
    landing.mkdir()
    _write(landing / "clean.h5", clean, 0)
    _write(landing / "all-red.h5", _subset(clean, score > high), 10_000_000)
    _write(landing / "all-blue.h5", _subset(clean, score < low), 20_000_000)
    for k, band in enumerate(BANDS):
        _write(landing / f"offset-{band}.h5", _with_offset(clean, band), 100_000_000 * (k + 1))
    settings = load_settings().replace(home=root / "home")
    ingest(landing, settings)
    return settings, validate_pending(settings)


def _accepted(result: ValidationResult) -> set[str]:
    return {Path(path).name.split(".")[0] for path in result.accepted}


def _quarantined(result: ValidationResult) -> dict[str, dict[str, Any]]:
    return {item["shard"].split(".")[0]: item for item in result.quarantined}


def test_clean_shards_of_any_galaxy_mix_are_accepted(judged: tuple[Settings, ValidationResult]) -> None:
    _, result = judged
    assert {"clean", "all-red", "all-blue"} <= _accepted(result), _quarantined(result)


@pytest.mark.parametrize("band", BANDS)
def test_a_tenth_of_a_magnitude_in_one_band_is_quarantined_naming_the_band(
    judged: tuple[Settings, ValidationResult], band: str
) -> None:
    _, result = judged
    verdict = _quarantined(result).get(f"offset-{band}")
    assert verdict is not None, f"offset in {band} accepted"
    # A colour holding the band fails (the others may too: each colour's prediction uses the other three).
    colours = {label.split("colour_shift_sigma_")[1].rstrip(")") for label in verdict["failed"]}
    assert any(band in colour.split("_") for colour in colours), verdict["failed"]
    assert f"colour calibration: zero point of {band} off by +0." in verdict["reason"], verdict["reason"]

    # The JSON report: which band, how much, how sure; the HTML report says it in words.
    report = Path(verdict["report"])
    payload = json.loads(report.with_name(report.name.replace(".report.html", ".result.json")).read_text())
    estimate = payload["colour_calibration"]["estimate"]
    assert estimate["band"] == band
    assert 0 < estimate["uncertainty_mag"] < 0.03
    assert abs(estimate["offset_mag"] - OFFSET_MAG) < max(3 * estimate["uncertainty_mag"], 0.01)
    assert estimate["chi2"] < estimate["chi2_none"] / 10  # one band explains the colours
    assert f"zero point of {band} off by" in report.read_text()


def test_a_zero_point_moves_its_two_colours_in_opposite_directions() -> None:
    assert band_direction("r").tolist() == [0.0, -1.0, 1.0, 0.0]  # g-r bluer, r-i redder when r is faint
    assert band_direction("u").tolist() == [1.0, 0.0, 0.0, 0.0]
    assert band_direction("z").tolist() == [0.0, 0.0, 0.0, -1.0]


def test_the_shipped_reference_loads_and_a_broken_one_names_its_field(tmp_path: Path) -> None:
    shipped = colour_reference(load_settings().expectations_dir)
    assert set(shipped.mix_floor) == set(COLOURS)
    assert np.all(np.linalg.eigvalsh(shipped.galaxy_covariance) > 0)
    spec = json.loads((load_settings().expectations_dir / "colour_reference.json").read_text())
    del spec["scatter"]["mix_floor"]["g-r"]
    broken = tmp_path / "colour_reference.json"
    broken.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=r"colour_reference.json: field 'scatter.mix_floor.g-r' is missing"):
        ColourReference.load(broken)
