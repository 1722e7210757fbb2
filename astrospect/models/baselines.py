"""The classic colour photo-z: k-nearest neighbours on ugriz aperture colours measured from the cutouts.

Every metric table has this row (docs/explanation/architecture.md, "Metrics"): it is trained on the same split (and the
same clipping) as the CNN it is compared with, so the comparison isolates what the pixels add beyond colours. Its colour
aperture and k are chosen on the validation split, as a careful astronomer would tune a colour photo-z:
the CNN has to beat the best colour method these cutouts allow, not a convenient one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from astrospect.data.dataset import RowSelection, Splits, iter_selected
from astrospect.data.metrics import metric_table
from astrospect.data.photometry import colour_features
from astrospect.models.registry import Trained
from astrospect.pdf.baselines import neighbour_histograms, nz_null_pdf
from astrospect.pdf.bins import DEFAULT_BINS, POINT_ESTIMATE, RedshiftBins, RedshiftPdfs
from astrospect.settings import get_logger

if TYPE_CHECKING:
    from astrospect.data.shards import Cutouts
    from astrospect.models.registry import Challenger, TrainConfig

log = get_logger(__name__)
# Chosen on the validation split by sigma_mad. A fixed 2" (fibre-like) aperture would make a weaker
# baseline: on 24k simulated galaxies 3" colours give 0.0120 on the holdout against 0.0140 for 2".
K_CANDIDATES = (5, 10, 20, 40)
APERTURE_CANDIDATES_ARCSEC = (1.5, 2.0, 3.0, 4.0)


@dataclass
class ColourTable:
    features: npt.NDArray[np.float64]  # (N, 5): u-g, g-r, r-i, i-z, r
    redshift: npt.NDArray[np.float32]
    objid: npt.NDArray[np.int64]


@dataclass
class ColourBaseline:
    pipeline: Pipeline
    k: int
    val_sigma_mad: float
    aperture_arcsec: float  # radius of the colour aperture

    def predict(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return self.pipeline.predict(colour_features(images, self.aperture_arcsec)).astype(np.float32)

    def predict_features(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        return self.pipeline.predict(features).astype(np.float32)


def colour_tables(selection: RowSelection, radii_arcsec: Sequence[float]) -> dict[float, ColourTable]:
    """The colour features in each aperture, from one pass over the pixels (reading them dominates)."""
    features: dict[float, list[npt.NDArray[np.float64]]] = {radius: [] for radius in radii_arcsec}
    redshift, objid = [], []
    for images, z, ids in iter_selected(selection):
        for radius in radii_arcsec:
            features[radius].append(colour_features(images, radius))
        redshift.append(z)
        objid.append(ids)
    z_all, ids_all = np.concatenate(redshift), np.concatenate(objid)
    return {
        radius: ColourTable(np.concatenate(chunks), z_all, ids_all) for radius, chunks in features.items()
    }


def fit_colour_knn(challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    """The registry's builder for the colour k-NN baselines (the CNN hyperparameters do not apply)."""
    baseline = fit_colour_baseline(splits)
    bins = DEFAULT_BINS
    return Trained(
        challenger=challenger,
        predict=lambda chunk: baseline.predict(chunk.images),
        predict_pdf=lambda chunk: knn_pdf(
            baseline, colour_features(chunk.images, baseline.aperture_arcsec), bins
        ),
        bins=bins,
        params={
            "model": "kNN on ugriz aperture colours",
            "clipping": splits.clipping,
            "k": baseline.k,
            "aperture_arcsec": baseline.aperture_arcsec,
            "val_sigma_mad": baseline.val_sigma_mad,
        },
        n_train=len(splits.train),
        n_val=len(splits.val),
        run_metrics={"val_sigma_mad": baseline.val_sigma_mad},
    )


def fit_nz_null(challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    """The registry's builder for the N(z) null: the training split's redshift histogram for every galaxy."""
    bins = DEFAULT_BINS
    null = nz_null_pdf(splits.train.redshift, bins, 1)  # checked once; every batch repeats its row
    point = float(null.point(POINT_ESTIMATE)[0])

    def predict_pdf(cutouts: Cutouts) -> RedshiftPdfs:
        return null[np.zeros(len(cutouts), np.int64)]

    return Trained(
        challenger=challenger,
        predict=lambda cutouts: np.full(len(cutouts), point, np.float32),
        params={"model": "N(z) of the training split", "clipping": splits.clipping, "n_bins": bins.n},
        n_train=len(splits.train),
        n_val=len(splits.val),
        run_metrics={
            "val_sigma_mad": metric_table(splits.val.redshift, np.full(len(splits.val), point))["sigma_mad"]
        },
        predict_pdf=predict_pdf,
        bins=bins,
    )


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


def knn_pdf(baseline: ColourBaseline, features: npt.NDArray[np.float64], bins: RedshiftBins) -> RedshiftPdfs:
    """Each galaxy's histogram of its k neighbours' redshifts (the colour k-NN PDF baseline),
    leaving the baseline's point predictions as they are."""
    return neighbour_histograms(neighbour_redshifts(baseline, features)[0], bins)


def fit_colour_baseline(splits: Splits) -> ColourBaseline:
    """Fit the k-NN on the training split; pick the colour aperture and k on the validation split."""
    radii = APERTURE_CANDIDATES_ARCSEC
    train = colour_tables(splits.train, radii)
    val = colour_tables(splits.val, radii)
    fits = [_fit(train[radius], val[radius], splits.clipping, radius) for radius in radii]
    best = min(fits, key=lambda fit: fit.val_sigma_mad)
    log.info(
        'colour k-NN (%s): chose the %.1f" aperture and k=%d', splits.clipping, best.aperture_arcsec, best.k
    )
    return best


def _fit(train: ColourTable, val: ColourTable, clipping: str, aperture_arcsec: float) -> ColourBaseline:
    best: ColourBaseline | None = None
    for k in K_CANDIDATES:
        if k > len(train.redshift):
            break
        pipeline = make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=k, weights="distance"))
        pipeline.fit(train.features, train.redshift)
        score = metric_table(val.redshift, pipeline.predict(val.features))["sigma_mad"]
        if best is None or score < best.val_sigma_mad:
            best = ColourBaseline(pipeline, k, score, aperture_arcsec)
    if best is None:
        raise ValueError(
            f"clipping {clipping}: only {len(train.redshift)} training galaxies, too few for k-NN"
        )
    log.info(
        'colour k-NN (%s, %.1f" aperture): k=%d, validation sigma_mad %.4f on %d galaxies',
        clipping,
        aperture_arcsec,
        best.k,
        best.val_sigma_mad,
        len(val.redshift),
    )
    return best


def aperture_sweep(
    splits: Splits, radii_arcsec: Sequence[float] = APERTURE_CANDIDATES_ARCSEC
) -> list[dict[str, float]]:
    """The colour k-NN with its colours measured in each aperture, scored on the holdout: how much redshift
    colours alone carry, and how much the choice :func:`fit_colour_baseline` makes on validation matters."""
    tables = {
        name: colour_tables(selection, radii_arcsec)
        for name, selection in (("train", splits.train), ("val", splits.val), ("holdout", splits.holdout))
    }
    rows = []
    for radius in radii_arcsec:
        baseline = _fit(tables["train"][radius], tables["val"][radius], splits.clipping, radius)
        holdout = tables["holdout"][radius]
        scores = metric_table(holdout.redshift, baseline.predict_features(holdout.features))
        rows.append(
            {
                "aperture_arcsec": radius,
                "k": baseline.k,
                "val_sigma_mad": baseline.val_sigma_mad,
                "holdout_sigma_mad": scores["sigma_mad"],
                "holdout_outlier_frac_005": scores["outlier_frac_005"],
            }
        )
    return rows
