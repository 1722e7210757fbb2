"""Promote a session: resolve its versions, then score -> decide -> record -> apply.

Run twice on the same inputs, the second run changes nothing: the best version is the champion by then,
so nothing is recorded and no alias moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from astrospect.promote.aliases import apply
from astrospect.promote.decision import Candidate, PromotionDecision, decide
from astrospect.promote.policy import Tolerances
from astrospect.promote.recording import record
from astrospect.promote.scoring import score
from astrospect.settings import Settings
from astrospect.tracking import registry, sessions

if TYPE_CHECKING:
    from astrospect.data.dataset import RowSelection


@dataclass(frozen=True, kw_only=True)
class PromotionResult:
    """A decision and what applying it did."""

    decision: PromotionDecision
    champion_before: str | None
    champion_after: str | None
    decision_artifact: str | None = None  # run-relative path of the logged JSON, None when nothing new

    def __post_init__(self) -> None:
        # The decision says what the champion was and should become: a result that disagrees is a bug.
        expected = (self.decision.champion_version, self.decision.champion_after)
        if (self.champion_before, self.champion_after) != expected:
            raise ValueError(
                f"champion_before/champion_after {self.champion_before}/{self.champion_after} disagree with "
                f"the decision's {expected[0]}/{expected[1]}"
            )

    @property
    def changed(self) -> bool:
        """True when the champion alias moved."""
        return self.champion_after != self.champion_before

    @property
    def challenger_version(self) -> str:
        return self.decision.challenger_version

    @property
    def candidates(self) -> list[Candidate]:
        """The session's versions, best first."""
        return list(self.decision.ranking)

    @property
    def champion_metrics(self) -> dict[str, float] | None:
        return self.decision.champion_metrics

    @property
    def holdout_digest(self) -> str:
        return self.decision.holdout_digest

    @property
    def n_holdout(self) -> int:
        return self.decision.n_holdout

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
    challenger if the policy says so, and log the decision on the session's parent run.

    ``session`` is the parent run id, or a list of registered version numbers, or None for the latest session.
    """
    parent_run_id, versions = resolve_versions(settings=settings, session=session)
    champion = registry.champion(settings)
    champion_before = champion.version if champion is not None else None
    scores = score(settings=settings, versions=versions, champion_version=champion_before, holdout=holdout)
    decision = decide(
        candidates=scores.candidates,
        champion=scores.champion,
        tolerances=tolerances or Tolerances.from_settings(settings),
    )
    best = decision.ranking[0]
    artifact = record(
        settings=settings,
        decision=decision,
        run_id=parent_run_id or best.session_run_id or best.run_id,
        holdout_shards=holdout.shards,
    )
    champion_after = apply(settings=settings, decision=decision)
    return PromotionResult(
        decision=decision,
        champion_before=champion_before,
        champion_after=champion_after,
        decision_artifact=artifact,
    )


def resolve_versions(
    *, settings: Settings, session: str | Sequence[str] | None
) -> tuple[str | None, list[str]]:
    """The session's parent run id (None when given versions) and the registered versions to consider."""
    if session is not None and not isinstance(session, str):
        versions = [str(v) for v in session]
        parent_run_id = None
    else:
        parent_run_id = session if session is not None else _latest_session(settings)
        versions = session_versions(settings, parent_run_id)
    if not versions:
        raise LookupError(
            f"no registered versions of {settings.registered_model_name!r} to promote (session {parent_run_id})"
        )
    return parent_run_id, versions


def _latest_session(settings: Settings) -> str:
    latest = sessions.latest_session(settings)
    if latest is None:
        raise LookupError(
            f"experiment {settings.experiment_name!r} has no session with finished runs to promote from"
        )
    return latest.run_id


def session_versions(settings: Settings, parent_run_id: str) -> list[str]:
    """The registered versions a session's challengers became (baselines are never registered)."""
    versions = [
        child.model_version
        for child in sessions.session_children(settings, parent_run_id)
        if not child.baseline and child.model_version is not None
    ]
    return sorted(versions, key=int)
