import numpy as np
import pytest

from astrospect.pdf.bins import RedshiftBins, RedshiftPdfs
from astrospect.pdf.metrics import (
    PDF_METRIC_NAMES,
    PIT_KS_TARGET,
    cde_loss,
    coverage,
    coverage_curve,
    crps,
    pdf_metric_table,
    pit_statistics,
    pit_values,
)

pytestmark = pytest.mark.unit

BINS = RedshiftBins.uniform(0.0, 1.0, 200)  # width 0.005


def _one_bin(bins: RedshiftBins, index: int, n: int = 1) -> np.ndarray:
    probs = np.zeros((n, bins.n))
    probs[:, index] = 1.0
    return probs


def _gaussian_pdfs(mu: np.ndarray, sigma: np.ndarray, bins: RedshiftBins) -> np.ndarray:
    from scipy import stats

    cdf = stats.norm.cdf(bins.edge_array[None, :], mu[:, None], sigma[:, None])
    mass = np.diff(cdf, axis=1)
    return mass / mass.sum(axis=1, keepdims=True)


def _draw_from(probs: np.ndarray, bins: RedshiftBins, rng: np.random.Generator) -> np.ndarray:
    """One redshift from each histogram PDF exactly: a bin by its probability, then uniform inside it."""
    cdf = np.cumsum(probs, axis=1)
    index = np.minimum((cdf < rng.uniform(size=(len(probs), 1))).sum(axis=1), bins.n - 1)
    return bins.edge_array[index] + rng.uniform(size=len(probs)) * bins.widths[index]


def _crps_numerically(probs: np.ndarray, bins: RedshiftBins, z: np.ndarray) -> np.ndarray:
    grid = np.linspace(-0.5, 1.5, 400_001)
    cdf_edges = np.concatenate([np.zeros((len(probs), 1)), np.cumsum(probs, axis=1)], axis=1)
    scores = []
    for row, truth in zip(cdf_edges, z, strict=True):
        cdf = np.interp(grid, bins.edge_array, row, left=0.0, right=1.0)
        scores.append(np.trapezoid((cdf - (grid >= truth)) ** 2, grid))
    return np.array(scores)


@pytest.mark.parametrize("d", [0.005, 0.012, 0.2, 0.7])
@pytest.mark.parametrize("side", [1, -1])
def test_crps_of_a_one_bin_pdf_with_the_specz_outside_is_d_minus_w_over_6(d: float, side: int) -> None:
    bins = RedshiftBins.uniform(0.0, 0.6, 60)  # w = 0.01
    w, centre = 0.01, bins.centres[30]
    z = np.array([centre + side * d])  # beyond 0.6 or below 0 for the largest d: outside the bins too
    assert crps(RedshiftPdfs(_one_bin(bins, 30), bins), z)[0] == pytest.approx(d - w / 6, rel=1e-9)


def test_crps_of_a_one_bin_pdf_at_its_centre_is_w_over_12() -> None:
    bins = RedshiftBins.uniform(0.0, 0.6, 60)
    assert crps(RedshiftPdfs(_one_bin(bins, 7), bins), bins.centres[[7]])[0] == pytest.approx(0.01 / 12)


def test_crps_matches_numerical_integration_on_random_pdfs() -> None:
    rng = np.random.default_rng(1)
    bins = RedshiftBins.uniform(0.0, 1.0, 25)
    probs = rng.dirichlet(np.full(bins.n, 0.3), size=12)
    z = np.concatenate([rng.uniform(0, 1, 9), [-0.2, 1.3, 0.52]])
    assert np.allclose(
        crps(RedshiftPdfs(probs, bins), z), _crps_numerically(probs, bins, z), rtol=1e-5, atol=1e-8
    )


def test_calibrated_pdfs_give_a_uniform_pit() -> None:
    rng = np.random.default_rng(2)
    mu, sigma = rng.uniform(0.1, 0.8, 5000), rng.uniform(0.01, 0.05, 5000)
    probs = _gaussian_pdfs(mu, sigma, BINS)
    pit = pit_values(RedshiftPdfs(probs, BINS), _draw_from(probs, BINS, rng))
    stats = pit_statistics(pit)
    assert stats["pit_ks"] < 0.02  # KS 5% critical value for 5000 draws is 0.019
    assert np.histogram(pit, bins=10, range=(0, 1))[0].min() > 450  # every tenth holds ~500
    assert coverage(pit, 0.68) == pytest.approx(0.68, abs=0.02)
    assert coverage(pit, 0.95) == pytest.approx(0.95, abs=0.01)
    assert stats["pit_outlier_frac"] < 0.002


def test_too_narrow_pdfs_give_a_u_shaped_pit_and_fail_the_ks_target() -> None:
    rng = np.random.default_rng(3)
    mu, sigma = rng.uniform(0.1, 0.8, 5000), rng.uniform(0.01, 0.05, 5000)
    z = _draw_from(_gaussian_pdfs(mu, sigma, BINS), BINS, rng)
    narrow = _gaussian_pdfs(mu, sigma / 3, BINS)
    pit = pit_values(RedshiftPdfs(narrow, BINS), z)
    counts = np.histogram(pit, bins=10, range=(0, 1))[0]
    assert counts[0] > 2 * counts[4] and counts[-1] > 2 * counts[5]  # U-shaped
    assert pit_statistics(pit)["pit_ks"] > PIT_KS_TARGET
    assert coverage(pit, 0.68) < 0.4  # the nominal 68% intervals hold far fewer


def test_coverage_on_a_constructed_case_agrees_with_the_intervals() -> None:
    flat = np.full((6, BINS.n), 1 / BINS.n)  # uniform over [0, 1]: the 68% interval is [0.16, 0.84]
    z = np.array([0.10, 0.20, 0.50, 0.83, 0.85, 0.99])
    pit = pit_values(RedshiftPdfs(flat, BINS), z)
    assert np.allclose(pit, z)
    assert coverage(pit, 0.68) == pytest.approx(3 / 6)
    assert coverage(pit, 0.95) == pytest.approx(5 / 6)  # [0.025, 0.975] misses only 0.99
    lo, hi = RedshiftPdfs(flat, BINS).central_interval(0.68)
    assert coverage(pit, 0.68) == np.mean((z >= lo) & (z <= hi))
    assert np.all(np.diff(coverage_curve(pit)) >= 0)


def test_pit_outside_the_bins_is_0_or_1_and_counts_as_an_outlier() -> None:
    probs = np.zeros((40, BINS.n))
    probs[:, 80:120] = 1 / 40  # uniform over [0.4, 0.6)
    z = np.full(40, 0.5)
    z[:3], z[3:5] = 0.1, 0.9  # 5 of 40 outside their PDF's support
    pit = pit_values(RedshiftPdfs(probs, BINS), z)
    assert np.allclose(pit[:3], 0.0) and np.allclose(pit[3:5], 1.0)
    assert pit_statistics(pit)["pit_outlier_frac"] == pytest.approx(5 / 40)


def test_cde_loss_matches_its_closed_form_for_histograms() -> None:
    rng = np.random.default_rng(4)
    probs = np.zeros((30, BINS.n))
    probs[:, 10:190] = rng.dirichlet(np.ones(180), size=30)  # no mass in the end bins
    z = rng.uniform(0.06, 0.94, 30)
    density = probs / BINS.widths
    expected = np.mean(np.sum(density**2 * BINS.widths, axis=1)) - 2 * np.mean(
        density[np.arange(30), BINS.index(z)]
    )
    assert cde_loss(RedshiftPdfs(probs, BINS), z) == pytest.approx(expected, rel=1e-9)


def test_sharper_correct_pdfs_score_better() -> None:
    rng = np.random.default_rng(5)
    mu = rng.uniform(0.2, 0.8, 500)
    z = mu + rng.normal(0, 0.02, 500)
    sharp, wide = _gaussian_pdfs(mu, np.full(500, 0.02), BINS), _gaussian_pdfs(mu, np.full(500, 0.1), BINS)
    good, poor = pdf_metric_table(RedshiftPdfs(sharp, BINS), z), pdf_metric_table(RedshiftPdfs(wide, BINS), z)
    assert tuple(good) == PDF_METRIC_NAMES
    assert good["crps"] < poor["crps"] and good["cde_loss"] < poor["cde_loss"]
    assert poor["coverage_68"] > 0.9  # too wide: over-covers


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="3 PDFs but 2"):
        crps(RedshiftPdfs(np.full((3, BINS.n), 1 / BINS.n), BINS), [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        pdf_metric_table(RedshiftPdfs(np.full((2, BINS.n), 1 / BINS.n), BINS), [0.1, np.nan])
