"""Pure pieces of the simulator: spectra, population, detector model, synth-check's judgement."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from astrospect.simulate import population as pop
from astrospect.simulate import spectra
from astrospect.simulate.catalogue import catalogue_from_magnitudes
from astrospect.simulate.check import (
    compare,
    measurement_noise,
    noiseless_floor_auc,
    passed,
)
from astrospect.simulate.cosmology import arcsec_per_kpc, distance_modulus
from astrospect.simulate.dust import DISK_THICKNESS_Q0, inclination_dust
from astrospect.simulate.mixture import (
    MIXTURE_VERSION,
    NO_MAGNITUDE_WEIGHT,
    NO_REDSHIFT_WEIGHT,
    ConditionalMixture,
    SpectralMixture,
    load_mixture,
)
from astrospect.simulate.render import _bleed, draw_conditions, sdss_camera
from astrospect.simulate.selection import (
    COMPLETENESS_HALF_MAG,
    LRG_R_LIMIT,
    R_BRIGHT_LIMIT,
    R_FAINT_LIMIT,
    R_SAMPLE_FAINTEST,
    completeness,
)
from astrospect.simulate.synth import simulated_objid
from astrospect.simulate.targets import COLOURS, load_calibration_galaxies, load_targets
from astrospect.simulate.template_fit import FIT_MAG_ERRORS, mix_and_warp, shares_to_mix, template_colours

pytestmark = pytest.mark.unit


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
    assert np.all(np.diff(arcsec_per_kpc(z)) < 0)
    assert np.all(np.diff(distance_modulus(z)) > 0)
    assert distance_modulus(np.array([0.1]))[0] == pytest.approx(38.3, abs=0.1)


def test_completeness_rolls_off_toward_the_limit() -> None:
    values = completeness([14.0, COMPLETENESS_HALF_MAG, R_FAINT_LIMIT])
    assert values[0] > 0.99 and values[1] == pytest.approx(0.5) and values[2] < values[1]


def test_population_is_deterministic_and_physical() -> None:
    model = pop.population_model()
    first = pop.draw_population(model, np.random.default_rng(3), 3000)
    again = pop.draw_population(model, np.random.default_rng(3), 3000)
    np.testing.assert_array_equal(first.total_flux, again.total_flux)
    r = first.magnitudes[:, 2]
    assert r.max() <= R_SAMPLE_FAINTEST + 1e-9 and r.min() >= R_BRIGHT_LIMIT - 1e-9
    # Like the calibration catalogue (5.3%), a few galaxies are fainter than the main sample's limit.
    assert 0.02 < (r > R_FAINT_LIMIT).mean() < 0.10
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
    """At fixed redshift and r the drawn galaxies' noiseless colours still vary in more than one direction
    (the old simulator had one colour score): the colour covariance has three clearly non-zero eigenvalues."""
    model = pop.population_model()
    z = np.full(4000, 0.08)
    drawn = model.conditional.sample(np.random.default_rng(5), z, np.full(4000, 17.0))
    mixes, warp = mix_and_warp(model.grid, model.mixture, z, drawn)
    colours = spectra.colours_of(model.grid.observed_maggies(z, mixes, np.zeros(len(z)), warp=warp))
    eigen = np.sort(np.linalg.eigvalsh(np.cov(colours.T)))[::-1]
    assert eigen[2] > 1e-3 * eigen[0], eigen


def test_warp_hats_add_up_to_one_so_no_warp_is_all_ones() -> None:
    wave = np.geomspace(2500.0, 12000.0, 500)
    hats = spectra.warp_hats(wave)
    assert (hats >= 0).all()
    np.testing.assert_allclose(hats.sum(axis=0), 1.0)
    grid = spectra.template_grid()
    z = np.array([0.02, 0.11, 0.37])
    mixes = grid.normalise_r(np.abs(np.random.default_rng(1).normal(size=(3, spectra.N_TEMPLATES))))
    np.testing.assert_allclose(
        grid.observed_maggies(z, mixes, np.zeros(3), warp=np.ones((3, spectra.N_WARP_KNOTS))),
        grid.observed_maggies(z, mixes, np.zeros(3)),
        rtol=1e-12,
    )


def test_warp_moves_noiseless_colours_by_the_asked_amount_and_stays_positive() -> None:
    """The solved warp gives exactly the asked colour change, keeps r, and is a positive function of
    wavelength (positive coefficients of non-negative hats), so no band's flux can change sign."""
    grid = spectra.template_grid()
    rng = np.random.default_rng(2)
    n = 500
    z = rng.uniform(0.005, 0.3, n)
    mixes = shares_to_mix(grid, rng.dirichlet(np.ones(spectra.N_DEFAULT_TEMPLATES), n))
    change = rng.normal(0.0, 0.05, (n, 4))
    warp = grid.warp_for(z, mixes, change)
    plain = grid.observed_maggies(z, mixes, np.zeros(n))
    warped = grid.observed_maggies(z, mixes, np.zeros(n), warp=warp)
    np.testing.assert_allclose(spectra.colours_of(warped) - spectra.colours_of(plain), change, atol=1e-9)
    np.testing.assert_allclose(warped[:, spectra.R_BAND], plain[:, spectra.R_BAND], rtol=1e-9)
    assert (warp > 0).all() and (warped > 0).all()
    function = warp @ spectra.warp_hats(np.geomspace(3000.0, 11000.0, 300))
    assert (function > 0).all()
    # Smooth: between knots the warp is linear in log wavelength, so it never leaves its knots' range.
    assert (function.min(axis=1) >= warp.min(axis=1) - 1e-12).all()
    assert (function.max(axis=1) <= warp.max(axis=1) + 1e-12).all()


def test_a_colour_change_that_needs_a_negative_warp_is_refused() -> None:
    grid = spectra.template_grid()
    mixes = shares_to_mix(grid, np.full((1, spectra.N_DEFAULT_TEMPLATES), 0.2))
    with pytest.raises(ValueError, match="non-positive warp"):
        grid.warp_for(np.array([0.1]), mixes, np.array([[-6.0, 0.0, 0.0, 0.0]]))


def test_population_warps_are_deterministic_per_seed_and_make_the_drawn_colours() -> None:
    """A galaxy's warp follows from its seed; the mix and warp make exactly the colours drawn for it (within
    the calibration galaxies' warp bounds), and the warp is small: the mix carries the colour."""
    model = pop.population_model()
    first = pop.draw_population(model, np.random.default_rng(8), 2000)
    again = pop.draw_population(model, np.random.default_rng(8), 2000)
    other = pop.draw_population(model, np.random.default_rng(9), 2000)
    np.testing.assert_array_equal(first.warp, again.warp)
    assert not np.array_equal(first.warp, other.warp)
    z = first.redshift
    drawn = model.conditional.sample(np.random.default_rng(4), z, first.magnitudes[:, spectra.R_BAND])
    mixes, warp = mix_and_warp(model.grid, model.mixture, z, drawn)
    made = spectra.colours_of(model.grid.observed_maggies(z, mixes, np.zeros(len(z)), warp=warp))
    change = made - template_colours(model.grid, z, mixes)
    low, high = model.mixture.residual_range
    inside = ((change > low + 1e-9) & (change < high - 1e-9)).all(axis=1)
    assert inside.mean() > 0.97
    np.testing.assert_allclose(made[inside], drawn[inside], atol=1e-9)
    assert np.median(np.abs(np.log(first.warp))) < 0.1


def test_nearest_galaxies_have_the_real_median_colours() -> None:
    """z < 0.03 is no longer too red: the noiseless colours' medians there are the real ones within 0.05."""
    model = pop.population_model()
    galaxies = pop.draw_population(model, np.random.default_rng(10), 12000)
    sim = catalogue_from_magnitudes(galaxies.magnitudes, galaxies.redshift)
    real = _real_as_catalogue()
    near_sim, near_real = sim[sim["redshift"] < 0.03], real[real["redshift"] < 0.03]
    assert len(near_sim) > 300
    offsets = near_sim[list(COLOURS)].median() - near_real[list(COLOURS)].median()
    assert offsets.abs().max() < 0.05, offsets


def test_redshift_weight_gives_the_real_n_of_z_inside_the_query(monkeypatch: pytest.MonkeyPatch) -> None:
    """Measured on the shipped mixture without its weight, the weight brings the drawn sample's redshift
    quantiles inside the query to the real ones, where the selection alone is off."""
    from astrospect.simulate import calibrate
    from astrospect.simulate.targets import query_cut

    monkeypatch.setattr(calibrate, "REDSHIFT_WEIGHT_DRAWS", 40_000)
    monkeypatch.setattr(calibrate, "REDSHIFT_WEIGHT_PER_BIN", 1000)
    unweighted = dataclasses.replace(load_mixture(), **NO_REDSHIFT_WEIGHT)
    real_z = load_calibration_galaxies()["redshift"].to_numpy()
    fitted = calibrate.redshift_weight(unweighted, real_z)
    assert len(fitted["redshift_weight"]) == len(real_z) // 1000
    assert np.all(np.diff(fitted["redshift_weight_z"]) > 0)
    weighted = dataclasses.replace(
        unweighted, redshift_weight_z=fitted["redshift_weight_z"], redshift_weight=fitted["redshift_weight"]
    )

    def drawn_quantiles(mixture: SpectralMixture) -> npt.NDArray[np.float64]:
        galaxies = pop.draw_population(pop.build_population_model(mixture), np.random.default_rng(12), 20000)
        z = galaxies.redshift[query_cut(galaxies.magnitudes, galaxies.redshift)]
        return np.asarray(np.quantile(z, [0.16, 0.5, 0.84]))

    real = np.quantile(real_z, [0.16, 0.5, 0.84])
    # Measured: within 0.0005 weighted, 0.0032 off (the median) without.
    assert np.abs(drawn_quantiles(weighted) - real).max() < 0.0015
    assert np.abs(drawn_quantiles(unweighted) - real).max() > 0.0025


def test_magnitude_weight_multiplies_the_density_of_r_given_z() -> None:
    """Three times the weight on r > 17 in one redshift bin, none changed in the other: the faint share
    there goes from p to 3p / (1 + 2p), exactly (up to the 400-point grid)."""
    shipped = load_mixture()
    flat = dataclasses.replace(
        shipped,
        magnitude_weight_z_edges=np.array([0.0, 0.1, 1.0]),
        magnitude_weight_r_edges=np.array([[14.0, 17.0, 20.0], [14.0, 17.0, 20.0]]),
        magnitude_weight=np.ones((2, 2)),
    )
    faint_up = dataclasses.replace(flat, magnitude_weight=np.array([[1.0, 1.0], [1.0, 3.0]]))
    conditional = ConditionalMixture.of(shipped)
    rank = (np.arange(4000) + 0.5) / 4000
    for z, moved in ((0.05, False), (0.15, True)):
        at = np.full(len(rank), z)
        before = (conditional.sample_r(at, rank, (14.0, 20.0), weighted_by=flat) > 17.0).mean()
        after = (conditional.sample_r(at, rank, (14.0, 20.0), weighted_by=faint_up) > 17.0).mean()
        expected = 3 * before / (1 + 2 * before) if moved else before
        assert 0.05 < before < 0.95
        assert after == pytest.approx(expected, abs=0.005)


def test_magnitude_weight_gives_the_real_faint_share_at_the_highest_redshifts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Measured on the shipped mixture without its magnitude weight, the weight brings the share of
    0.2 < z < 0.3 galaxies fainter than the main sample's 17.77 inside the query to the real one (0.37),
    where the mixture's own r given z draws too few (~0.22); and it is a density ratio, positive in every
    cell, on one set of r edges per redshift bin."""
    from astrospect.simulate import calibrate
    from astrospect.simulate.targets import query_cut

    monkeypatch.setattr(calibrate, "MAGNITUDE_WEIGHT_DRAWS", 40_000)
    unweighted = dataclasses.replace(load_mixture(), **NO_MAGNITUDE_WEIGHT)
    real = load_calibration_galaxies()
    real_z, real_r = real["redshift"].to_numpy(), real["r"].to_numpy()
    fitted = calibrate.magnitude_weight(unweighted, real_z, real_r)
    n_z = len(fitted["magnitude_weight_z_edges"]) - 1
    assert fitted["magnitude_weight"].shape == (n_z, calibrate.MAGNITUDE_WEIGHT_R_BINS)
    assert fitted["magnitude_weight_r_edges"].shape == (n_z, calibrate.MAGNITUDE_WEIGHT_R_BINS + 1)
    assert np.all(fitted["magnitude_weight"] > 0)
    assert np.all(np.diff(fitted["magnitude_weight_r_edges"], axis=1) > 0)
    weighted = dataclasses.replace(
        unweighted,
        magnitude_weight_z_edges=fitted["magnitude_weight_z_edges"],
        magnitude_weight_r_edges=fitted["magnitude_weight_r_edges"],
        magnitude_weight=fitted["magnitude_weight"],
    )

    def faint_share(mixture: SpectralMixture) -> float:
        galaxies = pop.draw_population(pop.build_population_model(mixture), np.random.default_rng(12), 40000)
        z, r = galaxies.redshift, galaxies.magnitudes[:, spectra.R_BAND]
        top = query_cut(galaxies.magnitudes, z) & (z >= 0.2)
        return float((r[top] > R_FAINT_LIMIT).mean())

    real_top = real_z >= 0.2
    real_share = float((real_r[real_top] > R_FAINT_LIMIT).mean())
    # Measured: 0.36 weighted (about 480 galaxies: standard error 0.02), 0.22 without; real 0.37.
    assert abs(faint_share(weighted) - real_share) < 0.06
    assert real_share - faint_share(unweighted) > 0.1


def test_mixture_artefact_round_trips_and_refuses_another_version(tmp_path: Path) -> None:
    from astrospect.simulate.calibrate import write_mixture

    shipped = load_mixture()
    fields = {f.name: getattr(shipped, f.name) for f in dataclasses.fields(shipped)}
    path = tmp_path / "mixture.json"
    write_mixture({"version": MIXTURE_VERSION, **fields}, path)
    again = load_mixture(path)
    for name, value in fields.items():
        np.testing.assert_array_equal(getattr(again, name), value)
    document = json.loads(path.read_text())
    document["version"] = 1
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"mixture.json: field 'version'"):
        load_mixture(path)


def test_inclined_disks_are_redder_and_dimmer() -> None:
    """Edge-on disks are redder than face-on ones (the sign of Masters et al. 2010's trend), and a disk's
    r-band dimming follows Unterborn & Ryden (2008)'s 1.27 (log10 q)^2."""
    disk, bulge = inclination_dust(np.array([0.0, 1.0]))
    assert disk[0] == pytest.approx(1.27 * np.log10(DISK_THICKNESS_Q0) ** 2) and disk[1] == 0.0
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
    assert lrgs.magnitudes[:, 2].max() <= LRG_R_LIMIT + 1e-9


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
    assert _auc(table, "all", "5-fold") < 0.55
    in_bins = table[table["statistic"] == "colours in bin"]
    assert len(in_bins) >= 5 and (in_bins["simulated"] < 0.55).all()
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
    assert _auc(table, "all", "5-fold") > 0.55
    # The AUC within each redshift bin finds the bin: high there, at chance in the bins not touched.
    assert _auc(table, "0.06-0.09", "colours in bin") > 0.8
    others = table[(table["statistic"] == "colours in bin") & (table["scope"] != "0.06-0.09")]
    assert len(others) >= 4 and (others["simulated"] < 0.55).all()


def _auc(table: pd.DataFrame, scope: str, statistic: str) -> float:
    rows = table[
        (table["quantity"] == "classifier AUC")
        & (table["scope"] == scope)
        & (table["statistic"] == statistic)
    ]
    assert len(rows) == 1, rows
    return float(rows["simulated"].iloc[0])


def test_measurement_noise_is_measured_minus_true_colours_centred_inside_the_query() -> None:
    rng = np.random.default_rng(3)
    truth = rng.uniform(16.0, 18.0, (300, 5))
    offsets = rng.normal(0.0, 0.03, (300, 5)) + 0.01
    redshift = rng.uniform(0.01, 0.2, 300)
    measured = truth + offsets
    measured[:10, 0] = 21.0  # outside the query (u >= 20): not counted
    noise = measurement_noise(
        catalogue_from_magnitudes(measured, redshift), catalogue_from_magnitudes(truth, redshift)
    )
    expected = (offsets[:, :-1] - offsets[:, 1:])[10:]
    np.testing.assert_allclose(noise, expected - np.median(expected, axis=0), atol=1e-9)
    with pytest.raises(ValueError, match="same galaxies"):
        measurement_noise(
            catalogue_from_magnitudes(measured, redshift),
            catalogue_from_magnitudes(truth[:-1], redshift[:-1]),
        )


def test_noiseless_floor_grows_with_the_noise_and_starts_at_real_against_real() -> None:
    """Without noise the floor is real against real (~0.5); SDSS-size colour noise lifts it, more noise more."""
    rng = np.random.default_rng(4)
    band_errors = FIT_MAG_ERRORS
    bands = rng.standard_normal((5000, 5)) * band_errors
    sdss_size = bands[:, :-1] - bands[:, 1:]
    without, with_sdss, with_double = (noiseless_floor_auc(scale * sdss_size) for scale in (0.0, 1.0, 2.0))
    assert abs(without - 0.5) < 0.03
    assert with_sdss > without + 0.05
    assert with_double > with_sdss + 0.05
