"""Decide: from the scored versions and the current champion, what is promoted and why. Pure: no MLflow.

:func:`decide` ranks a session's versions by holdout sigma_mad (the lower version number first on a tie),
takes the best as the challenger and judges it against the champion with the policy
(:func:`astrospect.promote.policy.judge`). It refuses to compare models scored on different holdout
galaxies. The :class:`PromotionDecision` it returns is a frozen value: it prints as a short report and is
what the record and apply steps act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from astrospect.promote.policy import Tolerances, Verdict, judge, policy_numbers


class HoldoutMismatchError(ValueError):
    """The models were scored on different holdout galaxies, so their metrics cannot be compared."""


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """A registered version scored on the holdout."""

    version: str
    run_id: str
    challenger: str | None
    metrics: dict[str, float]
    holdout_digest: str  # fingerprint of the holdout galaxies it was scored on
    n_holdout: int
    session_run_id: str | None = None  # the session that registered it, where its decision is logged

    def to_dict(self) -> dict[str, Any]:
        """The decision record's entry (the holdout is recorded once, beside the candidates)."""
        return {
            "version": self.version,
            "run_id": self.run_id,
            "challenger": self.challenger,
            "metrics": self.metrics,
        }


@dataclass(frozen=True, kw_only=True)
class PromotionDecision:
    """What promotion decided: the challenger, the champion it was judged against, the verdict, the ranking."""

    challenger_version: str  # the best of the ranking
    champion_version: str | None  # the champion when deciding; None when there was none yet
    verdict: Verdict
    ranking: tuple[Candidate, ...]  # the session's versions, best first
    champion_metrics: dict[str, float] | None  # the champion's scores on the same holdout
    holdout_digest: str
    n_holdout: int

    def __post_init__(self) -> None:
        if not self.ranking or self.ranking[0].version != self.challenger_version:
            raise ValueError(
                f"the challenger v{self.challenger_version} must head the ranking "
                f"{[c.version for c in self.ranking]}"
            )

    @property
    def promote(self) -> bool:
        return self.verdict.promote

    @property
    def reason(self) -> str:
        return self.verdict.reason

    @property
    def already_champion(self) -> bool:
        """The best version is the champion already: nothing to record, nothing to move."""
        return self.challenger_version == self.champion_version

    @property
    def champion_after(self) -> str | None:
        return self.challenger_version if self.promote else self.champion_version

    def __str__(self) -> str:
        was = f"v{self.champion_version}" if self.champion_version else "none"
        if self.promote:
            head = f"promote v{self.challenger_version} to champion (was {was})"
        else:
            head = f"keep champion {was}; v{self.challenger_version} not promoted"
        lines = [
            f"{head}: {self.reason}",
            f"holdout: {self.n_holdout} galaxies, digest {self.holdout_digest}",
            "ranking by sigma_mad:",
        ]
        for rank, candidate in enumerate(self.ranking, start=1):
            lines.append(
                f"  {rank}. v{candidate.version} ({candidate.challenger}): {_scores(candidate.metrics)}"
            )
        if self.champion_metrics is not None:
            lines.append(f"champion {was}: {_scores(self.champion_metrics)}")
        return "\n".join(lines)


def decide(
    *, candidates: Sequence[Candidate], champion: Candidate | None, tolerances: Tolerances
) -> PromotionDecision:
    """Rank ``candidates`` (a session's scored versions) and judge the best against ``champion`` (the
    current champion, scored on the same holdout; None when there is none yet)."""
    if not candidates:
        raise ValueError("no scored versions to decide between")
    digest = common_holdout_digest([*candidates, *([champion] if champion else [])])
    ranking = tuple(sorted(candidates, key=lambda c: (c.metrics["sigma_mad"], int(c.version))))
    best = ranking[0]
    if champion is not None and best.version == champion.version:
        verdict = Verdict(
            promote=False,
            reason=f"v{best.version} is already the champion",
            challenger=policy_numbers(best.metrics, role="challenger"),
            champion=policy_numbers(best.metrics, role="champion"),
            tolerances=tolerances,
        )
    else:
        verdict = judge(
            champion=champion.metrics if champion else None, challenger=best.metrics, tolerances=tolerances
        )
    return PromotionDecision(
        challenger_version=best.version,
        champion_version=champion.version if champion else None,
        verdict=verdict,
        ranking=ranking,
        champion_metrics=dict(champion.metrics) if champion else None,
        holdout_digest=digest,
        n_holdout=best.n_holdout,
    )


def common_holdout_digest(scored: Sequence[Candidate]) -> str:
    """The one holdout digest every model was scored on; an error naming the digests when they differ."""
    digests = {c.holdout_digest for c in scored}
    if len(digests) != 1:
        by_version = ", ".join(f"v{c.version} on {c.holdout_digest}" for c in scored)
        raise HoldoutMismatchError(
            f"the models were not scored on the same holdout galaxies ({by_version}); refusing to compare them"
        )
    return digests.pop()


def _scores(metrics: dict[str, float]) -> str:
    text = (
        f"sigma_mad {metrics['sigma_mad']:.5f}  outliers {metrics['catastrophic_outlier_frac']:.4%}  "
        f"bias {metrics['bias']:+.5f}"
    )
    return f"{text}  crps {metrics['crps']:.5f}" if "crps" in metrics else text
