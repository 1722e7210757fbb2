"""The spectral mixture: each galaxy's noiseless colours, drawn given its redshift and magnitude.

A Gaussian mixture over (ln z, r, u-g, g-r, r-i, i-z) fitted to 20,594 real SDSS galaxies
(``spectral_mixture.json``, written by :mod:`.calibrate`). Conditioning it on a galaxy's (ln z, r) is
closed-form, so the joint colour distribution at each redshift is the real one and red galaxies are more
luminous as they really are. The mixture was deconvolved of the colour scatter that the simulator's own
dust, lines and bulge-disk split add after it, so they do not add it twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

from astrospect.simulate.selection import R_BRIGHT_LIMIT, R_SAMPLE_FAINTEST
from astrospect.simulate.spectra import FloatArray

MIXTURE_JSON = Path(__file__).with_name("spectral_mixture.json")
MIXTURE_VERSION = 4  # the layout load_mixture reads (calibrate writes it)
# The weights' neutral values (the selection's own n(z), the mixture's own r given z): calibration
# measures each weight on a model without it.
NO_REDSHIFT_WEIGHT: dict[str, Any] = {
    "redshift_weight_z": np.array([0.0]),
    "redshift_weight": np.array([1.0]),
}
NO_MAGNITUDE_WEIGHT: dict[str, Any] = {
    "magnitude_weight_z_edges": np.array([0.0, 1.0]),
    "magnitude_weight_r_edges": np.array([[R_BRIGHT_LIMIT, R_SAMPLE_FAINTEST]]),
    "magnitude_weight": np.array([[1.0]]),
}


@dataclass(frozen=True)
class SpectralMixture:
    """A Gaussian mixture over (ln z, r, u-g, g-r, r-i, i-z), deconvolved of the scatter that the
    simulator's own dust and line strengths add; and what calibration measured beside it (see
    :mod:`.calibrate`)."""

    weights: FloatArray  # (K,)
    means: FloatArray  # (K, 6): ln z, r, u-g, g-r, r-i, i-z (colours de-reddened, SDSS system)
    covariances: FloatArray  # (K, 6, 6)
    residual_range: FloatArray  # (2, 4) the smallest and largest colour changes a warp may make (mag)
    knot_redshift: FloatArray  # (n_knots,) median redshift of each calibration bin
    knot_shares: FloatArray  # (n_knots, 5) mean light shares there: the typical galaxy's K-correction
    red_shares: FloatArray  # (5,) mean light shares of the reddest quarter (rest-frame g-r)
    rest_g_r_mean: float  # of the real galaxies' mixes: standardises the colour score
    rest_g_r_std: float
    # The selection's n(z) times this weight is the real sample's n(z) (see :mod:`.calibrate`, step 6):
    # linear between knots, the end values beyond them.
    redshift_weight_z: FloatArray  # (n_weights,)
    redshift_weight: FloatArray  # (n_weights,)
    # The mixture's r given z times this weight is the real sample's r given z (step 6): constant in cells,
    # each redshift bin (edges ``magnitude_weight_z_edges``) with its own r edges.
    magnitude_weight_z_edges: FloatArray  # (n_z + 1,)
    magnitude_weight_r_edges: FloatArray  # (n_z, n_r + 1)
    magnitude_weight: FloatArray  # (n_z, n_r)

    def redshift_weight_at(self, z: FloatArray) -> FloatArray:
        return np.asarray(np.interp(z, self.redshift_weight_z, self.redshift_weight))

    def magnitude_weight_bin(self, z: FloatArray) -> npt.NDArray[np.intp]:
        """The magnitude weight's redshift bin of each z (the end bins beyond the edges)."""
        inner = self.magnitude_weight_z_edges[1:-1]
        return np.asarray(np.searchsorted(inner, z, side="right"), dtype=np.intp)

    def magnitude_weight_on(self, r: FloatArray) -> FloatArray:
        """The weight at each r of a grid, per redshift bin: (n_z, len(r))."""
        cells = [np.searchsorted(edges[1:-1], r, side="right") for edges in self.magnitude_weight_r_edges]
        return np.asarray([weight[cell] for weight, cell in zip(self.magnitude_weight, cells, strict=True)])

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> SpectralMixture:
        """From the fields of ``spectral_mixture.json`` (or of calibration's fit before it is written)."""

        def array(name: str) -> FloatArray:
            return np.asarray(document[name], dtype=np.float64)

        return cls(
            weights=array("weights"),
            means=array("means"),
            covariances=array("covariances"),
            residual_range=array("residual_range"),
            knot_redshift=array("knot_redshift"),
            knot_shares=array("knot_shares"),
            red_shares=array("red_shares"),
            rest_g_r_mean=float(document["rest_g_r_mean"]),
            rest_g_r_std=float(document["rest_g_r_std"]),
            redshift_weight_z=array("redshift_weight_z"),
            redshift_weight=array("redshift_weight"),
            magnitude_weight_z_edges=array("magnitude_weight_z_edges"),
            magnitude_weight_r_edges=array("magnitude_weight_r_edges"),
            magnitude_weight=array("magnitude_weight"),
        )


def load_mixture(path: Path = MIXTURE_JSON) -> SpectralMixture:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{path}: missing; run `python -m astrospect.simulate.calibrate`") from error

    if document.get("version") != MIXTURE_VERSION:
        raise ValueError(
            f"{path}: field 'version': {document.get('version')!r}, this simulator reads version "
            f"{MIXTURE_VERSION}; run `python -m astrospect.simulate.calibrate`"
        )

    return SpectralMixture.from_document(document)


@dataclass(frozen=True)
class ConditionalMixture:
    """The mixture conditioned on (ln z, r), precomputed per component (Gaussian conditioning)."""

    log_weights: FloatArray  # (K,)
    cond_means: FloatArray  # (K, 2)
    cond_precisions: FloatArray  # (K, 2, 2)
    cond_log_dets: FloatArray  # (K,)
    target_means: FloatArray  # (K, 4)
    regressions: FloatArray  # (K, 4, 2)
    target_cholesky: FloatArray  # (K, 4, 4)

    @classmethod
    def of(cls, mixture: SpectralMixture) -> ConditionalMixture:
        given, target = slice(0, 2), slice(2, None)
        precisions, log_dets, regressions, choleskys = [], [], [], []
        for cov in mixture.covariances:
            precision = np.linalg.inv(cov[given, given])
            regression = cov[target, given] @ precision
            residual = cov[target, target] - regression @ cov[given, target]
            precisions.append(precision)
            log_dets.append(np.linalg.slogdet(cov[given, given])[1])
            regressions.append(regression)
            choleskys.append(np.linalg.cholesky(residual))
        return cls(
            log_weights=np.log(mixture.weights),
            cond_means=mixture.means[:, given],
            cond_precisions=np.array(precisions),
            cond_log_dets=np.array(log_dets),
            target_means=mixture.means[:, target],
            regressions=np.array(regressions),
            target_cholesky=np.array(choleskys),
        )

    def sample_r(
        self,
        z: FloatArray,
        rank: FloatArray,
        limits: tuple[float, float],
        weighted_by: SpectralMixture,
    ) -> FloatArray:
        """Apparent r given z (the mixture's marginal over (z, r), conditioned on z, times the magnitude
        weight of ``weighted_by``), truncated to ``limits``, at quantile ``rank`` of each galaxy."""
        grid = np.linspace(*limits, 400)
        ln_z = np.log(z)  # the mixture's redshift coordinate
        mean_z, mean_r = self.cond_means[:, 0], self.cond_means[:, 1]
        covariance = np.linalg.inv(self.cond_precisions)  # (K, 2, 2): the (ln z, r) block
        var_z, cov_zr, var_r = covariance[:, 0, 0], covariance[:, 0, 1], covariance[:, 1, 1]
        log_w = self.log_weights - 0.5 * ((ln_z[:, None] - mean_z) ** 2 / var_z + np.log(var_z))
        w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
        r_mean = mean_r + cov_zr / var_z * (ln_z[:, None] - mean_z)  # (n, K)
        r_sigma = np.sqrt(var_r - cov_zr**2 / var_z)
        cdf = np.einsum(
            "nk,nkm->nm", w, special.ndtr((grid[None, None, :] - r_mean[:, :, None]) / r_sigma[None, :, None])
        )
        weight = weighted_by.magnitude_weight_on(0.5 * (grid[1:] + grid[:-1]))
        cell_mass = np.diff(cdf, axis=1) * weight[weighted_by.magnitude_weight_bin(z)]
        cdf = np.concatenate([np.zeros((len(cdf), 1)), np.cumsum(cell_mass, axis=1)], axis=1)
        cdf = (cdf - cdf[:, :1]) / np.maximum(cdf[:, -1:] - cdf[:, :1], 1e-300)
        return np.array([np.interp(q, row, grid) for q, row in zip(rank, cdf, strict=True)])

    def sample(self, rng: np.random.Generator, z: FloatArray, r: FloatArray) -> FloatArray:
        """Noiseless colours (n, 4: u-g, g-r, r-i, i-z) drawn from the mixture given each galaxy's z and r."""
        given = np.column_stack([np.log(z), r])
        offset = given[:, None, :] - self.cond_means[None, :, :]  # (n, K, 2)
        mahalanobis = np.einsum("nki,kij,nkj->nk", offset, self.cond_precisions, offset)
        log_p = self.log_weights - 0.5 * (mahalanobis + self.cond_log_dets)
        p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
        cumulative = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
        component = np.minimum((cumulative < rng.random(len(z))[:, None]).sum(axis=1), len(p[0]) - 1)
        unit = rng.standard_normal((len(z), self.target_means.shape[1]))
        mean = self.target_means[component] + np.einsum(
            "nij,nj->ni", self.regressions[component], offset[np.arange(len(z)), component]
        )
        return np.asarray(mean + np.einsum("nij,nj->ni", self.target_cholesky[component], unit))
