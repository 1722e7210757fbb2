"""Dust: the disk's own, which follows its inclination, and the Milky Way's in front of the galaxy.

* **Internal dust** follows the disk's inclination: disk light is attenuated in the rest frame by Calzetti's
  curve with ``A_r = 1.27 (log10 q)^2`` (Unterborn & Ryden 2008) in the disk's axis ratio q; the bulge sits
  half behind the disk. The real galaxies the mixture was fitted to are seen at random inclinations, so
  their mixes carry the mean attenuation: each component is attenuated by its own minus that mean.
* **Galactic extinction**: E(B-V) per galaxy from a lognormal like SFD's over the SDSS footprint (median
  0.03), applied with Schlafly & Finkbeiner (2011)'s SDSS coefficients. The real model magnitudes are not
  corrected for it, so the mixture was fitted to them de-reddened by the mean E(B-V).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from astrospect.simulate.spectra import FloatArray

DISK_THICKNESS_Q0 = 0.2  # intrinsic axis ratio of an edge-on disk (Unterborn & Ryden 2008 find ~0.2)
UNTERBORN_RYDEN_COEFF = 1.27  # disk r-band dimming 1.27 (log10 q)^2 in mag (Unterborn & Ryden 2008)
BULGE_SHARE_BEHIND_DISK = 0.5  # half the bulge's light comes through the disk
# Galactic foreground: E(B-V) lognormal over the SDSS footprint like SFD's (median ~0.03, tail past 0.1).
EBV_MEDIAN, EBV_LOG_SCATTER, EBV_MAX = 0.03, 0.6, 0.5
EBV_MEAN = EBV_MEDIAN * float(np.exp(0.5 * EBV_LOG_SCATTER**2))
# A_band / E(B-V) for SDSS ugriz, Schlafly & Finkbeiner (2011) Table 6 (R_V = 3.1).
SF11_COEFFICIENTS = np.array([4.239, 3.303, 2.285, 1.698, 1.263])


def mean_inclination_dust() -> tuple[float, float]:
    """Mean rest-frame r attenuation of disks and of bulges over random orientations (cos i uniform): what
    the real galaxies the mixture was fitted to carry, and what each galaxy's own dust is taken relative to."""
    disk, bulge = inclination_dust((np.arange(2000) + 0.5) / 2000)
    return float(disk.mean()), float(bulge.mean())


def disk_axis_ratio(cos_inclination: npt.ArrayLike) -> FloatArray:
    """Projected axis ratio of an oblate disk of thickness DISK_THICKNESS_Q0 (Hubble 1926)."""
    cos_i = np.asarray(cos_inclination, dtype=np.float64)
    return np.asarray(np.sqrt((1 - DISK_THICKNESS_Q0**2) * cos_i**2 + DISK_THICKNESS_Q0**2))


def inclination_dust(cos_inclination: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Rest-frame r attenuation (mag) of the disk and of the bulge, against the same galaxy face-on.

    Disk: Unterborn & Ryden (2008)'s 1.27 (log10 q)^2. Bulge: the share behind the disk is dimmed by the
    disk's attenuation, the rest is not.
    """
    disk = UNTERBORN_RYDEN_COEFF * np.log10(disk_axis_ratio(cos_inclination)) ** 2
    behind = BULGE_SHARE_BEHIND_DISK
    bulge = -2.5 * np.log10((1.0 - behind) + behind * 10.0 ** (-0.4 * disk))
    return np.asarray(disk), np.asarray(bulge)


def galactic_ebv(unit_normal: FloatArray) -> FloatArray:
    """Galactic foreground E(B-V) of each galaxy (given unit normals): lognormal, capped at EBV_MAX."""
    return np.minimum(EBV_MEDIAN * np.exp(EBV_LOG_SCATTER * unit_normal), EBV_MAX)


def foreground_transmission(ebv: FloatArray) -> FloatArray:
    """The share (n, 5) of each band's light that the Galactic foreground lets through."""
    return np.asarray(10.0 ** (-0.4 * np.outer(ebv, SF11_COEFFICIENTS)))
