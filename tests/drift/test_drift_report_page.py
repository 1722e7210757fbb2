"""The drift report as a person sees it: headless Chromium (Debian's) opens ``drift.html``, the page the
nightly drift step logs to MLflow, and must show the verdict, one table row per feature with the drifted
one marked, and the distributions figure decoded (not a broken image).

The screenshot is kept as a test artifact: ``test-artifacts/drift-report.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from astrospect.drift import DriftReport, compare
from tests.support.browser import ARTIFACTS, PAGE_TIMEOUT_MS

pytestmark = pytest.mark.integration


def shifted_night(shift: float) -> DriftReport:
    """A reference of 5,000 galaxies and a night of 800 whose r magnitudes are ``shift`` fainter."""
    rng = np.random.default_rng(11)
    reference = pd.DataFrame({"mag_r": rng.normal(17, 0.6, 5_000), "g-r": rng.normal(0.7, 0.2, 5_000)})
    reference["z_pred"] = rng.normal(0.1, 0.05, 5_000)
    tonight = pd.DataFrame({"mag_r": rng.normal(17 + shift, 0.6, 800), "g-r": rng.normal(0.7, 0.2, 800)})
    tonight["z_pred"] = rng.normal(0.1, 0.05, 800)
    return DriftReport(
        reference_version="cd" * 32,
        tonight_shards=["night-0000.h5"],
        model_version="astrospect-photoz-v2-0123456789ab",
        features=compare(reference, tonight, alpha=0.01),
        alpha=0.01,
        share_threshold=0.0,
        action="warn",
        seconds={"reference": 0.5, "tonight": 0.25, "tests": 0.01},
        created_at="2026-12-01T02:30:00+00:00",
    )


def test_the_drift_page_shows_the_verdict_the_table_and_the_figure(browser: object, tmp_path: Path) -> None:
    report = shifted_night(shift=0.3)
    html_path, _ = report.write(tmp_path / "drift")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(html_path.as_uri(), timeout=PAGE_TIMEOUT_MS)

    assert page.title() == "AstroSpect drift: DRIFTING"
    assert page.locator("h1 span").inner_text() == "DRIFTING"
    rows = page.locator("tbody tr")
    assert rows.count() == len(report.features) == 3
    drifted = page.locator("tbody tr.drifted td:first-child").all_inner_texts()
    assert drifted == report.drifted_features == ["mag_r"]
    assert page.locator("dd", has_text="1 of 3").count() == 1
    # The figure is an inline PNG: decoded, it has the size matplotlib drew, and it is on the page.
    figure = page.locator("img")
    width = figure.evaluate("img => img.complete ? img.naturalWidth : 0")
    assert width > 300, f"the distributions figure did not decode (naturalWidth {width})"
    assert figure.bounding_box()["width"] > 300
    assert errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "drift-report.png"), full_page=True)
    page.close()
