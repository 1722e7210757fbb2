"""The local linear fit of Beck et al. 2016: exact on an exact linear relation, robust to an outlier
neighbour, normalised Gaussian PDFs, and the registry's `baseline-local-linear` trained and scored through
the pipeline on a tiny snapshot whose colours carry the redshift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from astrospect.data.dataset import select_splits
from astrospect.data.shards import write_shard
from astrospect.models import registry as challengers
from astrospect.models.local_linear import K_CANDIDATES, SIGMA_FLOOR, LocalLinearFit, gaussian_pdfs
from astrospect.models.pipeline import run_challenger
from astrospect.models.registry import TrainConfig
from astrospect.pdf.bins import DEFAULT_BINS

pytestmark = pytest.mark.model


def _linear_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 5)) * [0.3, 0.2, 0.1, 0.1, 1.0] + [1.5, 0.8, 0.4, 0.3, 17.5]
    return x, 0.2 + x @ np.array([0.05, -0.08, 0.3, 0.1, 0.02]) - 0.35


@pytest.mark.parametrize("standardise", [True, False])
def test_an_exact_linear_relation_is_recovered_exactly(standardise: bool) -> None:
    x, z = _linear_set(3000, 0)
    fit = LocalLinearFit.fit(x, z, 64, standardise=standardise, aperture_arcsec=3.0)
    x_new, z_new = _linear_set(500, 1)
    estimate, sigma = fit.estimate(x_new)
    assert np.max(np.abs(estimate - z_new)) < 1e-6
    assert np.max(sigma) < 1e-6


def test_an_outlying_neighbour_is_clipped_out_of_the_fit() -> None:
    x, z = _linear_set(3000, 0)
    x_new, z_new = _linear_set(200, 1)
    fit = LocalLinearFit.fit(x, z, 64, standardise=True, aperture_arcsec=3.0)
    near = fit.neighbours(x_new[:1])[0, 0]
    wrong = z.copy()
    wrong[near] += 0.5  # a catastrophic training redshift among the first galaxy's neighbours
    clipped = LocalLinearFit.fit(x, wrong, 64, standardise=True, aperture_arcsec=3.0)
    estimate, sigma = clipped.estimate(x_new[:1])
    assert estimate[0] == pytest.approx(z_new[0], abs=1e-6)
    assert sigma[0] < 1e-6


def test_too_few_training_galaxies_for_k_is_a_clear_error() -> None:
    x, z = _linear_set(50, 0)
    with pytest.raises(ValueError, match="k=64 neighbours asked for, 50 training galaxies"):
        LocalLinearFit.fit(x, z, 64, standardise=True, aperture_arcsec=3.0)


def test_the_pdfs_are_normalised_gaussians_of_the_fits_scatter() -> None:
    z = np.array([0.1, 0.3, 0.69, 0.9])  # the last beyond the bins: its mass is kept at the edge
    sigma = np.array([0.02, 0.0, 0.05, 0.01])  # an exact fit still gets the floor's width
    pdfs = gaussian_pdfs(z, sigma, DEFAULT_BINS)
    assert np.allclose(pdfs.probabilities.sum(axis=1), 1.0)
    centres = DEFAULT_BINS.centres
    means = pdfs.probabilities @ centres
    assert means[:2] == pytest.approx(z[:2], abs=1e-3)
    spread = np.sqrt(pdfs.probabilities[0] @ (centres - means[0]) ** 2)
    assert spread == pytest.approx(0.02, rel=0.05)
    assert np.sqrt(pdfs.probabilities[1] @ (centres - means[1]) ** 2) < 2 * SIGMA_FLOOR
    assert pdfs.probabilities[3].argmax() == DEFAULT_BINS.n - 1


def _coloured_shards(folder: Path) -> list[Path]:
    """Round galaxies whose ugriz fluxes redden linearly in magnitude with redshift, with sky noise."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:32, 0:32] - 15.5
    profile = np.exp(-(xx**2 + yy**2) / 8.0)
    paths = []
    for k in range(3):
        n = 400
        z = rng.uniform(0.02, 0.6, n)
        brightness = rng.uniform(-0.5, 0.5, n)[:, None]
        magnitudes = brightness + z[:, None] * np.array([4.0, 3.0, 1.5, 0.8, 0.4])
        flux = 30.0 * 10 ** (-0.4 * magnitudes)
        images = flux[:, :, None, None] * profile + rng.normal(0, 0.01, (n, 5, 32, 32))
        paths.append(
            write_shard(folder / f"c{k}.h5", images, 10**9 + k * 10**6 + np.arange(n), z, np.full(n, 1e-4))
        )
    return paths


def test_the_registry_entry_trains_predicts_and_gives_pdfs_on_a_tiny_set(tmp_path: Path) -> None:
    challenger = challengers.get("baseline-local-linear")
    assert challenger.output == "pdf" and challenger.baseline and challenger.model_family == "code"
    splits = select_splits(_coloured_shards(tmp_path), challenger.clipping)
    outcome = run_challenger(challenger, splits, TrainConfig(out_dir=tmp_path / "out"))
    trained, evaluation = outcome.trained, outcome.evaluation
    assert trained.params["k"] in K_CANDIDATES
    assert 0 < trained.run_metrics["val_sigma_mad"] < 0.02
    assert evaluation.metrics["sigma_mad"] < 0.02  # colours carry z here: far below the range's spread
    assert evaluation.pdfs is not None and len(evaluation.pdfs) == len(splits.holdout)
    assert np.allclose(evaluation.pdfs.probabilities.sum(axis=1), 1.0)
    assert 0 < evaluation.pdf_metrics["crps"] < 0.02
