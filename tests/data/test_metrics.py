import numpy as np
import pytest

from astrospect.data.metrics import METRIC_NAMES, metric_table, per_bin_table

pytestmark = pytest.mark.unit


def test_metric_table_matches_hand_computed_values() -> None:
    z_true = np.array([0.1, 0.2, 0.3, 0.4])
    z_pred = np.array([0.1, 0.25, 0.1, 0.4])
    # dz = [0, 0.05, -0.2, 0]; d = dz / (1 + z) = [0, 0.05/1.2, -0.2/1.3, 0]
    m = metric_table(z_true, z_pred)
    assert m["mae"] == pytest.approx(0.25 / 4)
    assert m["mse"] == pytest.approx((0.05**2 + 0.2**2) / 4)
    assert m["r2"] == pytest.approx(1 - (0.05**2 + 0.2**2) / 0.05)
    d = np.array([0.0, 0.05 / 1.2, -0.2 / 1.3, 0.0])
    assert m["sigma_mad"] == pytest.approx(1.4826 * np.median(np.abs(d - np.median(d))))
    assert m["bias"] == pytest.approx(d.mean())
    assert m["catastrophic_outlier_frac"] == pytest.approx(0.25)  # only |-0.2| > 0.15
    assert m["outlier_frac_005"] == pytest.approx(0.25)  # 0.0417 is not > 0.05; 0.154 is
    assert set(m) == set(METRIC_NAMES)


def test_perfect_predictions() -> None:
    z = np.linspace(0.01, 0.5, 50)
    m = metric_table(z, z)
    assert m["mae"] == 0 and m["sigma_mad"] == 0 and m["r2"] == 1 and m["catastrophic_outlier_frac"] == 0


def test_sigma_mad_is_robust_to_one_outlier_while_mae_is_not() -> None:
    z = np.full(101, 0.1)
    pred = z + np.linspace(-0.01, 0.01, 101)
    pred_with_outlier = pred.copy()
    pred_with_outlier[0] = 5.0
    assert metric_table(z, pred_with_outlier)["sigma_mad"] == pytest.approx(
        metric_table(z, pred)["sigma_mad"], rel=0.05
    )
    assert metric_table(z, pred_with_outlier)["mae"] > 10 * metric_table(z, pred)["mae"]


def test_metric_table_rejects_mismatched_and_empty_inputs() -> None:
    with pytest.raises(ValueError, match="3 values but z_pred has 2"):
        metric_table([0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(ValueError, match="empty"):
        metric_table([], [])


def test_per_bin_table_counts_and_leaves_out_empty_bins() -> None:
    z = np.array([0.01, 0.02, 0.07, 0.5])
    table = per_bin_table(z, z + 0.01, edges=(0.0, 0.05, 0.1, 0.3, 1.0))
    assert table["n"].tolist() == [2, 1, 1]
    assert table["z_lo"].tolist() == [0.0, 0.05, 0.3]
    assert np.allclose(table["mae"], 0.01)
