"""Shared fixtures of the model tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def raw_cutouts() -> np.ndarray:
    """32 raw channels-last cutouts: sky noise and a round galaxy of random brightness per band."""
    rng = np.random.default_rng(7)
    sky = rng.normal(0, 0.03, (32, 32, 32, 5))
    yy, xx = np.mgrid[0:32, 0:32] - 15.5
    galaxy = 20.0 * np.exp(-(xx**2 + yy**2) / 8.0)[None, :, :, None] * rng.uniform(0.1, 3, (32, 1, 1, 5))
    return (sky + galaxy).astype(np.float32)
