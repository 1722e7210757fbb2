"""The served-input histograms: every cutout answered is counted, with the drift step's definitions."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY

from astrospect.drift.features import image_features
from astrospect.serving.monitoring import R_MAG_BUCKETS, observe_served, served_features
from astrospect.settings import CUTOUT_SIZE, N_BANDS

pytestmark = pytest.mark.unit


def galaxies(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:CUTOUT_SIZE, 0:CUTOUT_SIZE] - (CUTOUT_SIZE - 1) / 2
    profile = np.exp(-(xx**2 + yy**2) / (2 * rng.uniform(1.5, 3.0, (n, 1, 1)) ** 2))[..., None]
    flux = rng.lognormal(2.0, 0.3, (n, 1, 1, N_BANDS))
    noise = rng.normal(0, 0.05, (n, CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS))
    return (flux * profile + noise).astype(np.float32)


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_served_features_are_the_drift_features() -> None:
    images = galaxies(20, seed=1)
    r_mag, g_r = served_features(images)
    drift = image_features(images)
    np.testing.assert_allclose(r_mag, drift["mag_r"], atol=1e-4)
    np.testing.assert_allclose(g_r, drift["g-r"], atol=1e-4)


def test_every_served_cutout_is_counted_in_each_histogram() -> None:
    images = galaxies(7, seed=2)
    redshift = np.linspace(0.05, 0.35, 7)
    names = ("astrospect_served_r_mag", "astrospect_served_g_r", "astrospect_served_redshift")
    before = {name: sample(f"{name}_count") for name in names}
    redshift_sum = sample("astrospect_served_redshift_sum")
    low_redshift = sample("astrospect_served_redshift_bucket", le="0.1")
    r_mag, _ = served_features(images)
    edges = (
        min(edge for edge in R_MAG_BUCKETS if edge >= r_mag.max()),
        max(edge for edge in R_MAG_BUCKETS if edge < r_mag.min()),
    )
    before_r_buckets = [sample("astrospect_served_r_mag_bucket", le=str(edge)) for edge in edges]
    observe_served(images[:3], redshift[:3])
    observe_served(images[3:], redshift[3:])
    for name in names:
        assert sample(f"{name}_count") - before[name] == 7
    assert sample("astrospect_served_redshift_sum") - redshift_sum == pytest.approx(redshift.sum())
    assert sample("astrospect_served_redshift_bucket", le="0.1") - low_redshift == 2  # 0.05 and 0.1
    assert R_MAG_BUCKETS[0] < r_mag.min() and r_mag.max() < R_MAG_BUCKETS[-1]
    assert sample("astrospect_served_r_mag_bucket", le=str(edges[0])) - before_r_buckets[0] == 7
    assert sample("astrospect_served_r_mag_bucket", le=str(edges[1])) - before_r_buckets[1] == 0
