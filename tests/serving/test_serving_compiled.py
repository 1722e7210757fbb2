"""The service's forward pass compiled per batch-size bucket: the same answers as ``predict_on_batch``, for any
batch size up to the limit, padded or not, with or without an E(B-V) input."""

from __future__ import annotations

import numpy as np
import pytest

from astrospect.models.cnn import build_pdf_cnn, build_seed_cnn, fit_input_scaling, fit_photometry_scaling
from astrospect.models.predict import model_inputs
from astrospect.pdf.bins import DEFAULT_BINS
from astrospect.serving.compiled import CompiledForward
from astrospect.settings import CUTOUT_SIZE, N_BANDS

pytestmark = pytest.mark.model

MAX_BATCH = 12  # buckets 1, 2, 4, 8 and 12: a limit that is not a power of two gets its own bucket


def galaxies(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:CUTOUT_SIZE, 0:CUTOUT_SIZE] - (CUTOUT_SIZE - 1) / 2
    profile = np.exp(-(xx**2 + yy**2) / (2 * rng.uniform(1.5, 3.0, (n, 1, 1)) ** 2))[..., None]
    flux = rng.lognormal(1.0, 0.8, (n, 1, 1, N_BANDS))
    noise = rng.normal(0, 0.05, (n, CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS))
    return (flux * profile + noise).astype(np.float32)


def test_buckets_cover_every_batch_size_up_to_the_limit() -> None:
    images = galaxies(8, seed=1)
    forward = CompiledForward(build_seed_cnn(fit_input_scaling(images), 0.0, 0.6), MAX_BATCH)
    assert forward.buckets == (1, 2, 4, 8, MAX_BATCH)
    assert [forward.bucket(n) for n in (1, 2, 3, 5, 8, 9, 12)] == [1, 2, 4, 8, 8, 12, 12]
    with pytest.raises(ValueError, match="at most 12 cutouts per model call, got 13"):
        forward.bucket(13)


@pytest.mark.parametrize("with_ebv", [False, True], ids=["cutouts", "cutouts-and-ebv"])
def test_compiled_answers_equal_predict_on_batch_at_every_size(with_ebv: bool) -> None:
    images = galaxies(MAX_BATCH, seed=2)
    scaling = fit_input_scaling(images)
    photometry = fit_photometry_scaling(images) if with_ebv else None
    model = build_pdf_cnn(scaling, DEFAULT_BINS, photometry=photometry)
    ebv = np.where(np.arange(MAX_BATCH) % 3 == 0, np.nan, 0.05).astype(np.float32)
    forward = CompiledForward(model, MAX_BATCH)
    for n in (1, 3, 5, 8, MAX_BATCH):  # padded (3, 5) and exact (1, 8, 12) buckets
        expected = np.asarray(model.predict_on_batch(model_inputs(model, images[:n], ebv[:n])))
        got = forward(images[:n], ebv[:n])
        assert got.shape == (n, DEFAULT_BINS.n) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
