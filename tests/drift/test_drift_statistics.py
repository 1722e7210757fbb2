"""Per-feature drift statistics and the night's verdict, on samples whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from astrospect.drift import compare
from astrospect.drift.report import is_drifting
from astrospect.drift.statistics import compare_feature, population_stability_index

pytestmark = pytest.mark.unit


def normal(seed: int, n: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, 1.0, n)


def test_psi_is_near_zero_for_the_same_distribution_and_grows_with_the_shift() -> None:
    reference = normal(0, 50_000)
    same = population_stability_index(reference, normal(1, 50_000))
    half_sigma = population_stability_index(reference, normal(2, 50_000, 0.5))
    one_sigma = population_stability_index(reference, normal(3, 50_000, 1.0))
    assert same < 0.005
    # Fine bins would give the J-divergence delta^2 (0.25, 1.0); ten quantile bins see a little less.
    assert 0.18 < half_sigma < 0.25
    assert 0.7 < one_sigma < 1.0


def test_psi_of_a_constant_reference() -> None:
    assert population_stability_index(np.ones(100), np.ones(10)) == 0.0
    assert population_stability_index(np.ones(100), np.full(10, 2.0)) == float("inf")


def test_a_shifted_feature_drifts_and_its_distances_measure_the_shift() -> None:
    result = compare_feature("x", "data", normal(0, 12_000), normal(1, 3_000, 0.2), alpha_per_feature=1e-3)
    assert result.drifted
    assert result.p_value < 1e-10
    assert result.wasserstein_sigma == pytest.approx(0.2, abs=0.05)
    assert result.tonight_median - result.reference_median == pytest.approx(0.2, abs=0.06)
    assert len(result.bin_edges) == len(result.reference_density) + 1


def test_the_same_distribution_does_not_drift_and_nans_are_counted() -> None:
    tonight = normal(1, 3_000)
    tonight[:7] = np.nan
    result = compare_feature("x", "data", normal(0, 12_000), tonight, alpha_per_feature=1e-3)
    assert not result.drifted
    assert result.n_missing == 7
    assert result.n_tonight == 2_993


def test_a_feature_without_finite_values_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="feature 'x'"):
        compare_feature("x", "data", normal(0, 10), np.full(5, np.nan), alpha_per_feature=0.01)


def test_compare_tests_each_feature_at_alpha_over_their_number() -> None:
    reference = pd.DataFrame({"mag_r": normal(0, 4_000), "g-r": normal(1, 4_000), "z_pred": normal(2, 4_000)})
    tonight = pd.DataFrame(
        {"mag_r": normal(3, 1_000, 0.1), "g-r": normal(4, 1_000), "z_pred": normal(5, 1_000)}
    )
    results = compare(reference, tonight, alpha=0.5)
    assert [item.feature for item in results] == ["mag_r", "g-r", "z_pred"]
    assert [item.kind for item in results] == ["data", "data", "prediction"]
    p_value = results[0].p_value
    assert p_value < 0.1  # so that both thresholds below are valid probabilities
    assert compare(reference, tonight, alpha=3 * p_value * 1.5)[0].drifted
    # Significant at alpha, but not at alpha / 3: three features are watched.
    assert not compare(reference, tonight, alpha=3 * p_value * 0.5)[0].drifted


def test_compare_needs_a_shared_feature() -> None:
    with pytest.raises(ValueError, match="share no drift feature"):
        compare(pd.DataFrame({"a": [1.0]}), pd.DataFrame({"b": [1.0]}), alpha=0.01)


def test_the_verdict_follows_the_share_threshold() -> None:
    reference = pd.DataFrame(
        {name: normal(i, 4_000) for i, name in enumerate(["mag_r", "g-r", "r-i", "i-z"])}
    )
    tonight = pd.DataFrame(
        {name: normal(10 + i, 1_000) for i, name in enumerate(["mag_r", "g-r", "r-i", "i-z"])}
    )
    tonight["mag_r"] += 1.0
    results = compare(reference, tonight, alpha=0.01)
    assert [item.drifted for item in results] == [True, False, False, False]
    assert is_drifting(results, share_threshold=0.0)
    assert is_drifting(results, share_threshold=0.2)
    assert not is_drifting(results, share_threshold=0.25)  # 1 of 4 is not more than a quarter
    assert not is_drifting(compare(reference, tonight.assign(mag_r=normal(20, 1_000)), alpha=0.01), 0.0)
