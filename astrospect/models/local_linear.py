"""The local linear fit of Beck et al. (2016, MNRAS 460, 1371), the method behind SDSS DR12's photo-z table.

For each galaxy: its k nearest training galaxies in (colours, r), a linear fit z = a + b.(x - x0) to their
redshifts by least squares, evaluated at the galaxy (so the estimate is the intercept a); the neighbours
more than 3 sigma off the first fit are dropped and the fit is made again, as Beck's method does. The error
is the refitted neighbours' residual scatter, and the PDF a Gaussian of that width on the system's redshift
bins (:mod:`astrospect.pdf.bins`). RAIL has no such estimator (its k-NN is a Gaussian mixture of the
neighbours, and DNF fits a hyperplane in its own directional metric), so it is written here with scikit-learn
and numpy.

Its inputs are the colour k-NN's (:mod:`astrospect.models.baselines`): ugriz aperture colours and the total r
magnitude measured from the cutouts. The aperture, k (64-128, Beck's range) and whether the neighbour search
runs on standardised features or, as Beck's, on the magnitudes as they are, are chosen on the validation
split's sigma_MAD. The fits are vectorised over batches of galaxies: 12k galaxies take seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr
from sklearn.neighbors import NearestNeighbors

from astrospect.data.metrics import metric_table
from astrospect.data.photometry import colour_features
from astrospect.models.baselines import APERTURE_CANDIDATES_ARCSEC, ColourTable, colour_tables
from astrospect.models.registry import Trained
from astrospect.pdf.bins import DEFAULT_BINS, RedshiftBins, RedshiftPdfs
from astrospect.settings import get_logger

if TYPE_CHECKING:
    from astrospect.data.dataset import Splits
    from astrospect.data.shards import Cutouts
    from astrospect.models.registry import Challenger, TrainConfig

log = get_logger(__name__)
K_CANDIDATES = (64, 96, 128)  # Beck et al. 2016 use about 100 neighbours
CLIP_SIGMA = 3.0  # neighbours this far off the first fit are left out of the second
# Keeps the normal equations solvable where a neighbourhood is degenerate (many identical colours); far
# below the features' variance (colours vary by ~0.1 mag across 100 neighbours, so ~1e-2 in x^2 units).
RIDGE = 1e-8
# The narrowest Gaussian a PDF gets: below a bin width (DEFAULT_BINS: 0.0025), so an exact fit still puts
# its mass in its own bin rather than nowhere.
SIGMA_FLOOR = 1e-3
BATCH = 1024  # galaxies per vectorised fit: (BATCH, k, 6) arrays of a few MB


@dataclass
class LocalLinearFit:
    """A fitted local linear photo-z: the training set's features, redshifts and neighbour index."""

    features: npt.NDArray[np.float64]  # (N, d) training features, as searched (standardised or not)
    redshift: npt.NDArray[np.float64]  # (N,)
    index: NearestNeighbors
    k: int
    centre: npt.NDArray[np.float64]  # subtracted, then divided by `scale`, before the search
    scale: npt.NDArray[np.float64]
    standardised: bool  # searched on standardised features; else on the magnitudes as they are (Beck's)
    aperture_arcsec: float
    val_sigma_mad: float = float("nan")

    @classmethod
    def fit(
        cls,
        features: npt.ArrayLike,
        redshift: npt.ArrayLike,
        k: int,
        *,
        standardise: bool,
        aperture_arcsec: float,
    ) -> LocalLinearFit:
        x = np.asarray(features, dtype=np.float64)
        z = np.asarray(redshift, dtype=np.float64).ravel()
        if x.ndim != 2 or len(x) != len(z):
            raise ValueError(f"local linear fit: features {x.shape} and {z.size} redshifts do not match")
        if len(z) < k:
            raise ValueError(f"local linear fit: k={k} neighbours asked for, {len(z)} training galaxies")
        if not np.all(np.isfinite(x)):
            raise ValueError("local linear fit: training features must be finite")
        centre = x.mean(axis=0) if standardise else np.zeros(x.shape[1])
        scale = x.std(axis=0) if standardise else np.ones(x.shape[1])
        scale = np.where(scale > 0, scale, 1.0)
        searched = (x - centre) / scale
        index = NearestNeighbors(n_neighbors=k).fit(searched)
        return cls(searched, z, index, k, centre, scale, standardise, aperture_arcsec)

    def neighbours(self, features: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """(N, k) training rows nearest each galaxy, nearest first."""
        x = (np.asarray(features, dtype=np.float64) - self.centre) / self.scale
        return np.asarray(self.index.kneighbors(x, n_neighbors=self.k, return_distance=False), np.int64)

    def estimate(
        self, features: npt.ArrayLike, neighbours: npt.NDArray[np.int64] | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Each galaxy's redshift (the local fit at it) and its error (the fit's residual scatter)."""
        x = (np.asarray(features, dtype=np.float64) - self.centre) / self.scale
        rows = self.neighbours(features) if neighbours is None else neighbours[:, : self.k]
        z, sigma = np.empty(len(x)), np.empty(len(x))
        for start in range(0, len(x), BATCH):
            part = slice(start, start + BATCH)
            z[part], sigma[part] = local_linear(self.features[rows[part]], self.redshift[rows[part]], x[part])
        return z, sigma


def local_linear(
    x_neighbours: npt.NDArray[np.float64], z_neighbours: npt.NDArray[np.float64], x: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Least-squares z = a + b.(x_n - x) over each galaxy's neighbours (B, k, d) with one 3-sigma clip:
    (a, the clipped fit's residual scatter) per galaxy, both (B,)."""
    batch, k, d = x_neighbours.shape
    design = np.concatenate([np.ones((batch, k, 1)), x_neighbours - x[:, None, :]], axis=2)
    weights = np.ones((batch, k))
    for _ in range(2):  # the fit, then the fit without the first one's outliers
        coefficients = _weighted_least_squares(design, z_neighbours, weights)
        residuals = z_neighbours - np.einsum("bkj,bj->bk", design, coefficients)
        used = weights.sum(axis=1)
        scatter = np.sqrt((weights * residuals**2).sum(axis=1) / np.maximum(used - (d + 1), 1.0))
        keep = np.abs(residuals) <= CLIP_SIGMA * scatter[:, None]
        # never clip a neighbourhood below what the fit needs
        weights = np.where((keep.sum(axis=1) > 2 * (d + 1))[:, None], keep.astype(np.float64), weights)
    return coefficients[:, 0], scatter


def _weighted_least_squares(
    design: npt.NDArray[np.float64], z: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    weighted = design * weights[:, :, None]
    normal = np.einsum("bki,bkj->bij", weighted, design)
    normal += RIDGE * np.eye(design.shape[2])
    return np.linalg.solve(normal, np.einsum("bki,bk->bi", weighted, z)[..., None])[..., 0]


def gaussian_pdfs(
    z: npt.NDArray[np.float64], sigma: npt.NDArray[np.float64], bins: RedshiftBins
) -> RedshiftPdfs:
    """N(z, sigma) integrated over each bin and renormalised to the bins' range (the mass beyond it is
    cut): Beck's error as a PDF. The centre is kept inside the range so that every row has mass."""
    edges = bins.edge_array
    centre = np.clip(z, edges[0], edges[-1])[:, None]
    width = np.maximum(sigma, SIGMA_FLOOR)[:, None]
    mass = np.diff(ndtr((edges[None, :] - centre) / width), axis=1)
    return RedshiftPdfs(mass / mass.sum(axis=1, keepdims=True), bins)


def fit_local_linear_model(splits: Splits) -> LocalLinearFit:
    """Fit on the training split; choose the aperture, k and the search's scaling on the validation split."""
    radii = APERTURE_CANDIDATES_ARCSEC
    train = colour_tables(splits.train, radii)
    val = colour_tables(splits.val, radii)
    best: LocalLinearFit | None = None
    for radius in radii:
        for standardise in (True, False):
            fit = choose_k(train[radius], val[radius], standardise, radius)
            if best is None or fit.val_sigma_mad < best.val_sigma_mad:
                best = fit
    assert best is not None
    log.info(
        'local linear fit (%s): chose the %.1f" aperture, k=%d, %s features: validation sigma_mad %.4f',
        splits.clipping,
        best.aperture_arcsec,
        best.k,
        "standardised" if best.standardised else "raw",
        best.val_sigma_mad,
    )
    return best


def choose_k(
    train: ColourTable,
    val: ColourTable,
    standardise: bool,
    aperture_arcsec: float,
    k_candidates: Sequence[int] = K_CANDIDATES,
) -> LocalLinearFit:
    """The k of ``k_candidates`` with the lowest validation sigma_MAD (one neighbour search at the largest)."""
    usable = [k for k in k_candidates if k <= len(train.redshift)]
    if not usable:
        raise ValueError(
            f"local linear fit: {len(train.redshift)} training galaxies, fewer than k={min(k_candidates)}"
        )
    widest = LocalLinearFit.fit(
        train.features, train.redshift, max(usable), standardise=standardise, aperture_arcsec=aperture_arcsec
    )
    rows = widest.neighbours(val.features)
    best: LocalLinearFit | None = None
    for k in usable:
        candidate = LocalLinearFit(
            widest.features,
            widest.redshift,
            widest.index,
            k,
            widest.centre,
            widest.scale,
            standardise,
            aperture_arcsec,
        )
        candidate.val_sigma_mad = metric_table(val.redshift, candidate.estimate(val.features, rows)[0])[
            "sigma_mad"
        ]
        if best is None or candidate.val_sigma_mad < best.val_sigma_mad:
            best = candidate
    assert best is not None
    return best


def fit_local_linear(challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    """The registry's builder for `baseline-local-linear` (the CNN hyperparameters do not apply)."""
    model = fit_local_linear_model(splits)
    bins = DEFAULT_BINS
    last: dict[str, object] = {}

    def estimate(cutouts: Cutouts) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        # evaluate() asks for the point and the PDFs of each chunk in turn: fit each chunk once
        if last.get("images") is not cutouts.images:
            last["images"] = cutouts.images
            last["estimate"] = model.estimate(colour_features(cutouts.images, model.aperture_arcsec))
        result = last["estimate"]
        assert isinstance(result, tuple)
        return result

    return Trained(
        challenger=challenger,
        predict=lambda cutouts: estimate(cutouts)[0].astype(np.float32),
        predict_pdf=lambda cutouts: gaussian_pdfs(*estimate(cutouts), bins),
        bins=bins,
        params={
            "model": "local linear fit on the k nearest neighbours in ugriz aperture colours and r (Beck+16)",
            "clipping": splits.clipping,
            "k": model.k,
            "aperture_arcsec": model.aperture_arcsec,
            "standardised_search": model.standardised,
            "clip_sigma": CLIP_SIGMA,
            "val_sigma_mad": model.val_sigma_mad,
        },
        n_train=len(splits.train),
        n_val=len(splits.val),
        run_metrics={"val_sigma_mad": model.val_sigma_mad},
    )
