"""Record: log a promotion decision on its session's run in MLflow, and tag the challenger's version.

The record is a JSON artifact named after the challenger, the champion and the holdout digest, so the same
decision is logged once: a re-run finds it and records nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from astrospect.promote.decision import PromotionDecision
from astrospect.settings import Settings
from astrospect.tracking import registry, runs

DECISION_FOLDER = "promotion"


def record(
    *, settings: Settings, decision: PromotionDecision, run_id: str, holdout_shards: Sequence[Path]
) -> str | None:
    """Log ``decision`` as an artifact of ``run_id`` and tag the challenger's version with the verdict.

    Returns the artifact's run-relative path, or None when nothing new was logged: the challenger is the
    champion already, or this decision was logged before.
    """
    if decision.already_champion:
        return None
    champion = decision.champion_version
    artifact = (
        f"{DECISION_FOLDER}/v{decision.challenger_version}-vs-{'v' + champion if champion else 'none'}"
        f"-{decision.holdout_digest}.json"
    )
    payload = {
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "registered_model": settings.registered_model_name,
        "challenger_version": decision.challenger_version,
        "champion_version_before": champion,
        "champion_version_after": decision.champion_after,
        "holdout": {
            "digest": decision.holdout_digest,
            "n_galaxies": decision.n_holdout,
            "shards": [str(s) for s in holdout_shards],
        },
        "decision": decision.verdict.to_dict(),
        "candidates": [c.to_dict() for c in decision.ranking],
        "champion_metrics": decision.champion_metrics,
    }
    verdict = "promoted" if decision.promote else "rejected"
    if not runs.log_decision(
        settings, run_id, artifact, payload, f"v{decision.challenger_version} {verdict}"
    ):
        return None
    registry.tag_version(
        settings,
        decision.challenger_version,
        {
            "promotion.decision": verdict,
            "promotion.reason": decision.reason,
            "promotion.compared_with": f"v{champion}" if champion else "none",
            "promotion.holdout_digest": decision.holdout_digest,
        },
    )
    return artifact
