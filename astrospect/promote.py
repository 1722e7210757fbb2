"""Champion / challenger promotion (docs/explanation/architecture.md, "Promotion"): the policy, and the decision.

On the fixed holdout, a challenger becomes champion when its sigma_mad beats the champion's and neither
its catastrophic-outlier fraction nor its absolute bias is worse beyond a configured tolerance; the first
model becomes champion; a tie does not promote. :func:`decide` is that rule and nothing else.
:func:`promote_session` scores a session's CNN versions and the current champion on the same cutouts, picks
the best challenger by sigma_mad, applies :func:`decide`, moves the ``champion`` alias only when it says so,
and logs the decision with its numbers. Run twice on the same inputs, the second run changes nothing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from astrospect.settings import Settings, get_logger
from astrospect.tracking import registry, runs, sessions

if TYPE_CHECKING:
    from astrospect.data.dataset import RowSelection
    from astrospect.models.evaluate import Evaluation

log = get_logger(__name__)
POLICY_METRICS = ("sigma_mad", "catastrophic_outlier_frac", "bias")
PDF_GUARD = "crps"  # guarded too when the champion and the challenger both give PDFs
DECISION_FOLDER = "promotion"


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Decision:
    """The policy's verdict and the numbers it was made from."""

    promote: bool
    reason: str
    challenger: dict[str, float]
    champion: dict[str, float] | None
    tolerances: Tolerances

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    champion: Mapping[str, float] | None, challenger: Mapping[str, float], tolerances: Tolerances
) -> Decision:
    """Apply the promotion policy to two holdout metric tables: sigma_mad, outliers and bias, and crps when
    both give PDFs."""
    new = _policy_numbers(challenger, "challenger")
    if champion is None:
        return Decision(
            True,
            f"first model: no champion yet (challenger sigma_mad {new['sigma_mad']:.5f})",
            new,
            None,
            tolerances,
        )
    old = _policy_numbers(champion, "champion")

    def verdict(promote: bool, reason: str) -> Decision:
        return Decision(promote, reason, new, old, tolerances)

    if new["sigma_mad"] == old["sigma_mad"]:
        return verdict(
            False, f"tie: sigma_mad {new['sigma_mad']:.5f} equals the champion's; a tie does not promote"
        )
    if new["sigma_mad"] > old["sigma_mad"]:
        return verdict(
            False, f"sigma_mad {new['sigma_mad']:.5f} does not beat the champion's {old['sigma_mad']:.5f}"
        )
    outlier_growth = new["catastrophic_outlier_frac"] - old["catastrophic_outlier_frac"]
    if outlier_growth > tolerances.outlier:
        return verdict(
            False,
            f"sigma_mad improves ({old['sigma_mad']:.5f} -> {new['sigma_mad']:.5f}) but catastrophic_outlier_frac "
            f"grows by {outlier_growth:.5f} ({old['catastrophic_outlier_frac']:.5f} -> {new['catastrophic_outlier_frac']:.5f}), "
            f"beyond the tolerance {tolerances.outlier}",
        )
    bias_growth = abs(new["bias"]) - abs(old["bias"])
    if bias_growth > tolerances.bias:
        return verdict(
            False,
            f"sigma_mad improves ({old['sigma_mad']:.5f} -> {new['sigma_mad']:.5f}) but |bias| grows by {bias_growth:.5f} "
            f"({abs(old['bias']):.5f} -> {abs(new['bias']):.5f}), beyond the tolerance {tolerances.bias}",
        )
    pdfs = ""
    if PDF_GUARD in new and PDF_GUARD in old:  # both give PDFs: the PDF must not get worse either
        crps_growth = new[PDF_GUARD] - old[PDF_GUARD]
        if crps_growth > tolerances.crps:
            return verdict(
                False,
                f"sigma_mad improves ({old['sigma_mad']:.5f} -> {new['sigma_mad']:.5f}) but crps grows by "
                f"{crps_growth:.5f} ({old[PDF_GUARD]:.5f} -> {new[PDF_GUARD]:.5f}), beyond the tolerance {tolerances.crps}",
            )
        pdfs = f"; crps {old[PDF_GUARD]:.5f} -> {new[PDF_GUARD]:.5f} within {tolerances.crps}"
    return verdict(
        True,
        f"sigma_mad improves {old['sigma_mad']:.5f} -> {new['sigma_mad']:.5f}; catastrophic_outlier_frac "
        f"{old['catastrophic_outlier_frac']:.5f} -> {new['catastrophic_outlier_frac']:.5f} and |bias| "
        f"{abs(old['bias']):.5f} -> {abs(new['bias']):.5f} within tolerances ({tolerances.outlier}, {tolerances.bias})"
        f"{pdfs}",
    )


def _policy_numbers(metrics: Mapping[str, float], role: str) -> dict[str, float]:
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


@dataclass(frozen=True)
class Candidate:
    """A registered version scored on the holdout."""

    version: str
    run_id: str
    challenger: str | None
    metrics: dict[str, float]


@dataclass(frozen=True)
class PromotionResult:
    decision: Decision
    challenger_version: str
    champion_before: str | None
    champion_after: str | None
    changed: bool  # True when the champion alias moved
    holdout_digest: str
    n_holdout: int
    candidates: list[Candidate] = field(default_factory=list)  # the session's versions, best first
    champion_metrics: dict[str, float] | None = None
    decision_artifact: str | None = None  # run-relative path of the logged JSON, None when nothing new

    def summary(self) -> dict[str, Any]:
        """JSON-able, for Airflow's XCom and the CLI."""
        return {
            "promoted": self.changed,
            "reason": self.decision.reason,
            "challenger_version": self.challenger_version,
            "champion_before": self.champion_before,
            "champion_after": self.champion_after,
            "n_holdout": self.n_holdout,
            "holdout_digest": self.holdout_digest,
            "candidates": {c.version: {"challenger": c.challenger, **c.metrics} for c in self.candidates},
            "decision_artifact": self.decision_artifact,
        }


def promote_session(
    settings: Settings,
    session: str | Sequence[str] | None,
    holdout: RowSelection,
    tolerances: Tolerances | None = None,
) -> PromotionResult:
    """Score a session's registered versions and the champion on the same holdout cutouts, promote the best
    challenger if the policy says so, and log the decision on the session's parent run. Run twice on the
    same inputs, the second run changes nothing.

    ``session`` is the parent run id, or a list of registered version numbers, or None for the latest session.
    """
    from astrospect.models.evaluate import evaluate_model

    tolerances = tolerances or Tolerances.from_settings(settings)
    name = settings.registered_model_name
    parent_run_id = session if isinstance(session, str) else None
    versions = None if session is None or isinstance(session, str) else [str(v) for v in session]
    if versions is None:
        if parent_run_id is None:
            latest = sessions.latest_session(settings)
            if latest is None:
                raise LookupError(
                    f"experiment {settings.experiment_name!r} has no session with finished runs to promote from"
                )
            parent_run_id = latest.run_id
        versions = session_versions(settings, parent_run_id)
    if not versions:
        raise LookupError(f"no registered versions of {name!r} to promote (session {parent_run_id})")
    champion = registry.champion(settings)
    champion_before = champion.version if champion is not None else None

    def score(version: str) -> tuple[registry.RegisteredVersion, Evaluation]:
        registered = registry.get_version(settings, version)
        evaluation = evaluate_model(registry.load_model(settings, version), holdout, name=f"v{version}")
        log.info(
            "v%s (%s): holdout sigma_mad %.5f on %d galaxies",
            version,
            registered.challenger,
            evaluation.metrics["sigma_mad"],
            len(evaluation.z_true),
        )
        return registered, evaluation

    scored = {v: score(v) for v in dict.fromkeys(versions)}
    champion_eval = None
    if champion_before is not None:
        champion_eval = scored[champion_before][1] if champion_before in scored else score(champion_before)[1]
    holdout_ids = [evaluation.objid for _, evaluation in scored.values()]
    if champion_eval is not None:
        holdout_ids.append(champion_eval.objid)
    digest = _holdout_digest(holdout_ids)
    candidates = sorted(
        (
            Candidate(v, found.run_id, found.challenger, {**ev.metrics, **ev.pdf_metrics})
            for v, (found, ev) in scored.items()
        ),
        key=lambda c: (c.metrics["sigma_mad"], int(c.version)),
    )
    best = candidates[0]
    n_holdout = len(holdout_ids[0])
    champion_metrics = (
        {**champion_eval.metrics, **champion_eval.pdf_metrics} if champion_eval is not None else None
    )

    if best.version == champion_before:
        decision = Decision(False, f"v{best.version} is already the champion", _policy_numbers(best.metrics, "challenger"),
                            _policy_numbers(best.metrics, "champion"), tolerances)  # fmt: skip
        log.info("promotion: %s; nothing to change", decision.reason)
        return PromotionResult(
            decision,
            best.version,
            champion_before,
            champion_before,
            False,
            digest,
            n_holdout,
            candidates,
            champion_metrics,
        )

    decision = decide(champion_metrics, best.metrics, tolerances)
    log_run_id = parent_run_id or scored[best.version][0].session_run_id or best.run_id
    artifact = f"{DECISION_FOLDER}/v{best.version}-vs-{'v' + champion_before if champion_before else 'none'}-{digest}.json"
    payload = {
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "registered_model": name,
        "challenger_version": best.version,
        "champion_version_before": champion_before,
        "champion_version_after": best.version if decision.promote else champion_before,
        "holdout": {"digest": digest, "n_galaxies": n_holdout, "shards": [str(s) for s in holdout.shards]},
        "decision": decision.to_dict(),
        "candidates": [asdict(c) for c in candidates],
        "champion_metrics": champion_metrics,
    }
    verdict = "promoted" if decision.promote else "rejected"
    logged = runs.log_decision(settings, log_run_id, artifact, payload, f"v{best.version} {verdict}")
    if logged:
        registry.tag_version(
            settings,
            best.version,
            {
                "promotion.decision": verdict,
                "promotion.reason": decision.reason,
                "promotion.compared_with": f"v{champion_before}" if champion_before else "none",
                "promotion.holdout_digest": digest,
            },
        )
    registry.point_challenger(settings, best.version)
    champion_after = champion_before
    if decision.promote:
        registry.move_champion(settings, best.version)
        champion_after = best.version
        log.info(
            "promoted v%s to champion (was %s): %s",
            best.version,
            f"v{champion_before}" if champion_before else "none",
            decision.reason,
        )
    else:
        log.info("kept champion v%s; v%s not promoted: %s", champion_before, best.version, decision.reason)
    return PromotionResult(
        decision,
        best.version,
        champion_before,
        champion_after,
        champion_after != champion_before,
        digest,
        n_holdout,
        candidates,
        champion_metrics,
        artifact if logged else None,
    )


def session_versions(settings: Settings, parent_run_id: str) -> list[str]:
    """The registered versions a session's challengers became (baselines are never registered)."""
    versions = [
        child.model_version
        for child in sessions.session_children(settings, parent_run_id)
        if not child.baseline and child.model_version is not None
    ]
    return sorted(versions, key=int)


def _holdout_digest(objid_arrays: Sequence[np.ndarray]) -> str:
    """Fingerprint of the holdout galaxies; every model must have been scored on exactly the same ones."""
    first = np.sort(np.asarray(objid_arrays[0], dtype=np.int64))
    for other in objid_arrays[1:]:
        if not np.array_equal(first, np.sort(np.asarray(other, dtype=np.int64))):
            raise RuntimeError(
                "the models were not scored on the same holdout galaxies; refusing to compare them"
            )
    return hashlib.sha256(first.tobytes()).hexdigest()[:12]
