"""The MLflow UI as a user sees it: headless Chromium (Debian's) opens the compare view that
``astrospect`` prints and must find the ``full`` and ``clipped`` runs and their ``mae`` on the page.

The screenshot is kept as a test artifact: ``test-artifacts/mlflow-compare-view.png``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import pytest

from astrospect.settings import Settings
from astrospect.tracking import sessions
from astrospect.tracking.server import client_for
from harness.browser import MLFLOW_METRIC_ROW_JS as METRIC_ROW_JS
from tests.support.browser import ARTIFACTS, PAGE_TIMEOUT_MS
from tests.support.tracking import (
    NOISY_BAND,
    OFFSET_BAND,
    log_reader,
    settings_for,
    write_reader_shards,
)

pytestmark = pytest.mark.integration


@dataclass
class LoggedSession:
    settings: Settings
    parent_run_id: str
    run_names: list[str]  # compare-view column order
    mae: dict[str, float]
    sigma_mad: dict[str, float]
    url: str


@pytest.fixture(scope="module")
def logged_session(mlflow_url: str, tmp_path_factory: pytest.TempPathFactory) -> LoggedSession:
    from astrospect.data.dataset import select_splits
    from astrospect.models import registry as challengers
    from astrospect.models.pipeline import run_challenger
    from astrospect.models.registry import TrainConfig
    from astrospect.tracking.runs import train_once

    home = tmp_path_factory.mktemp("ui-home")
    shards = write_reader_shards(home / "shards")
    # The session's server, this module's own experiment and model name.
    settings = settings_for(home, mlflow_url, "mlflow-ui-test")
    parent = sessions.start_session(settings, "ui-v1", shards)
    mae, sigma_mad = {}, {}
    for name, band in (("full", NOISY_BAND), ("clipped", OFFSET_BAND)):
        evaluation = log_reader(settings, parent, band, name, shards)
        metrics = client_for(settings).get_run(evaluation.run_id).data.metrics
        mae[name], sigma_mad[name] = metrics["mae"], metrics["sigma_mad"]
    knn = challengers.get("baseline-knn-full")
    outcome = run_challenger(knn, select_splits(shards, knn.clipping), TrainConfig(out_dir=home / knn.name))
    train_once(settings, parent, knn, lambda: outcome)
    mae[knn.name], sigma_mad[knn.name] = (
        outcome.evaluation.metrics["mae"],
        outcome.evaluation.metrics["sigma_mad"],
    )
    compare = sessions.end_session(parent, settings)
    return LoggedSession(settings, parent, ["full", "clipped", "baseline-knn-full"], mae, sigma_mad, compare)


def ui_metric(value: float) -> str:
    """A metric as the MLflow UI prints it (Utils.formatMetric: 3 decimals below 10, exponent below 0.001)."""
    if value == 0:
        return "0"
    if abs(value) < 0.001:
        mantissa, exponent = f"{value:.3e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    rounded = (
        math.floor(value * 1000 + 0.5) / 1000 if abs(value) < 10 else math.floor(value * 100 + 0.5) / 100
    )
    return str(int(rounded)) if rounded == int(rounded) else repr(rounded)


def test_compare_view_shows_full_and_clipped_with_their_mae(
    logged_session: LoggedSession, browser: object
) -> None:
    page = browser.new_page(viewport={"width": 1500, "height": 2300})  # type: ignore[attr-defined]
    started = time.perf_counter()
    page.goto(logged_session.url)
    run_name_row = page.locator("tr", has=page.locator("th", has_text="Run Name:"))
    run_name_row.locator("td").nth(len(logged_session.run_names) - 1).wait_for(timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function(f"() => ({METRIC_ROW_JS})('mae')?.length >= 3", timeout=PAGE_TIMEOUT_MS)
    rendered_s = time.perf_counter() - started

    names = [text.strip() for text in run_name_row.locator("td").all_inner_texts()]
    mae_cells = page.evaluate(METRIC_ROW_JS, "mae")
    sigma_cells = page.evaluate(METRIC_ROW_JS, "sigma_mad")  # below the grid's fold, but rendered
    close_assistant = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if close_assistant.count():  # the assistant panel opens itself on a first visit; it only hides the table
        close_assistant.first.click()
    page.get_by_text("Metrics", exact=True).first.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "mlflow-compare-view.png"
    page.screenshot(path=str(screenshot))
    print(f"compare view rendered names and mae in {rendered_s:.1f} s; screenshot {screenshot}")

    assert names == logged_session.run_names
    assert mae_cells == [ui_metric(logged_session.mae[name]) for name in logged_session.run_names]
    assert sigma_cells == [ui_metric(logged_session.sigma_mad[name]) for name in logged_session.run_names]
    assert logged_session.mae["full"] != logged_session.mae["clipped"]
    assert screenshot.stat().st_size > 10_000
    page.close()


def test_experiment_link_lands_on_the_training_runs_table(
    logged_session: LoggedSession, browser: object
) -> None:
    """MLflow 3.17 opens experiments on the GenAI overview; the URLs we print must open the runs table."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    page.goto(sessions.experiment_url(logged_session.settings))
    parent = client_for(logged_session.settings).get_run(logged_session.parent_run_id)
    page.get_by_text(str(parent.info.run_name)).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert "/runs" in page.url and "workflowType=machine_learning" in page.url
    assert page.get_by_role("columnheader", name="Run Name").count() >= 1
    page.close()


def test_ui_metric_matches_mlflow_formatting() -> None:
    assert [ui_metric(v) for v in (0.0, 0.01462, 0.03, 2.884e-4, 1.0, 12.345)] == [
        "0",
        "0.015",
        "0.03",
        "2.884e-4",
        "1",
        "12.35",
    ]
