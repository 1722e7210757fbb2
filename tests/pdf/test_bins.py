from pathlib import Path

import numpy as np
import pytest
import qp

from astrospect.pdf.bins import (
    DEFAULT_BINS,
    RedshiftBins,
    RedshiftPdfs,
    read_qp,
    write_qp,
)

pytestmark = pytest.mark.unit

BINS = RedshiftBins.uniform(0.0, 1.0, 10)  # width 0.1, centres 0.05 ... 0.95


def _delta(bin_index: int, bins: RedshiftBins = BINS) -> np.ndarray:
    probs = np.zeros((1, bins.n))
    probs[0, bin_index] = 1.0
    return probs


def _random_pdfs(n: int, bins: RedshiftBins, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(bins.n), size=n)


def test_bins_have_centres_widths_and_clip_outliers_into_the_end_bins() -> None:
    assert BINS.n == 10
    assert np.allclose(BINS.centres, np.arange(0.05, 1.0, 0.1))
    assert np.allclose(BINS.widths, 0.1)
    assert BINS.index([-0.3, 0.0, 0.1, 0.149, 0.999, 1.0, 7.0]).tolist() == [0, 0, 1, 1, 9, 9, 9]
    assert np.allclose(BINS.histogram([0.05, 0.05, 0.55, 3.0]), [0.5, 0, 0, 0, 0, 0.25, 0, 0, 0, 0.25])


def test_default_bins_cover_the_simulator_and_resolve_the_scatter() -> None:
    assert DEFAULT_BINS.edges[0] == 0.0 and DEFAULT_BINS.edges[-1] == pytest.approx(0.7)
    assert DEFAULT_BINS.n == 280 and np.allclose(DEFAULT_BINS.widths, 0.0025)


@pytest.mark.parametrize(
    ("edges", "message"), [((0.0, 1.0), "at least 3"), ((0.0, 0.5, 0.5, 1.0), "strictly increasing")]
)
def test_bad_bins_are_refused(edges: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedshiftBins(edges)


def test_point_estimates_sit_at_bin_centres_not_left_edges() -> None:
    probs = _delta(3)  # all mass in [0.3, 0.4)
    for kind in ("mean", "median", "mode"):
        assert RedshiftPdfs(probs, BINS).point(kind)[0] == pytest.approx(0.35), kind


def test_mean_median_and_mode_differ_on_a_skewed_pdf() -> None:
    probs = np.zeros((1, 10))
    probs[0, [2, 3, 7]] = [0.5, 0.2, 0.3]
    assert RedshiftPdfs(probs, BINS).point("mode")[0] == pytest.approx(0.25)
    assert RedshiftPdfs(probs, BINS).point("mean")[0] == pytest.approx(0.5 * 0.25 + 0.2 * 0.35 + 0.3 * 0.75)
    assert RedshiftPdfs(probs, BINS).point("median")[0] == pytest.approx(
        0.3
    )  # CDF reaches 0.5 at bin 2's end
    with pytest.raises(ValueError, match="unknown point estimate"):
        RedshiftPdfs(probs, BINS).point("max")  # type: ignore[arg-type]


def test_quantiles_and_intervals_follow_the_linear_in_bin_cdf() -> None:
    flat = np.full((1, 10), 0.1)  # uniform over [0, 1]: quantile q is q
    for q in (0.025, 0.16, 0.5, 0.84, 0.975):
        assert RedshiftPdfs(flat, BINS).quantile(q)[0] == pytest.approx(q)
    lo, hi = RedshiftPdfs(flat, BINS).central_interval(0.68)
    assert (lo[0], hi[0]) == (pytest.approx(0.16), pytest.approx(0.84))
    lo, hi = RedshiftPdfs(_delta(6), BINS).central_interval(0.95)
    assert (lo[0], hi[0]) == (pytest.approx(0.6025), pytest.approx(0.6975))


def test_quantiles_match_qp_ppf() -> None:
    probs = _random_pdfs(50, DEFAULT_BINS)
    ensemble = RedshiftPdfs(probs, DEFAULT_BINS).to_qp()
    for q in (0.025, 0.16, 0.5, 0.84, 0.975):
        assert np.allclose(RedshiftPdfs(probs, DEFAULT_BINS).quantile(q), ensemble.ppf(q).ravel(), atol=1e-9)
    assert np.allclose(RedshiftPdfs(probs, DEFAULT_BINS).point("mean"), ensemble.mean().ravel(), atol=1e-9)


def test_summary_holds_the_point_estimates_and_nested_intervals() -> None:
    probs = _random_pdfs(20, DEFAULT_BINS, seed=3)
    summary = RedshiftPdfs(probs, DEFAULT_BINS).summary()
    for kind in ("mean", "median", "mode"):  # exactly what point_estimate gives: serving relies on it
        assert np.array_equal(summary.point(kind), RedshiftPdfs(probs, DEFAULT_BINS).point(kind)), kind
    for level, (lo, hi) in {0.68: (summary.lo68, summary.hi68), 0.95: (summary.lo95, summary.hi95)}.items():
        assert all(
            map(np.array_equal, (lo, hi), RedshiftPdfs(probs, DEFAULT_BINS).central_interval(level))
        ), level
    assert np.all(summary.lo95 <= summary.lo68) and np.all(summary.lo68 <= summary.median)
    assert np.all(summary.median <= summary.hi68) and np.all(summary.hi68 <= summary.hi95)
    record = summary.records()[4]
    assert set(record) == {"mean", "median", "mode", "interval_68", "interval_95"}
    assert record["interval_68"] == [pytest.approx(summary.lo68[4]), pytest.approx(summary.hi68[4])]


@pytest.mark.parametrize(
    ("probs", "message"),
    [
        (np.full((2, 9), 1 / 9), r"shape \(N, 10\)"),
        (np.full((2, 10), 0.2), "sums to 2"),
        (np.full((2, 10), np.nan), "finite"),
    ],
)
def test_malformed_pdfs_are_refused(probs: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedshiftPdfs(probs, BINS)


@pytest.mark.parametrize("suffix", [".hdf5", ".h5"])  # h5py's layout and pandas' (qp reads both by suffix)
def test_qp_file_round_trip_keeps_probabilities_bins_and_objid(tmp_path: Path, suffix: str) -> None:
    probs = _random_pdfs(30, DEFAULT_BINS, seed=5)
    objid = np.arange(30, dtype=np.int64) + 2**62
    path = write_qp(tmp_path / f"pdfs.v2{suffix}", RedshiftPdfs(probs, DEFAULT_BINS), ancil={"objid": objid})
    assert qp.is_qp_file(str(path))
    ensemble = qp.read(str(path))  # what a RAIL user does
    assert ensemble.npdf == 30
    assert np.allclose(ensemble.metadata["bins"].ravel(), DEFAULT_BINS.edge_array)
    assert np.allclose(ensemble.objdata["pdfs"] * DEFAULT_BINS.widths, probs)
    back, ancil = read_qp(path)
    assert (
        back.bins == DEFAULT_BINS
        and np.allclose(back.probabilities, probs)
        and np.array_equal(ancil["objid"], objid)
    )
    assert [p.name for p in tmp_path.iterdir()] == [f"pdfs.v2{suffix}"]  # no partial file left behind


def test_qp_file_is_never_overwritten_and_needs_an_hdf5_suffix(tmp_path: Path) -> None:
    probs = _random_pdfs(3, BINS)
    path = write_qp(tmp_path / "pdfs.hdf5", RedshiftPdfs(probs, BINS))
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="never overwritten"):
        write_qp(path, _random_pdfs(3, BINS, seed=9), BINS)
    assert path.read_bytes() == before
    for suffix in (".csv", ".hd5"):  # tables_io writes .hd5, but qp.read cannot read it back
        with pytest.raises(ValueError, match=r"suffix \.hdf5 or \.h5"):
            write_qp(tmp_path / f"pdfs{suffix}", RedshiftPdfs(probs, BINS))


def test_only_histogram_qp_files_map_onto_bins(tmp_path: Path) -> None:
    path = tmp_path / "gauss.hdf5"
    qp.Ensemble(qp.interp, data={"xvals": np.linspace(0, 1, 11), "yvals": np.ones((2, 11))}).write_to(
        str(path)
    )
    with pytest.raises(ValueError, match="'interp'"):
        read_qp(path)
