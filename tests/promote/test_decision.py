"""Promotion's decide step (astrospect/promote/decision.py): pure, no MLflow, no models."""

from __future__ import annotations

import pytest

from astrospect.promote import (
    Candidate,
    HoldoutMismatchError,
    PromotionDecision,
    PromotionResult,
    Tolerances,
    decide,
)

pytestmark = pytest.mark.unit

TOLERANCES = Tolerances(outlier=0.002, bias=0.002)
DIGEST = "0123456789ab"


def scored(
    version: str, sigma_mad: float, *, digest: str = DIGEST, name: str = "full", **metrics: float
) -> Candidate:
    return Candidate(
        version=version,
        run_id=f"run-{version}",
        challenger=name,
        metrics={"sigma_mad": sigma_mad, "catastrophic_outlier_frac": 0.01, "bias": -0.004, **metrics},
        holdout_digest=digest,
        n_holdout=500,
    )


def test_with_no_champion_yet_the_best_version_becomes_champion() -> None:
    decision = decide(
        candidates=[scored("1", 0.031), scored("2", 0.027, name="clipped"), scored("3", 0.029)],
        champion=None,
        tolerances=TOLERANCES,
    )

    assert (decision.challenger_version, decision.champion_version, decision.champion_after) == (
        "2",
        None,
        "2",
    )
    assert decision.promote and decision.reason.startswith("first model")
    assert [c.version for c in decision.ranking] == ["2", "3", "1"]
    assert (decision.holdout_digest, decision.n_holdout, decision.champion_metrics) == (DIGEST, 500, None)
    assert not decision.already_champion


def test_a_challenger_worse_than_the_champion_is_not_promoted() -> None:
    decision = decide(candidates=[scored("4", 0.031)], champion=scored("2", 0.027), tolerances=TOLERANCES)

    assert not decision.promote and "does not beat the champion's 0.02700" in decision.reason
    assert (decision.challenger_version, decision.champion_version, decision.champion_after) == (
        "4",
        "2",
        "2",
    )
    assert decision.champion_metrics is not None and decision.champion_metrics["sigma_mad"] == 0.027


def test_a_better_challenger_is_promoted_over_the_champion() -> None:
    decision = decide(candidates=[scored("4", 0.025)], champion=scored("2", 0.027), tolerances=TOLERANCES)

    assert decision.promote and "sigma_mad improves 0.02700 -> 0.02500" in decision.reason
    assert decision.champion_after == "4"


def test_ties_rank_the_lower_version_first_and_a_tie_with_the_champion_does_not_promote() -> None:
    decision = decide(
        candidates=[scored("7", 0.027), scored("5", 0.027)],
        champion=scored("2", 0.027),
        tolerances=TOLERANCES,
    )

    assert [c.version for c in decision.ranking] == ["5", "7"]
    assert decision.challenger_version == "5"
    assert not decision.promote and decision.reason.startswith("tie")
    assert decision.champion_after == "2"


def test_when_the_best_version_is_the_champion_nothing_changes() -> None:
    champion = scored("2", 0.027)
    decision = decide(candidates=[scored("3", 0.030), champion], champion=champion, tolerances=TOLERANCES)

    assert decision.already_champion and not decision.promote
    assert decision.reason == "v2 is already the champion"
    assert decision.champion_after == "2"


def test_a_holdout_digest_mismatch_is_an_error_naming_the_digests() -> None:
    with pytest.raises(HoldoutMismatchError, match=r"v3 on fedcba987654") as raised:
        decide(
            candidates=[scored("3", 0.025, digest="fedcba987654")],
            champion=scored("2", 0.027),
            tolerances=TOLERANCES,
        )
    assert f"v2 on {DIGEST}" in str(raised.value) and "not scored on the same holdout" in str(raised.value)


def test_the_decision_prints_as_a_readable_report() -> None:
    decision = decide(
        candidates=[scored("4", 0.025, crps=0.012), scored("5", 0.026, name="clipped")],
        champion=scored("2", 0.027),
        tolerances=TOLERANCES,
    )

    lines = str(decision).splitlines()

    assert lines[0].startswith("promote v4 to champion (was v2): sigma_mad improves 0.02700 -> 0.02500")
    assert lines[1] == f"holdout: 500 galaxies, digest {DIGEST}"
    assert lines[2:] == [
        "ranking by sigma_mad:",
        "  1. v4 (full): sigma_mad 0.02500  outliers 1.0000%  bias -0.00400  crps 0.01200",
        "  2. v5 (clipped): sigma_mad 0.02600  outliers 1.0000%  bias -0.00400",
        "champion v2: sigma_mad 0.02700  outliers 1.0000%  bias -0.00400",
    ]


def test_decide_takes_keyword_arguments_only_and_its_decision_is_frozen() -> None:
    with pytest.raises(TypeError):
        decide([scored("1", 0.03)], None, TOLERANCES)  # type: ignore[misc]
    decision = decide(candidates=[scored("1", 0.03)], champion=None, tolerances=TOLERANCES)
    with pytest.raises(AttributeError):
        decision.challenger_version = "2"  # type: ignore[misc]
    with pytest.raises(ValueError, match="no scored versions"):
        decide(candidates=[], champion=None, tolerances=TOLERANCES)


def test_a_result_with_champion_before_and_after_swapped_is_refused() -> None:
    decision = decide(candidates=[scored("4", 0.025)], champion=scored("2", 0.027), tolerances=TOLERANCES)

    result = PromotionResult(decision=decision, champion_before="2", champion_after="4")
    assert result.changed and result.summary()["champion_after"] == "4"
    with pytest.raises(ValueError, match="disagree with the decision's 2/4"):
        PromotionResult(decision=decision, champion_before="4", champion_after="2")


def test_a_decision_whose_challenger_does_not_head_the_ranking_is_refused() -> None:
    decision = decide(
        candidates=[scored("4", 0.025), scored("5", 0.026)], champion=None, tolerances=TOLERANCES
    )
    with pytest.raises(ValueError, match="must head the ranking"):
        PromotionDecision(
            challenger_version="5",
            champion_version=None,
            verdict=decision.verdict,
            ranking=decision.ranking,
            champion_metrics=None,
            holdout_digest=DIGEST,
            n_holdout=500,
        )
