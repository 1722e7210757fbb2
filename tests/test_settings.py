"""Settings read from the environment: a bad value is a clear error naming the variable."""

from __future__ import annotations

import pytest

from astrospect.settings import load_settings

pytestmark = pytest.mark.unit


def test_the_system_metrics_interval_is_read_and_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASTROSPECT_SYSTEM_METRICS_INTERVAL_S", raising=False)
    assert load_settings().system_metrics_interval_s == 2.0
    monkeypatch.setenv("ASTROSPECT_SYSTEM_METRICS_INTERVAL_S", "0.5")
    assert load_settings().system_metrics_interval_s == 0.5
    monkeypatch.setenv("ASTROSPECT_SYSTEM_METRICS_INTERVAL_S", "0")
    with pytest.raises(
        ValueError, match=r"ASTROSPECT_SYSTEM_METRICS_INTERVAL_S=0\.0: expected a number of seconds above 0"
    ):
        load_settings()
