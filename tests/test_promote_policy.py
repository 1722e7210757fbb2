"""The promotion policy (docs/explanation/architecture.md, "Promotion"), branch by branch: a pure function, no server."""

from __future__ import annotations

import math

import pytest

from astrospect.promote import Tolerances, Verdict, judge

pytestmark = pytest.mark.unit

TOLERANCES = Tolerances(outlier=0.002, bias=0.002)
CHAMPION = {"sigma_mad": 0.0300, "catastrophic_outlier_frac": 0.010, "bias": -0.0040, "mae": 0.05}


def challenger(**changes: float) -> dict[str, float]:
    return {**CHAMPION, **changes}


def test_first_model_becomes_champion() -> None:
    decision = judge(champion=None, challenger=challenger(sigma_mad=0.5), tolerances=TOLERANCES)
    assert decision.promote
    assert decision.reason.startswith("first model")
    assert decision.champion is None
    assert decision.challenger == {"sigma_mad": 0.5, "catastrophic_outlier_frac": 0.010, "bias": -0.0040}


def test_better_sigma_mad_with_no_worse_guards_is_promoted() -> None:
    decision = judge(
        champion=CHAMPION,
        challenger=challenger(sigma_mad=0.0250, catastrophic_outlier_frac=0.008, bias=0.001),
        tolerances=TOLERANCES,
    )
    assert decision.promote
    assert "0.03000 -> 0.02500" in decision.reason
    assert decision.champion == {"sigma_mad": 0.03, "catastrophic_outlier_frac": 0.01, "bias": -0.004}


def test_worse_sigma_mad_is_not_promoted() -> None:
    decision = judge(
        champion=CHAMPION,
        challenger=challenger(sigma_mad=0.0310, catastrophic_outlier_frac=0.0),
        tolerances=TOLERANCES,
    )
    assert not decision.promote
    assert "does not beat" in decision.reason


def test_a_tie_does_not_promote() -> None:
    decision = judge(
        champion=CHAMPION,
        challenger=challenger(catastrophic_outlier_frac=0.0, bias=0.0),
        tolerances=TOLERANCES,
    )
    assert not decision.promote
    assert decision.reason.startswith("tie")


def test_guards_worse_but_within_tolerance_still_promote() -> None:
    # outliers +0.0015 and |bias| +0.0015, both under the 0.002 tolerances
    decision = judge(
        champion=CHAMPION,
        challenger=challenger(sigma_mad=0.029, catastrophic_outlier_frac=0.0115, bias=0.0055),
        tolerances=TOLERANCES,
    )
    assert decision.promote


def test_outliers_worse_beyond_tolerance_block_promotion() -> None:
    decision = judge(
        champion=CHAMPION,
        challenger=challenger(sigma_mad=0.020, catastrophic_outlier_frac=0.0125),
        tolerances=TOLERANCES,
    )
    assert not decision.promote
    assert "catastrophic_outlier_frac grows by 0.00250" in decision.reason


def test_bias_worse_beyond_tolerance_blocks_promotion() -> None:
    # |bias| 0.004 -> 0.0065: the sign does not matter, the size does
    decision = judge(
        champion=CHAMPION, challenger=challenger(sigma_mad=0.020, bias=0.0065), tolerances=TOLERANCES
    )
    assert not decision.promote
    assert "|bias| grows by 0.00250" in decision.reason


def test_zero_tolerance_blocks_any_worsening() -> None:
    strict = Tolerances(outlier=0.0, bias=0.0)
    assert not judge(
        champion=CHAMPION,
        challenger=challenger(sigma_mad=0.02, catastrophic_outlier_frac=0.0101),
        tolerances=strict,
    ).promote
    assert judge(champion=CHAMPION, challenger=challenger(sigma_mad=0.02), tolerances=strict).promote


def test_decision_records_the_numbers_and_tolerances() -> None:
    decision = judge(champion=CHAMPION, challenger=challenger(sigma_mad=0.02), tolerances=TOLERANCES)
    record = decision.to_dict()
    assert record["tolerances"] == {"outlier": 0.002, "bias": 0.002, "crps": 0.0005}
    assert record["challenger"]["sigma_mad"] == 0.02
    assert isinstance(decision, Verdict)


@pytest.mark.parametrize("bad", [{"sigma_mad": math.nan}, {"bias": math.inf}])
def test_non_finite_metrics_are_an_error(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"challenger metrics: '(sigma_mad|bias)' is (nan|inf)"):
        judge(champion=CHAMPION, challenger=challenger(**bad), tolerances=TOLERANCES)


def test_missing_metric_is_an_error_naming_it() -> None:
    incomplete = {"sigma_mad": 0.01, "bias": 0.0}
    with pytest.raises(ValueError, match="champion metrics: 'catastrophic_outlier_frac' is missing"):
        judge(champion=incomplete, challenger=challenger(), tolerances=TOLERANCES)


@pytest.mark.parametrize(("outlier", "bias"), [(-0.001, 0.0), (0.0, math.nan)])
def test_tolerances_must_be_non_negative_numbers(outlier: float, bias: float) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        Tolerances(outlier=outlier, bias=bias)


# --- when both give PDFs, crps is guarded too ---------------------------------------------------------------
PDF_CHAMPION = {**CHAMPION, "crps": 0.0120, "pit_ks": 0.03}


def test_a_pdf_challenger_whose_crps_worsens_beyond_the_tolerance_is_not_promoted() -> None:
    worse = {**PDF_CHAMPION, "sigma_mad": 0.0250, "crps": 0.0120 + 0.0006}
    decision = judge(champion=PDF_CHAMPION, challenger=worse, tolerances=TOLERANCES)
    assert not decision.promote
    assert "crps grows by 0.00060" in decision.reason
    assert decision.challenger["crps"] == pytest.approx(0.0126) and decision.champion is not None
    assert decision.champion["crps"] == 0.0120


def test_a_pdf_challenger_within_the_crps_tolerance_is_promoted_and_the_reason_says_so() -> None:
    within = {**PDF_CHAMPION, "sigma_mad": 0.0250, "crps": 0.0120 + 0.0004}
    decision = judge(champion=PDF_CHAMPION, challenger=within, tolerances=TOLERANCES)
    assert decision.promote and "crps 0.01200 -> 0.01240 within 0.0005" in decision.reason


def test_crps_is_not_judged_when_only_one_side_gives_pdfs() -> None:
    point_challenger = challenger(sigma_mad=0.0250)
    assert judge(champion=PDF_CHAMPION, challenger=point_challenger, tolerances=TOLERANCES).promote
    pdf_challenger = {**PDF_CHAMPION, "sigma_mad": 0.0250, "crps": 1.0}
    decision = judge(champion=CHAMPION, challenger=pdf_challenger, tolerances=TOLERANCES)
    assert decision.promote and "crps" not in decision.reason


def test_a_nan_crps_is_refused() -> None:
    with pytest.raises(ValueError, match="'crps' is nan"):
        judge(
            champion=PDF_CHAMPION,
            challenger={**PDF_CHAMPION, "sigma_mad": 0.02, "crps": math.nan},
            tolerances=TOLERANCES,
        )
