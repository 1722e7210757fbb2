from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from astrospect.pdf.bins import RedshiftBins, RedshiftPdfs
from astrospect.pdf.plots import (
    _spread_over_redshift,
    plot_coverage_curve,
    plot_example_pdfs,
    plot_pit_histogram,
)

pytestmark = pytest.mark.unit

BINS = RedshiftBins.uniform(0.0, 0.7, 140)


def _pdfs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.02, 0.6, n)
    probs = np.exp(-0.5 * ((BINS.centres[None, :] - z[:, None]) / 0.02) ** 2)
    return probs / probs.sum(axis=1, keepdims=True), z


def _is_png(path: Path, min_width: int) -> bool:
    image = matplotlib.image.imread(path)
    return image.ndim == 3 and image.shape[1] >= min_width and float(image.std()) > 0


def test_pdf_figures_are_written_as_pngs(tmp_path: Path) -> None:
    probs, z = _pdfs(200, 0)
    pits = {"cnn": np.random.default_rng(1).uniform(size=200), "null": np.linspace(0, 1, 200)}
    assert _is_png(plot_pit_histogram(pits, tmp_path / "pit.png"), 500)
    assert _is_png(plot_coverage_curve(pits, tmp_path / "coverage.png"), 400)
    examples = plot_example_pdfs(
        {"cnn": RedshiftPdfs(probs, BINS), "null": RedshiftPdfs(np.full_like(probs, 1 / BINS.n), BINS)},
        z,
        tmp_path / "ex.png",
    )
    assert _is_png(examples, 1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coverage.png", "ex.png", "pit.png"]


def test_examples_are_spread_over_the_redshift_range() -> None:
    z = np.concatenate([np.full(990, 0.08), np.linspace(0.3, 0.6, 10)])  # a peak and a thin tail
    chosen = _spread_over_redshift(z, 12, seed=0)
    assert len(set(chosen)) == 12 and z[chosen].max() >= 0.3  # the tail is shown
    assert _spread_over_redshift(z[:5], 12, seed=0) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="no galaxies"):
        _spread_over_redshift(np.zeros(0), 12, seed=0)
