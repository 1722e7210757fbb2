"""Pure pieces of the simulator: spectra, population, detector model, synth-check's judgement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from astrospect.simulate import population as pop
from astrospect.simulate import spectra
from astrospect.simulate.calibrate import MAX_CORRECTION_MAG, updated_corrections
from astrospect.simulate.check import compare, passed
from astrospect.simulate.render import _bleed, draw_conditions, sdss_camera
from astrospect.simulate.synth import simulated_objid
from astrospect.simulate.targets import COLOURS, load_targets


def test_targets_parse_bins_and_whole_sample_quantiles() -> None:
    targets = load_targets()
    assert len(targets.bins) == 8
    assert targets.bins["n"].sum() == 41411
    assert targets.redshift_quantiles["p50"] == pytest.approx(0.083)
    assert targets.r_quantiles["p50"] == pytest.approx(16.93)
    assert targets.fraction_above[0.4] == pytest.approx(0.0013)


def test_sdss_conversion_inverts_kcorrects_ab_correction() -> None:
    import kcorrect.utils

    sdss = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(
        kcorrect.utils.sdss_ab_correct(maggies=spectra.ab_to_sdss(sdss)), sdss, rtol=1e-6
    )


def test_4000_angstrom_break_reddens_g_r_of_an_old_population() -> None:
    grid = spectra.template_grid()
    lrg = np.zeros((1, spectra.N_TEMPLATES))
    lrg[0, spectra.LRG_TEMPLATE] = 1.0
    z = np.linspace(0.0, 0.4, 9)
    colours = spectra.colours_of(grid.observed_maggies(z, np.repeat(lrg, len(z), axis=0), np.zeros(len(z))))
    g_r = colours[:, 1]
    assert np.all(np.diff(g_r) > 0), g_r
    assert g_r[-1] - g_r[0] > 0.8  # the break leaves g for r by z ~ 0.4
    assert colours[-1, 2] > colours[0, 2]  # r-i reddens too


def test_template_mix_fit_reproduces_typical_colours() -> None:
    target = np.array([1.58, 0.78, 0.41, 0.29])  # the median SDSS galaxy at z ~ 0.075
    mix = spectra.fit_mix_to_colours(0.075, target)
    assert (mix >= 0).all() and mix[spectra.LRG_TEMPLATE] == 0
    grid = spectra.template_grid()
    assert grid.rest_frame_r(mix[None])[0] == pytest.approx(1.0)
    colours = spectra.colours_of(grid.observed_maggies([0.075], mix[None], [0.0]))[0]
    np.testing.assert_allclose(colours, target, atol=0.01)


def test_detector_throughput_follows_the_response_curves() -> None:
    electrons = spectra.detector_photometry().electrons_per_nanomaggy
    assert 500 < electrons[2] < 2000  # r: ~920 e- per nanomaggy in 53.9 s
    assert electrons[4] < electrons[0] < electrons[3] < min(electrons[1], electrons[2])
    sigma = sdss_camera().sky_sigma_nanomaggies
    assert np.argmax(sigma) == 4 and np.argmin(sigma) == 1


def test_seeing_is_worst_in_u() -> None:
    conditions = draw_conditions(np.random.default_rng(0), 2000, sdss_camera())
    median_fwhm = np.median(conditions.psf_fwhm_arcsec, axis=0)
    assert np.argmax(median_fwhm) == 0
    assert 1.3 < median_fwhm[2] < 1.5


def test_angular_size_and_distance_follow_the_cosmology() -> None:
    z = np.array([0.02, 0.1, 0.3])
    assert np.all(np.diff(pop.arcsec_per_kpc(z)) < 0)
    assert np.all(np.diff(pop.distance_modulus(z)) > 0)
    assert pop.distance_modulus(np.array([0.1]))[0] == pytest.approx(38.3, abs=0.1)


def test_completeness_rolls_off_toward_the_limit() -> None:
    values = pop.completeness([14.0, pop.COMPLETENESS_HALF_MAG, pop.R_FAINT_LIMIT])
    assert values[0] > 0.99 and values[1] == pytest.approx(0.5) and values[2] < values[1]


def test_population_is_deterministic_and_physical() -> None:
    model = pop.population_model()
    first = pop.draw_population(model, np.random.default_rng(3), 3000)
    again = pop.draw_population(model, np.random.default_rng(3), 3000)
    np.testing.assert_array_equal(first.total_flux, again.total_flux)
    r = first.magnitudes[:, 2]
    assert r.max() <= pop.R_FAINT_LIMIT + 1e-9 and r.min() >= pop.R_BRIGHT_LIMIT - 1e-9
    assert np.corrcoef(first.colour_score, first.bulge_fraction)[0, 1] > 0.5
    assert (first.bulge_mix >= 0).all() and (first.disk_mix >= 0).all()
    # Bulges are redder than their disks (colour gradients), measured in observed g-r.
    bulge_g_r = -2.5 * np.log10(first.bulge_flux[:, 1] / first.bulge_flux[:, 2])
    disk_g_r = -2.5 * np.log10(first.disk_flux[:, 1] / first.disk_flux[:, 2])
    assert np.median(bulge_g_r - disk_g_r) > 0.05
    assert not first.is_lrg.any()


def test_lrg_population_is_luminous_and_distant() -> None:
    model = pop.population_model()
    lrgs = pop.draw_population(model, np.random.default_rng(4), 1000, lrg_fraction=1.0)
    assert lrgs.is_lrg.all()
    assert np.median(lrgs.abs_mag_r) < -22.0
    assert 0.25 < np.median(lrgs.redshift) < 0.5
    assert lrgs.magnitudes[:, 2].max() <= pop.LRG_R_LIMIT + 1e-9


def test_bleed_caps_pixels_and_keeps_the_charge() -> None:
    pixels = np.zeros((8, 8), dtype=np.float32)
    pixels[4, 3] = 10.0
    bled = _bleed(pixels, 3.0)
    assert bled.max() <= 3.0
    assert bled.sum() == pytest.approx(10.0)
    assert bled[:, 3].sum() == pytest.approx(10.0)  # along the column only


def test_objids_are_unique_across_seeds_and_above_real_sdss_ids() -> None:
    ids = np.concatenate(
        [simulated_objid(seed, np.arange(1000)) for seed in (0, 1, 1_700_000_000, 2**31 - 1)]
    )
    assert len(np.unique(ids)) == 4000 and ids.dtype == np.int64
    assert ids.min() > 2**61  # real SDSS objids are ~1.24e18 < 2^61
    last = simulated_objid(2**31 - 1, np.array([2**31 - 1]))[0]
    assert last == np.iinfo(np.int64).max  # the largest seed and index still fit


def _catalogue_at_real_medians() -> pd.DataFrame:
    """A catalogue whose per-bin colour and r medians equal the real ones, with z at bin centres."""
    rows = []
    for _, real in load_targets().bins.iterrows():
        centre = 0.5 * (real["z_lo"] + real["z_hi"])
        for _ in range(max(3, int(real["n"]) // 40)):
            rows.append({"redshift": centre, **{q: real[f"{q}_p50"] for q in (*COLOURS, "r")}})
    return pd.DataFrame(rows)


def test_synth_check_passes_a_catalogue_on_the_real_medians() -> None:
    table = compare(_catalogue_at_real_medians())
    judged = table[table["judged"]]
    assert len(judged) == 7 * 4 + 3 + 1  # 7 bins with > 500 real galaxies, 3 redshift quantiles, r p50
    assert passed(table)
    assert table.loc[judged.index[:28], "offset"].abs().max() == pytest.approx(0.0, abs=1e-9)


def test_synth_check_fails_an_offset_colour_but_ignores_sparse_bins() -> None:
    catalogue = _catalogue_at_real_medians()
    sparse = catalogue["redshift"] > 0.3
    catalogue.loc[sparse, "u-g"] += 1.0  # 36 real galaxies: shown, not judged
    assert passed(compare(catalogue))
    in_bin = (catalogue["redshift"] > 0.06) & (catalogue["redshift"] < 0.09)
    catalogue.loc[in_bin, "g-r"] += 0.15
    table = compare(catalogue)
    failed = table[table["judged"] & ~table["passed"]]
    assert not passed(table)
    assert failed[["scope", "quantity", "statistic"]].values.tolist() == [["0.06-0.09", "g-r", "p50"]]


def test_calibration_adds_remaining_offsets_and_bounds_them() -> None:
    catalogue = _catalogue_at_real_medians()
    catalogue.loc[catalogue["redshift"] < 0.03, "g-r"] += 0.04
    table = compare(catalogue)
    table.loc[table["n_sim"] < 100, "n_sim"] = 100  # every bin counts here
    current = pd.DataFrame({"g-r_p50": [0.01] + [0.0] * 7, "u-g_p50": [MAX_CORRECTION_MAG] * 8})
    table.loc[(table["quantity"] == "u-g") & (table["statistic"] == "p50"), "offset"] = 0.2
    updated = updated_corrections(table, current)
    assert updated.loc[0, "g-r_p50"] == pytest.approx(0.05)
    assert updated.loc[1, "g-r_p50"] == pytest.approx(0.0)
    assert (updated["u-g_p50"] == MAX_CORRECTION_MAG).all()
