"""Pure pieces of the simulator: spectra, population, detector model, synth-check's judgement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from astrospect.simulate import population as pop
from astrospect.simulate import spectra
from astrospect.simulate.check import catalogue_from_magnitudes, compare, passed
from astrospect.simulate.render import _bleed, draw_conditions, sdss_camera
from astrospect.simulate.synth import simulated_objid
from astrospect.simulate.targets import COLOURS, load_calibration_galaxies, load_targets


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


def test_lines_split_off_the_templates_and_scale_alone() -> None:
    wave, flux = spectra._read_templates("kcorrect-default-v4.fits")
    continuum, lines = spectra.split_lines(wave, flux)
    np.testing.assert_allclose(continuum + lines, flux)
    assert (lines >= 0).all() and lines.sum() > 0
    grid = spectra.template_grid()
    np.testing.assert_allclose(grid.lines[:, :, :, spectra.LRG_TEMPLATE], 0.0)
    mix = np.array([[0.0, 1.0, 0.0, 0.0, 0.0, 0.0]])  # a star-forming template: H-alpha in r at z = 0.02
    plain = grid.observed_maggies([0.02], mix, [0.0])
    strong = grid.observed_maggies([0.02], mix, [0.0], line_factor=[3.0])
    assert strong[0, spectra.R_BAND] > 1.05 * plain[0, spectra.R_BAND]


def test_rest_frame_dust_reddens_and_dims_by_its_r_attenuation() -> None:
    grid = spectra.template_grid()
    mix = np.full((1, spectra.N_TEMPLATES), 1.0)
    clear = grid.observed_maggies([0.0], mix, [0.0])
    dusty = grid.observed_maggies([0.0], mix, [0.0], dust=[0.3])
    dimming = -2.5 * np.log10(dusty / clear)[0]
    assert dimming[spectra.R_BAND] == pytest.approx(0.3, abs=0.02)
    assert np.all(np.diff(dimming) < 0)  # bluer bands lose more
    with pytest.raises(ValueError, match="attenuation outside"):
        grid.design_matrix([0.1], dust=[5.0])


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
    # Bulges are redder than their disks (colour gradients), measured in observed g-r; how much is capped
    # where the disk's mix reaches its bluest template.
    bulge_g_r = -2.5 * np.log10(first.bulge_flux[:, 1] / first.bulge_flux[:, 2])
    disk_g_r = -2.5 * np.log10(first.disk_flux[:, 1] / first.disk_flux[:, 2])
    assert np.median(bulge_g_r - disk_g_r) > 0.02 and np.percentile(bulge_g_r - disk_g_r, 84) > 0.1
    assert not first.is_lrg.any()
    # Line strength varies at fixed continuum: lognormal with mean 1.
    assert first.line_factor.mean() == pytest.approx(1.0, abs=0.05)
    assert 0.15 < np.std(np.log10(first.line_factor)) < 0.25


def test_spectra_have_more_than_one_degree_of_freedom() -> None:
    """At fixed redshift and r the colours still vary in more than one direction (the old simulator had
    one colour score): the colour covariance has three clearly non-zero eigenvalues."""
    model = pop.population_model()
    z = np.full(4000, 0.08)
    log_ratios = model.conditional.sample(np.random.default_rng(5), z, np.full(4000, 17.0))
    shares = pop.log_ratios_to_shares(log_ratios, model.mixture.log_ratio_floor)
    mixes = pop.shares_to_mix(model.grid, shares)
    colours = spectra.colours_of(model.grid.observed_maggies(z, mixes, np.zeros(len(z))))
    eigen = np.sort(np.linalg.eigvalsh(np.cov(colours.T)))[::-1]
    assert eigen[2] > 1e-3 * eigen[0], eigen


def test_inclined_disks_are_redder_and_dimmer() -> None:
    """Edge-on disks are redder than face-on ones (the sign of Masters et al. 2010's trend), and a disk's
    r-band dimming follows Unterborn & Ryden (2008)'s 1.27 (log10 q)^2."""
    disk, bulge = pop.inclination_dust(np.array([0.0, 1.0]))
    assert disk[0] == pytest.approx(1.27 * np.log10(pop.DISK_THICKNESS_Q0) ** 2) and disk[1] == 0.0
    assert 0 < bulge[0] < disk[0]
    model = pop.population_model()
    galaxies = pop.draw_population(model, np.random.default_rng(6), 6000)
    disks = galaxies.bulge_fraction < 0.5
    mags = galaxies.magnitudes[disks]
    z_slice = np.floor(galaxies.redshift[disks] / 0.01)
    q = galaxies.disk_q[disks]
    for first, second in ((1, 2), (0, 2)):  # g-r, u-r
        colour = pd.Series(mags[:, first] - mags[:, second])
        relative = (colour - colour.groupby(z_slice).transform("median")).to_numpy()
        trend = np.median(relative[q < np.quantile(q, 0.25)]) - np.median(relative[q > np.quantile(q, 0.75)])
        assert trend > 0.03, (first, second, trend)


def test_galactic_extinction_is_like_sfd() -> None:
    galaxies = pop.draw_population(pop.population_model(), np.random.default_rng(7), 4000)
    assert np.median(galaxies.ebv) == pytest.approx(0.03, abs=0.003)
    assert 0.01 < (galaxies.ebv > 0.1).mean() < 0.1


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


def _real_as_catalogue() -> pd.DataFrame:
    real = load_calibration_galaxies()
    return catalogue_from_magnitudes(real[list("ugriz")].to_numpy(), real["redshift"].to_numpy())


def test_calibration_galaxies_are_inside_the_query_cut() -> None:
    real = load_calibration_galaxies()
    assert 20_000 < len(real) <= 20_737
    assert (real[list("ugriz")].to_numpy() < 20).all() and real["redshift"].between(0, 0.3).all()


def test_synth_check_passes_the_real_galaxies_against_themselves() -> None:
    table = compare(_real_as_catalogue())
    judged = table[table["judged"]]
    assert set(judged["quantity"]) >= {"u-g", "redshift", "r", "classifier AUC", "20-NN sigma_MAD"}
    assert passed(table)
    medians = judged[judged["quantity"].isin(COLOURS)]
    assert medians["offset"].abs().max() == pytest.approx(0.0, abs=1e-9)
    # The same galaxies on both sides cannot be told apart (duplicates across folds push AUC below 0.5).
    assert table.loc[table["quantity"] == "classifier AUC", "simulated"].iloc[0] < 0.55
    # No truth bulge fractions: the inclination trend is shown as NaN, not judged.
    assert not table.loc[table["quantity"].str.startswith("inclination"), "judged"].any()


def test_synth_check_fails_an_offset_colour() -> None:
    catalogue = _real_as_catalogue()
    in_bin = (catalogue["redshift"] >= 0.06) & (catalogue["redshift"] < 0.09)
    catalogue.loc[in_bin, "g-r"] += 0.15
    table = compare(catalogue)
    failed = table[table["judged"] & ~table["passed"]]
    assert not passed(table)
    assert ["0.06-0.09", "g-r", "p50"] in failed[["scope", "quantity", "statistic"]].values.tolist()
    assert table.loc[table["quantity"] == "classifier AUC", "simulated"].iloc[0] > 0.55
