"""The simulator end to end on small samples: determinism, format, physics measured from the cutouts."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from astrospect.cli import app
from astrospect.data.photometry import aperture_flux, colour_features
from astrospect.data.shards import inspect_shard
from astrospect.simulate import passed, render_report, synth_check, synthesize
from astrospect.simulate.catalogue import measure_catalogue, real_catalogue
from astrospect.simulate.check import (
    KNN_RELATIVE_TOLERANCE,
    knn_sigma_mad,
)
from astrospect.simulate.render import sdss_camera
from astrospect.simulate.selection import LRG_R_LIMIT, R_BRIGHT_LIMIT, R_FAINT_LIMIT, R_SAMPLE_FAINTEST
from astrospect.simulate.targets import query_cut

pytestmark = pytest.mark.data

N_MAIN = 400
N_KNN = 1500
SEED = 11


def _read_all(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Concatenate every shard of a folder: the main datasets and the truth group."""
    main: dict[str, list[np.ndarray]] = {}
    truth: dict[str, list[np.ndarray]] = {}
    for path in sorted(folder.glob("*.h5")):
        with h5py.File(path, "r") as handle:
            for name in ("images", "objid", "specz_redshift", "specz_redshift_err", "ra", "dec", "ebv"):
                main.setdefault(name, []).append(handle[name][()])
            for name in handle["truth"]:
                truth.setdefault(name, []).append(handle["truth"][name][()])
    return {k: np.concatenate(v) for k, v in main.items()}, {k: np.concatenate(v) for k, v in truth.items()}


@pytest.fixture(scope="module")
def main_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sim-main")
    synthesize(folder, N_MAIN, SEED, shard_size=250, workers=1)
    return folder


@pytest.fixture(scope="module")
def lrg_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sim-lrg")
    synthesize(folder, 200, SEED + 1, shard_size=200, lrg_fraction=0.5, workers=1)
    return folder


def test_shards_have_the_real_format(main_sample: Path) -> None:
    paths = sorted(main_sample.glob("*.h5"))
    assert [p.name for p in paths] == [f"sim-s{SEED}-{k:04d}.h5" for k in range(2)]
    infos = [inspect_shard(p) for p in paths]
    assert [info.n for info in infos] == [250, 150]
    assert all(info.size == 32 and info.has_labels for info in infos)
    assert infos[0].attrs["bands"] == "ugriz" and infos[0].attrs["pixel_scale_arcsec"] == pytest.approx(0.396)
    main, truth = _read_all(main_sample)
    assert main["images"].shape == (N_MAIN, 5, 32, 32) and main["images"].dtype == np.float32
    assert np.isfinite(main["images"]).all()
    assert len(np.unique(main["objid"])) == N_MAIN and main["objid"].dtype == np.int64
    assert (main["specz_redshift_err"] > 0).all()
    assert np.abs(main["specz_redshift"] - truth["redshift"]).max() < 0.002  # spec-z errors are ~1e-4
    assert (truth["seed"] == SEED).all()
    np.testing.assert_array_equal(truth["index"], np.arange(N_MAIN))
    for name in ("mag_u", "mag_z", "bulge_fraction", "galaxy_type", "bulge_hlr_arcsec", "disk_hlr_arcsec"):
        assert truth[name].shape == (N_MAIN,)
    assert set(np.unique(truth["galaxy_type"])) <= {0, 1, 2, 3, 4}
    assert main["ebv"].dtype == np.float32 and (main["ebv"] > 0).all()
    np.testing.assert_allclose(main["ebv"], truth["ebv"], rtol=1e-6)


def test_same_seed_gives_identical_pixels_whatever_the_workers_and_shard_size(
    main_sample: Path, tmp_path: Path
) -> None:
    synthesize(tmp_path, 150, SEED, shard_size=70, workers=2)  # straddles blocks and the reference's shards
    again, truth_again = _read_all(tmp_path)
    reference, truth = _read_all(main_sample)
    np.testing.assert_array_equal(again["images"], reference["images"][:150])
    np.testing.assert_array_equal(again["objid"], reference["objid"][:150])
    np.testing.assert_array_equal(again["specz_redshift"], reference["specz_redshift"][:150])
    np.testing.assert_array_equal(truth_again["mag_r"], truth["mag_r"][:150])
    np.testing.assert_array_equal(again["ebv"], reference["ebv"][:150])


def test_another_seed_gives_other_galaxies_and_ids(main_sample: Path, tmp_path: Path) -> None:
    synthesize(tmp_path, 50, SEED + 100, workers=1)
    other, _ = _read_all(tmp_path)
    reference, _ = _read_all(main_sample)
    assert not set(other["objid"]) & set(reference["objid"])
    assert not np.allclose(other["images"], reference["images"][:50])


def test_existing_shards_are_never_overwritten(main_sample: Path) -> None:
    before = (main_sample / f"sim-s{SEED}-0000.h5").read_bytes()
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        synthesize(main_sample, 10, SEED, workers=1)
    assert (main_sample / f"sim-s{SEED}-0000.h5").read_bytes() == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be"),
        ({"seed": -1}, "seed must be"),
        ({"lrg_fraction": 1.5}, "lrg_fraction"),
        ({"shard_size": 0}, "shard_size"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict[str, float], message: str) -> None:
    arguments = {"n": 10, "seed": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        synthesize(tmp_path, **arguments)  # type: ignore[arg-type]


def test_magnitude_limits_hold_on_true_r(main_sample: Path, lrg_sample: Path) -> None:
    """Main-sample galaxies to 17.77 and, as in the calibration catalogue (5.3%), a few of its other
    target classes fainter, to the query's 20; the LRG tail to its own 19.5."""
    _, truth = _read_all(main_sample)
    assert truth["mag_r"].max() <= R_SAMPLE_FAINTEST + 1e-6
    assert truth["mag_r"].min() >= R_BRIGHT_LIMIT - 1e-6
    assert 0.01 < (truth["mag_r"] > R_FAINT_LIMIT).mean() < 0.12
    _, lrg_truth = _read_all(lrg_sample)
    lrg = lrg_truth["is_lrg"].astype(bool)
    assert lrg_truth["mag_r"][~lrg].max() <= R_SAMPLE_FAINTEST + 1e-6
    assert lrg_truth["mag_r"][lrg].max() <= LRG_R_LIMIT + 1e-6
    assert lrg_truth["mag_r"][lrg].max() > R_FAINT_LIMIT  # the LRG tail goes fainter than the main sample


def test_lrg_tail_reaches_beyond_z_04_only_when_asked(main_sample: Path, lrg_sample: Path) -> None:
    _, truth = _read_all(main_sample)
    assert (truth["redshift"] > 0.4).mean() <= 0.005  # real SDSS main sample: 0.13%
    _, lrg_truth = _read_all(lrg_sample)
    assert 70 <= lrg_truth["is_lrg"].sum() <= 130  # half of 200
    assert (lrg_truth["redshift"] > 0.4).sum() >= 10
    assert lrg_truth["redshift"].max() < 0.66
    check = synth_check(lrg_sample)  # the real figures describe the main sample: the report says so
    assert check.attrs["lrg_fraction"] == pytest.approx(0.5)
    assert "LRG tail" in render_report(check)


def test_measured_colours_redden_with_redshift(main_sample: Path, lrg_sample: Path) -> None:
    """From the cutouts (aperture luptitudes), not the truth table: the 4000 A break moving into r."""
    main, _ = _read_all(main_sample)
    features = colour_features(np.transpose(main["images"], (0, 2, 3, 1)))
    z = main["specz_redshift"]
    g_r, r_i = features[:, 1], features[:, 2]
    low, mid, high = z < 0.045, (z > 0.06) & (z < 0.1), z > 0.12
    assert min(low.sum(), mid.sum(), high.sum()) >= 50
    assert np.median(g_r[low]) + 0.1 < np.median(g_r[mid]) < np.median(g_r[high])
    assert np.median(r_i[low]) + 0.05 < np.median(r_i[high])
    # The LRG tail: red galaxies at z ~ 0.4 have g-r far redder than anything nearby.
    lrg, lrg_truth = _read_all(lrg_sample)
    lrg_features = colour_features(np.transpose(lrg["images"], (0, 2, 3, 1)))
    far_lrg = lrg_truth["is_lrg"].astype(bool) & (lrg_truth["redshift"] > 0.35)
    assert np.median(lrg_features[far_lrg, 1]) > np.percentile(g_r[low], 95) + 0.3


def test_u_and_z_are_the_noisiest_bands(main_sample: Path) -> None:
    main, truth = _read_all(main_sample)
    images = main["images"]
    # Sky noise from the outer rows of small, distant, clean stamps; differences of neighbouring pixels
    # cancel what smooth galaxy light remains there (the difference of two has sqrt(2) times the noise).
    clean = (truth["flags"] == 0) & (truth["redshift"] > 0.08)
    rows = np.concatenate([images[clean][:, :, :3, :], images[clean][:, :, -3:, :]], axis=2)
    differences = np.diff(rows, axis=3).transpose(1, 0, 2, 3).reshape(5, -1)
    sky_sigma = (
        1.4826
        * np.median(np.abs(differences - np.median(differences, axis=1, keepdims=True)), axis=1)
        / np.sqrt(2)
    )
    np.testing.assert_allclose(sky_sigma, sdss_camera().sky_sigma_nanomaggies, rtol=0.1)
    assert np.argmax(sky_sigma) == 4  # z: bright OH sky, low quantum efficiency
    # Signal-to-noise of the galaxy in the colour aperture: u and z are clearly the worst bands.
    flux = aperture_flux(np.transpose(images[truth["flags"] == 0], (0, 2, 3, 1)), 2.0)
    aperture_pixels = np.pi * (2.0 / 0.396) ** 2
    snr = np.median(flux / (sky_sigma * np.sqrt(aperture_pixels)), axis=0)
    assert set(np.argsort(snr)[:2]) == {0, 4}, f"median S/N per band ugriz: {snr}"


def test_angular_size_shrinks_and_bulges_follow_red_colours(main_sample: Path) -> None:
    _, truth = _read_all(main_sample)
    z = truth["redshift"]
    size = np.maximum(truth["disk_hlr_arcsec"], truth["bulge_hlr_arcsec"])
    # At one luminosity, angular size follows 1 / D_A: D_A(0.12) / D_A(0.04) is ~2.7 in Planck18.
    typical = (truth["abs_mag_r"] > -21.8) & (truth["abs_mag_r"] < -20.8)
    assert np.median(size[typical & (z < 0.05)]) > 1.5 * np.median(size[typical & (z > 0.11)])
    red = truth["colour_score"] > 0.5
    blue = truth["colour_score"] < -0.5
    assert np.median(truth["bulge_fraction"][red]) > np.median(truth["bulge_fraction"][blue]) + 0.3


def test_synth_check_takes_the_total_r_from_the_truth_and_the_colours_from_the_cutouts(
    main_sample: Path,
) -> None:
    """A 12.7" cutout does not hold a galaxy's wings, so the total r (which the query cuts on) is the truth's
    where the shards carry it; the colours stay measured from the pixels."""
    catalogue = measure_catalogue(main_sample)
    _, truth = _read_all(main_sample)
    np.testing.assert_allclose(catalogue["r"], truth["mag_r"], atol=1e-4)
    measured_minus_true = catalogue["g-r"] - (truth["mag_g"] - truth["mag_r"])
    assert np.median(np.abs(measured_minus_true)) > 0.005  # measured with noise, not copied from the truth
    assert np.abs(np.median(measured_minus_true)) < 0.02  # and PSF-corrected: no colour bias of note


def test_cli_synth_and_synth_check(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        app, ["synth", "--out", str(out), "--n", "40", "--seed", "5", "--shard-size", "25", "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.h5")) == ["sim-s5-0000.h5", "sim-s5-0001.h5"]
    csv = tmp_path / "check.csv"
    result = runner.invoke(app, ["synth-check", "--data", str(out), "--out", str(csv)])
    table = synth_check(out)
    assert result.exit_code == (0 if passed(table) else 1)
    assert "median offsets" in result.output and "judged checks pass" in result.output
    assert csv.read_text().splitlines()[0].startswith("scope,quantity,statistic,simulated,real,offset")


@pytest.fixture(scope="module")
def knn_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sim-knn")
    synthesize(folder, N_KNN, SEED + 2, shard_size=N_KNN, workers=2)
    return folder


def test_colour_knn_on_simulated_galaxies_is_not_more_precise_than_on_real_ones(knn_sample: Path) -> None:
    """Measured from the cutouts and cut like the real sample: a 20-NN on the four colours must not beat the
    same regressor on real SDSS galaxies at the same training size by more than the 10% band allows
    (each side averaged over 5 random splits: one split of ~900 galaxies scatters by ~10%)."""
    catalogue = measure_catalogue(knn_sample)
    sim = catalogue[query_cut(catalogue[list("ugriz")].to_numpy(), catalogue["redshift"].to_numpy())]
    n_test = len(sim) // 3
    n_train = len(sim) - n_test
    real_galaxies = real_catalogue()
    simulated = np.mean([knn_sigma_mad(sim, n_train, n_test, seed) for seed in range(5)])
    real = np.mean([knn_sigma_mad(real_galaxies, n_train, n_test, seed) for seed in range(5)])
    assert simulated >= (1 - KNN_RELATIVE_TOLERANCE) * real, (simulated, real, n_train)
