"""What the service is asked about: the distribution of its inputs and answers, as Prometheus histograms.

Per cutout served: its r magnitude in the 6" total aperture, its g-r colour in the 2" colour aperture (the
same definitions as the nightly drift features, :mod:`astrospect.drift.features`) and the predicted
redshift. BentoML's ``/metrics`` exports them beside its own request metrics, summed over the worker
processes, so a production monitor can alert on live traffic with the features the nightly step watches.

The histograms are created on first use, inside a worker: ``prometheus_client`` picks its multiprocess mode
from ``PROMETHEUS_MULTIPROC_DIR`` when a metric is built, and BentoML sets it for its workers only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from astrospect.data.photometry import (
    COLOUR_APERTURE_RADIUS_ARCSEC,
    TOTAL_APERTURE_RADIUS_ARCSEC,
    aperture_flux,
    luptitudes,
)
from astrospect.settings import BANDS

R_MAG_BUCKETS = tuple(float(edge) for edge in np.arange(13.0, 21.01, 0.25))
G_R_BUCKETS = tuple(float(edge) for edge in np.round(np.arange(-0.5, 2.01, 0.1), 2))
REDSHIFT_BUCKETS = tuple(float(edge) for edge in np.round(np.arange(0.0, 0.801, 0.025), 3))
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)  # up to the batcher's MAX_BATCH_CUTOUTS
G, R = BANDS.index("g"), BANDS.index("r")


@dataclass(frozen=True)
class ServedHistograms:
    r_mag: Any  # prometheus_client.Histogram
    g_r: Any
    redshift: Any
    batch: Any  # cutouts per model call: how much the batcher shares


@cache
def histograms() -> ServedHistograms:
    """The three histograms, registered in ``prometheus_client``'s default registry (once per process)."""
    from prometheus_client import Histogram

    return ServedHistograms(
        r_mag=Histogram(
            "astrospect_served_r_mag",
            'r asinh magnitude in the 6" aperture of each cutout served',
            buckets=R_MAG_BUCKETS,
        ),
        g_r=Histogram(
            "astrospect_served_g_r",
            'g-r colour in the 2" aperture of each cutout served',
            buckets=G_R_BUCKETS,
        ),
        redshift=Histogram(
            "astrospect_served_redshift", "predicted redshift of each cutout served", buckets=REDSHIFT_BUCKETS
        ),
        batch=Histogram(
            "astrospect_batch_cutouts", "cutouts per model call (one batch)", buckets=BATCH_BUCKETS
        ),
    )


def observe_batch(cutouts: int) -> None:
    """Count one model call of ``cutouts`` cutouts."""
    histograms().batch.observe(cutouts)


def served_features(
    images: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """r (6") and g-r (2") of channels-last cutouts (N, 32, 32, 5)."""
    total = luptitudes(aperture_flux(images, TOTAL_APERTURE_RADIUS_ARCSEC))
    colour = luptitudes(aperture_flux(images, COLOUR_APERTURE_RADIUS_ARCSEC))
    return total[:, R], colour[:, G] - colour[:, R]


def observe_served(images: npt.NDArray[np.float32], redshift: npt.ArrayLike) -> None:
    """Count every cutout of an answered request in the three histograms."""
    r_mag, g_r = served_features(images)
    served = histograms()
    for r_value, colour, z in zip(r_mag, g_r, np.asarray(redshift, dtype=np.float64), strict=True):
        served.r_mag.observe(float(r_value))
        served.g_r.observe(float(colour))
        served.redshift.observe(float(z))
