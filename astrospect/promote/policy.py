"""The promotion policy (docs/explanation/architecture.md, "Promotion"): one challenger against the champion.

On the fixed holdout, a challenger becomes champion when its sigma_mad beats the champion's and neither
its catastrophic-outlier fraction nor its absolute bias is worse beyond a configured tolerance (nor its
mean CRPS, when both give PDFs); the first model becomes champion; a tie does not promote. :func:`judge`
is that rule and nothing else: two metric tables in, a :class:`Verdict` out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from astrospect.settings import Settings

POLICY_METRICS = ("sigma_mad", "catastrophic_outlier_frac", "bias")
PDF_GUARD = "crps"  # guarded too when the champion and the challenger both give PDFs


@dataclass(frozen=True, kw_only=True)
class Tolerances:
    """How much worse than the champion a challenger may be on the guard metrics and still be promoted."""

    outlier: float  # catastrophic_outlier_frac may grow by at most this (a fraction: 0.002 = 0.2 points)
    bias: float  # |bias| may grow by at most this
    crps: float = 0.0005  # when both give PDFs: the mean CRPS may grow by at most this

    def __post_init__(self) -> None:
        for name, value in (("outlier", self.outlier), ("bias", self.bias), ("crps", self.crps)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"tolerance '{name}' must be a finite number >= 0, got {value}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Tolerances:
        return cls(
            outlier=settings.outlier_tolerance, bias=settings.bias_tolerance, crps=settings.crps_tolerance
        )


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The policy's verdict on one challenger and the numbers it was made from."""

    promote: bool
    reason: str
    challenger: dict[str, float]
    champion: dict[str, float] | None
    tolerances: Tolerances

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(
    *, champion: Mapping[str, float] | None, challenger: Mapping[str, float], tolerances: Tolerances
) -> Verdict:
    """Apply the promotion policy to two holdout metric tables: sigma_mad, outliers and bias, and crps when
    both give PDFs."""
    new = policy_numbers(challenger, role="challenger")
    if champion is None:
        return Verdict(
            promote=True,
            reason=f"first model: no champion yet (challenger sigma_mad {new['sigma_mad']:.5f})",
            challenger=new,
            champion=None,
            tolerances=tolerances,
        )
    old = policy_numbers(champion, role="champion")
    promote, reason = _compare(new=new, old=old, tolerances=tolerances)
    return Verdict(promote=promote, reason=reason, challenger=new, champion=old, tolerances=tolerances)


def _compare(
    *, new: Mapping[str, float], old: Mapping[str, float], tolerances: Tolerances
) -> tuple[bool, str]:
    """Whether ``new`` beats ``old`` under the policy, and why."""
    if new["sigma_mad"] == old["sigma_mad"]:
        return False, f"tie: sigma_mad {new['sigma_mad']:.5f} equals the champion's; a tie does not promote"
    if new["sigma_mad"] > old["sigma_mad"]:
        return False, f"sigma_mad {new['sigma_mad']:.5f} does not beat the champion's {old['sigma_mad']:.5f}"
    improves = f"sigma_mad improves ({old['sigma_mad']:.5f} -> {new['sigma_mad']:.5f})"
    outlier_growth = new["catastrophic_outlier_frac"] - old["catastrophic_outlier_frac"]
    if outlier_growth > tolerances.outlier:
        return False, (
            f"{improves} but catastrophic_outlier_frac "
            f"grows by {outlier_growth:.5f} ({old['catastrophic_outlier_frac']:.5f} -> {new['catastrophic_outlier_frac']:.5f}), "
            f"beyond the tolerance {tolerances.outlier}"
        )
    bias_growth = abs(new["bias"]) - abs(old["bias"])
    if bias_growth > tolerances.bias:
        return False, (
            f"{improves} but |bias| grows by {bias_growth:.5f} "
            f"({abs(old['bias']):.5f} -> {abs(new['bias']):.5f}), beyond the tolerance {tolerances.bias}"
        )
    pdfs = ""
    if PDF_GUARD in new and PDF_GUARD in old:  # both give PDFs: the PDF must not get worse either
        crps_growth = new[PDF_GUARD] - old[PDF_GUARD]
        if crps_growth > tolerances.crps:
            return False, (
                f"{improves} but crps grows by "
                f"{crps_growth:.5f} ({old[PDF_GUARD]:.5f} -> {new[PDF_GUARD]:.5f}), beyond the tolerance {tolerances.crps}"
            )
        pdfs = f"; crps {old[PDF_GUARD]:.5f} -> {new[PDF_GUARD]:.5f} within {tolerances.crps}"
    return True, (
        f"sigma_mad improves {old['sigma_mad']:.5f} -> {new['sigma_mad']:.5f}; catastrophic_outlier_frac "
        f"{old['catastrophic_outlier_frac']:.5f} -> {new['catastrophic_outlier_frac']:.5f} and |bias| "
        f"{abs(old['bias']):.5f} -> {abs(new['bias']):.5f} within tolerances ({tolerances.outlier}, {tolerances.bias})"
        f"{pdfs}"
    )


def policy_numbers(metrics: Mapping[str, float], *, role: str) -> dict[str, float]:
    """The metrics the policy reads, checked to be there and finite; ``role`` names the table in errors."""
    numbers = {}
    for name in POLICY_METRICS:
        if name not in metrics:
            raise ValueError(f"{role} metrics: '{name}' is missing (have {sorted(metrics)})")
        value = float(metrics[name])
        if not math.isfinite(value):
            raise ValueError(f"{role} metrics: '{name}' is {value}, not a finite number")
        numbers[name] = value
    if PDF_GUARD in metrics:
        value = float(metrics[PDF_GUARD])
        if not math.isfinite(value):
            raise ValueError(f"{role} metrics: '{PDF_GUARD}' is {value}, not a finite number")
        numbers[PDF_GUARD] = value
    return numbers
