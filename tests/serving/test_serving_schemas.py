"""The one cutout check of every request path: what a batch of cutouts may be, and what the refusal says."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from astrospect.serving.schemas import CutoutError, validate_cutouts

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(3)
CHANNELS_LAST = RNG.normal(1.0, 0.5, (3, 32, 32, 5)).astype(np.float32)


def test_both_layouts_give_the_same_model_input() -> None:
    band_first = np.transpose(CHANNELS_LAST, (0, 3, 1, 2))
    from_last = validate_cutouts(CHANNELS_LAST, max_cutouts=4)
    from_first = validate_cutouts(band_first, max_cutouts=4)
    assert from_last.shape == (3, 32, 32, 5)
    assert from_last.dtype == np.float32
    np.testing.assert_array_equal(from_first, from_last)
    np.testing.assert_array_equal(from_last, CHANNELS_LAST)


def test_64_pixel_cutouts_are_centre_cropped() -> None:
    padded = np.pad(CHANNELS_LAST, ((0, 0), (16, 16), (16, 16), (0, 0)), constant_values=-1.0)
    np.testing.assert_array_equal(validate_cutouts(padded, max_cutouts=4), CHANNELS_LAST)


def test_nested_lists_and_integers_are_accepted() -> None:
    images = validate_cutouts(np.ones((1, 5, 32, 32), dtype=np.int64).tolist(), max_cutouts=4)
    assert images.dtype == np.float32
    assert float(images.sum()) == 5 * 32 * 32


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.ones((2, 32, 32)), "expected rank 4"),
        (np.ones((2, 4, 32, 32)), "expected 5 bands (ugriz)"),
        (np.ones((2, 32, 32, 6)), "expected 5 bands (ugriz)"),
        (np.ones((2, 5, 16, 16)), "expected 32x32 or 64x64 cutouts, got 16x16"),
        (np.ones((2, 5, 32, 48)), "expected 5 bands"),
        (np.ones((5, 5, 32, 32)), "expected at most 4 cutouts per request, got 5"),
        (np.ones((0, 5, 32, 32)), "got an empty batch"),
        ([], "got an empty batch"),
        (7.0, "got an empty batch"),
        ([[[["a"]]]], "expected numbers"),
        ([[[[None]]]], "expected numbers"),
        ([[[[True]]]], "got booleans"),
        ([[[[1.0, 2.0]]], [[[1.0]]]], "ragged nested lists"),
    ],
)
def test_bad_batches_are_refused_with_what_was_expected(values: Any, message: str) -> None:
    with pytest.raises(CutoutError, match="images: ") as refused:
        validate_cutouts(values, max_cutouts=4)
    assert message in str(refused.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])  # 1e39 overflows float32
def test_non_finite_fluxes_are_refused_and_located(bad: float) -> None:
    images = CHANNELS_LAST.copy().astype(np.float64)
    images[2, 10, 11, 3] = bad
    with pytest.raises(CutoutError) as refused:
        validate_cutouts(images, max_cutouts=4)
    assert "expected finite fluxes, got 1 NaN or infinite value(s); the first in cutout 2, band i" in str(
        refused.value
    )
