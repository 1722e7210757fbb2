"""Score: load registered versions and the champion, and evaluate each on the same holdout cutouts.

Each score carries the fingerprint of the holdout galaxies it was computed on; the scores are checked to
share one before they are returned, and :func:`astrospect.promote.decision.decide` checks it again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from astrospect.promote.decision import Candidate, common_holdout_digest
from astrospect.settings import Settings, get_logger
from astrospect.tracking import registry

if TYPE_CHECKING:
    from astrospect.data.dataset import RowSelection

log = get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class Scores:
    """A session's versions and the current champion, scored on one holdout."""

    candidates: tuple[Candidate, ...]  # in the order asked for, each version once
    champion: Candidate | None  # None when there is no champion yet


def score(
    *, settings: Settings, versions: Sequence[str], champion_version: str | None, holdout: RowSelection
) -> Scores:
    """Evaluate each of ``versions`` and the champion (once, if it is among them) on ``holdout``."""
    candidates = {version: _score_version(settings, version, holdout) for version in dict.fromkeys(versions)}
    champion = None
    if champion_version is not None:
        champion = candidates.get(champion_version) or _score_version(settings, champion_version, holdout)
    scores = Scores(candidates=tuple(candidates.values()), champion=champion)
    common_holdout_digest([*scores.candidates, *([champion] if champion else [])])
    return scores


def _score_version(settings: Settings, version: str, holdout: RowSelection) -> Candidate:
    from astrospect.models.evaluate import evaluate_model

    registered = registry.get_version(settings, version)
    evaluation = evaluate_model(registry.load_model(settings, version), holdout, name=f"v{version}")
    log.info(
        "v%s (%s): holdout sigma_mad %.5f on %d galaxies",
        version,
        registered.challenger,
        evaluation.metrics["sigma_mad"],
        len(evaluation.z_true),
    )
    return Candidate(
        version=version,
        run_id=registered.run_id,
        challenger=registered.challenger,
        metrics={**evaluation.metrics, **evaluation.pdf_metrics},
        holdout_digest=holdout_digest(evaluation.objid),
        n_holdout=len(evaluation.objid),
        session_run_id=registered.session_run_id,
    )


def holdout_digest(objid: npt.ArrayLike) -> str:
    """Fingerprint of a set of holdout galaxies (their objids, in any order)."""
    ordered = np.sort(np.asarray(objid, dtype=np.int64))
    return hashlib.sha256(ordered.tobytes()).hexdigest()[:12]
