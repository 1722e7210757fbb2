"""Apply: move the registry's aliases as a promotion decision says.

``challenger`` points at the version promotion last compared; ``champion`` moves only when the decision
promotes. A decision whose challenger is the champion already moves nothing.
"""

from __future__ import annotations

from astrospect.promote.decision import PromotionDecision
from astrospect.settings import Settings, get_logger
from astrospect.tracking import registry

log = get_logger(__name__)


def apply(*, settings: Settings, decision: PromotionDecision) -> str | None:
    """Move the aliases as ``decision`` says; returns the champion version afterwards (None: none yet)."""
    before = f"v{decision.champion_version}" if decision.champion_version else "none"
    if decision.already_champion:
        log.info("promotion: %s; nothing to change", decision.reason)
        return decision.champion_version
    registry.point_challenger(settings, decision.challenger_version)
    if decision.promote:
        registry.move_champion(settings, decision.challenger_version)
        log.info(
            "promoted v%s to champion (was %s): %s", decision.challenger_version, before, decision.reason
        )
    else:
        log.info(
            "kept champion %s; v%s not promoted: %s", before, decision.challenger_version, decision.reason
        )
    return decision.champion_after
