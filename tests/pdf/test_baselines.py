import numpy as np
import pytest
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from astrospect.models.baselines import ColourBaseline, knn_pdf, neighbour_redshifts
from astrospect.pdf.baselines import nz_null_pdf
from astrospect.pdf.bins import RedshiftBins

pytestmark = pytest.mark.unit

BINS = RedshiftBins.uniform(0.0, 0.7, 280)


@pytest.fixture(scope="module")
def baseline_and_colours() -> tuple[ColourBaseline, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    z = rng.uniform(0.01, 0.5, 3000)
    features = np.column_stack([2 * z, z**2, -z, 0.5 * z, 16 + 3 * z]) + rng.normal(0, 0.02, (3000, 5))
    k = 10
    pipeline = make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=k, weights="distance"))
    pipeline.fit(features[:2500], z[:2500])
    return ColourBaseline(pipeline, k, float("nan"), 3.0), features[2500:], z[2500:]


def test_nz_null_gives_every_galaxy_the_training_histogram() -> None:
    z_train = np.array([0.05, 0.05, 0.3, 0.31, 0.69])
    null = nz_null_pdf(z_train, BINS, 4).probabilities
    assert null.shape == (4, BINS.n) and np.all(null == null[0])
    assert null[0, BINS.index(0.05)] == pytest.approx(0.4) and null[0].sum() == pytest.approx(1.0)


def test_neighbours_are_the_ones_behind_the_baselines_point_prediction(
    baseline_and_colours: tuple[ColourBaseline, np.ndarray, np.ndarray],
) -> None:
    baseline, features, _ = baseline_and_colours
    z_neighbours, distances = neighbour_redshifts(baseline, features)
    assert z_neighbours.shape == distances.shape == (len(features), baseline.k)
    weights = 1.0 / distances  # the baseline regressor's weights="distance"
    reproduced = (z_neighbours * weights).sum(axis=1) / weights.sum(axis=1)
    assert np.allclose(reproduced, baseline.predict_features(features), atol=1e-6)


def test_knn_pdf_is_the_neighbours_histogram_and_leaves_point_predictions_alone(
    baseline_and_colours: tuple[ColourBaseline, np.ndarray, np.ndarray],
) -> None:
    baseline, features, z = baseline_and_colours
    before = baseline.predict_features(features)
    pdfs = knn_pdf(baseline, features, BINS)
    probs = pdfs.probabilities
    assert probs.shape == (len(features), BINS.n) and np.allclose(probs.sum(axis=1), 1.0)
    assert set(np.unique(np.round(probs * baseline.k, 9))) <= set(range(baseline.k + 1))  # multiples of 1/k
    z_neighbours, _ = neighbour_redshifts(baseline, features)
    assert np.allclose(pdfs.point("mean"), z_neighbours.mean(axis=1), atol=BINS.widths[0] / 2)
    assert np.array_equal(baseline.predict_features(features), before)
    assert np.median(np.abs(pdfs.point("median") - z)) < 0.02
