"""The PDF baselines every PDF figure stands beside, on the same redshift bins.

- The N(z) null: every galaxy gets the training set's redshift histogram. It knows nothing about a galaxy,
  yet its PIT is flat by construction on a holdout drawn like the training set; Schmidt et al. (2020, the
  LSST DESC PDF challenge) found it beats most codes on PIT-based metrics, so PIT is never judged alone.
- The colour k-NN PDF: the histogram of the k nearest training galaxies' redshifts in colour space, from
  the colour baseline's fitted pipeline (its aperture, scaler and k), leaving its point predictions as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from sklearn.neighbors import KNeighborsRegressor

from astrospect.models.baselines import ColourBaseline
from astrospect.models.registry import Trained
from astrospect.pdf.bins import DEFAULT_BINS, POINT_ESTIMATE, RedshiftBins, point_estimate

if TYPE_CHECKING:
    from astrospect.data.dataset import Splits
    from astrospect.data.shards import Cutouts
    from astrospect.models.registry import Challenger
    from astrospect.models.train import TrainConfig


def nz_null_pdf(z_train: npt.ArrayLike, bins: RedshiftBins, n_galaxies: int) -> npt.NDArray[np.float64]:
    """(n_galaxies, bins.n): the training redshift histogram, the same for every galaxy."""
    return np.tile(bins.histogram(z_train), (n_galaxies, 1))


def neighbour_redshifts(
    baseline: ColourBaseline, features: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(N, k) redshifts of each galaxy's k nearest training galaxies and their colour-space distances."""
    regressor = baseline.pipeline[-1]
    if not isinstance(regressor, KNeighborsRegressor):
        raise TypeError(f"colour baseline ends in {type(regressor).__name__}, not a KNeighborsRegressor")
    distances, indices = regressor.kneighbors(baseline.pipeline[:-1].transform(features))
    # The fitted training targets; scikit-learn keeps them as `_y` (what its own predict reads).
    train_z = np.asarray(regressor._y, dtype=np.float64).ravel()
    if train_z.size != regressor.n_samples_fit_:
        raise ValueError(
            f"k-NN holds {train_z.size} training redshifts for {regressor.n_samples_fit_} galaxies"
        )
    return train_z[indices], distances


def knn_pdf(
    baseline: ColourBaseline, features: npt.NDArray[np.float64], bins: RedshiftBins
) -> npt.NDArray[np.float64]:
    """(N, bins.n): each galaxy's histogram of its k neighbours' redshifts (equal weights)."""
    z_neighbours, _ = neighbour_redshifts(baseline, features)
    k = z_neighbours.shape[1]
    index = bins.index(z_neighbours)
    probs = np.zeros((len(z_neighbours), bins.n))
    np.add.at(probs, (np.repeat(np.arange(len(z_neighbours)), k), index.ravel()), 1.0 / k)
    return probs


def fit_nz_null(challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    """The registry's builder for the N(z) null: the training split's redshift histogram for every galaxy."""
    bins = DEFAULT_BINS
    histogram = bins.histogram(splits.train.redshift)
    point = float(point_estimate(histogram[None, :], bins, POINT_ESTIMATE)[0])

    def predict_pdf(cutouts: Cutouts) -> npt.NDArray[np.float64]:
        return np.tile(histogram, (len(cutouts), 1))

    return Trained(
        challenger=challenger,
        predict=lambda cutouts: np.full(len(cutouts), point, np.float32),
        params={"model": "N(z) of the training split", "clipping": splits.clipping, "n_bins": bins.n},
        n_train=len(splits.train),
        n_val=len(splits.val),
        predict_pdf=predict_pdf,
        bins=bins,
    )
