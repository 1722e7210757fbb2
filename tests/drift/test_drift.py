"""Drift on small simulated nights (fixed seeds): the shifted nights drift, a night like the reference does not.

A reference of 1,000 galaxies and nights of 500, simulated once for the module. The shifts are the issue's:
seeing +0.3", a deeper target limit (r < 18.3), a +0.05 mag calibration offset in r. The calibrated night is
the ``same`` night's pixels through ``ObservingConditions.calibrate``, after a check that ``synthesize``
with that knob gives exactly those pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from typer.testing import CliRunner

from astrospect.cli import app
from astrospect.data.photometry import colour_features
from astrospect.data.shards import ShardFormatError, read_shard, write_shard
from astrospect.data.store import sha256_file
from astrospect.drift import DriftReport, WatchedModel, measure_drift
from astrospect.drift.features import shard_features
from astrospect.faults import EnvironmentFault
from astrospect.gate.snapshot import Snapshot
from astrospect.settings import Settings, load_settings
from astrospect.simulate import synthesize
from astrospect.simulate.conditions import ObservingConditions
from harness.ports import free_port

pytestmark = pytest.mark.data

REFERENCE_N, NIGHT_N = 1000, 500
CALIBRATION = ObservingConditions.with_offsets({"r": 0.05})


@dataclass(frozen=True)
class Nights:
    reference: list[Path]
    same: list[Path]
    seeing: list[Path]
    deeper: list[Path]
    calibrated: list[Path]


def simulate(folder: Path, n: int, seed: int, night: ObservingConditions | None = None) -> list[Path]:
    return synthesize(folder, n, seed, shard_size=500, lrg_fraction=0.05, workers=1, night=night)


def calibrated_copy(shard: Path, folder: Path, night: ObservingConditions) -> Path:
    cutouts = read_shard(shard)
    assert cutouts.redshift is not None and cutouts.redshift_err is not None
    band_first = np.ascontiguousarray(cutouts.images.transpose(0, 3, 1, 2))
    folder.mkdir(parents=True, exist_ok=True)
    return write_shard(
        folder / shard.name,
        night.calibrate(band_first),
        cutouts.objid,
        cutouts.redshift,
        cutouts.redshift_err,
    )


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Nights:
    root = tmp_path_factory.mktemp("nights")
    same = simulate(root / "same", NIGHT_N, 12)
    return Nights(
        reference=simulate(root / "reference", REFERENCE_N, 11),
        same=same,
        seeing=simulate(root / "seeing", NIGHT_N, 13, ObservingConditions(seeing_fwhm_arcsec=1.70)),
        deeper=simulate(root / "deeper", NIGHT_N, 14, ObservingConditions(r_limit_mag=18.3)),
        calibrated=[calibrated_copy(shard, root / "calibrated", CALIBRATION) for shard in same],
    )


def snapshot_of(shards: list[Path], version: str) -> Snapshot:
    rows = [len(read_shard(shard).objid) for shard in shards]
    return Snapshot(
        version, "", [str(s) for s in shards], [sha256_file(s) for s in shards], rows, sum(rows), ""
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings().replace(home=tmp_path / "home")


def drift(
    settings: Settings, nights: Nights, tonight: list[Path], model: WatchedModel | None = None
) -> DriftReport:
    return measure_drift(settings, tonight, snapshot_of(nights.reference, "reference-v1"), model)


def magnitude_redshift(images: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """A crude photo-z from the total r magnitude (a real function of the pixels): fainter is farther."""
    return np.clip(0.05 * (colour_features(images)[:, 4] - 14.0), 0.0, None)


def test_the_calibration_knob_is_calibrate_applied_to_the_rendered_pixels(tmp_path: Path) -> None:
    plain = read_shard(simulate(tmp_path / "plain", 30, 21)[0])
    offset = read_shard(simulate(tmp_path / "offset", 30, 21, CALIBRATION)[0])
    expected = CALIBRATION.calibrate(np.ascontiguousarray(plain.images.transpose(0, 3, 1, 2)))
    np.testing.assert_array_equal(offset.images, expected.transpose(0, 2, 3, 1))
    ratio = offset.images[..., 2].sum() / plain.images[..., 2].sum()
    assert ratio == pytest.approx(10 ** (-0.4 * 0.05), rel=1e-5)
    np.testing.assert_array_equal(offset.images[..., 1], plain.images[..., 1])  # g untouched


def test_a_night_like_the_reference_does_not_drift(settings: Settings, nights: Nights) -> None:
    report = drift(settings, nights, nights.same)
    assert not report.drifting, report.table()
    assert report.n_tonight == NIGHT_N
    assert report.n_reference == REFERENCE_N
    assert "redshift" in [item.feature for item in report.features]  # labelled nights compare N(z) too


@pytest.mark.parametrize(
    ("night", "expected"),
    [
        ("seeing", {"peak_fraction_r"}),  # the PSF-size proxy
        ("deeper", {"mag_r"}),  # fainter galaxies
        ("calibrated", {"r-i", "noise_r"}),  # r's colours, and its sky noise in calibrated units
    ],
)
def test_each_shifted_night_drifts(
    settings: Settings, nights: Nights, night: str, expected: set[str]
) -> None:
    report = drift(settings, nights, getattr(nights, night))
    assert report.drifting, report.table()
    assert expected <= set(report.drifted_features), report.table()


def test_prediction_drift_compares_the_models_nz_on_both(settings: Settings, nights: Nights) -> None:
    model = WatchedModel("magnitude-z-v1", magnitude_redshift)
    calm = drift(settings, nights, nights.same, model)
    shifted = drift(settings, nights, nights.deeper, model)
    assert calm.prediction is not None and not calm.prediction.drifted
    assert shifted.prediction is not None and shifted.prediction.drifted
    assert shifted.prediction.tonight_median > shifted.prediction.reference_median  # deeper: fainter, farther
    # KS is blind to a monotone map: this model's N(z) drifts exactly as much as the r magnitude does.
    mag_r = next(item for item in shifted.features if item.feature == "mag_r")
    assert shifted.prediction.ks_statistic == pytest.approx(mag_r.ks_statistic, abs=1e-3)
    predicted = shard_features(nights.same[:1], data=False, predict=magnitude_redshift)
    assert list(predicted.columns) == ["z_pred"]
    np.testing.assert_array_equal(predicted["z_pred"], magnitude_redshift(read_shard(nights.same[0]).images))


def test_the_reference_is_computed_once_per_snapshot_and_model(
    settings: Settings, nights: Nights, tmp_path: Path
) -> None:
    model = WatchedModel("magnitude-z-v1", magnitude_redshift)
    first = drift(settings, nights, nights.seeing, model)
    assert first.from_cache == {"features": False, "predictions": False}
    cached = sorted(path.name for path in settings.drift_cache_dir.iterdir())
    assert cached == [
        "reference-v1-features-v1.npz",
        f"reference-v1-predictions-{cached[1].split('predictions-')[1]}",
    ]
    # The reference's shards are gone: a second night must be judged from the cache alone.
    moved = tmp_path / "moved"
    moved.mkdir()
    reference = snapshot_of(nights.reference, "reference-v1")
    for shard in nights.reference:
        os.replace(shard, moved / shard.name)
    try:
        again = measure_drift(settings, nights.seeing, reference, model)
        assert again.from_cache == {"features": True, "predictions": True}
        assert [item.row() for item in again.features] == [item.row() for item in first.features]
        other_model = WatchedModel("magnitude-z-v2", magnitude_redshift)
        with pytest.raises(
            ShardFormatError, match="no such file"
        ):  # another model's predictions need the pixels again
            measure_drift(settings, nights.seeing, reference, other_model)
    finally:
        for shard in nights.reference:
            os.replace(moved / shard.name, shard)
    assert measure_drift(
        settings, nights.seeing, reference, WatchedModel("magnitude-z-v2", magnitude_redshift)
    ).from_cache == {
        "features": True,
        "predictions": False,
    }


def test_astrospect_drift_compares_the_newest_snapshot_with_the_reference(
    nights: Nights, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real gate: ingest, validate (GE) and snapshot the reference, then a seeing night."""
    from astrospect.gate.ingest import ingest
    from astrospect.gate.snapshot import create_snapshot
    from astrospect.gate.validate import validate_pending

    home = tmp_path / "home"
    monkeypatch.setenv("ASTROSPECT_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nothing there: no champion
    settings = load_settings()
    ingest(str(nights.reference[0].parent), settings)
    validate_pending(settings)
    reference = create_snapshot(settings)
    assert len(reference.shards) == len(nights.reference)
    runner = CliRunner()
    nothing_new = runner.invoke(app, ["drift", "--against", reference.version[:12]])
    assert nothing_new.exit_code == 0, nothing_new.output
    assert "nothing to compare" in nothing_new.output

    ingest(str(nights.seeing[0].parent), settings)
    validate_pending(settings)
    tonight = create_snapshot(settings)
    result = runner.invoke(app, ["drift", "--against", reference.version[:12]])
    assert result.exit_code == 0, result.output
    assert "DRIFTING" in result.output and "peak_fraction_r" in result.output
    folder = settings.reports_dir / "drift" / f"{tonight.version[:12]}-vs-{reference.version[:12]}"
    assert (folder / "drift.html").is_file() and (folder / "drift.json").is_file()
    # No reference named and no tracking server to ask for the champion's: a fault, not "no champion".
    no_reference = runner.invoke(app, ["drift"])
    assert no_reference.exit_code != 0 and isinstance(no_reference.exception, EnvironmentFault)
    assert "the MLflow tracking server http://127.0.0.1:" in str(no_reference.exception)
