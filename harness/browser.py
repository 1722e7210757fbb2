"""Debian's Chromium, headless, through Playwright: for the pages a person looks at (the MLflow UI, the
drift report, the Airflow grid). The tests' ``browser`` fixture and ``make screenshots`` launch it alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The compare view's metric rows are a virtualised grid: find the row label, then the cells level with it.
MLFLOW_METRIC_ROW_JS = """(label) => {
  const anchor = [...document.querySelectorAll('a[title="Plot chart"]')].find(a => a.textContent.trim() === label);
  if (!anchor) return null;
  const row = anchor.parentElement.getBoundingClientRect();
  const cells = [...document.querySelectorAll('span')].filter(span => {
    const box = span.parentElement.getBoundingClientRect();
    return span.children.length === 0 && box.width > 0 && Math.abs(box.top - row.top) < 2 && box.left >= row.right - 1;
  });
  cells.sort((a, b) => a.getBoundingClientRect().left - b.getBoundingClientRect().left);
  return cells.map(span => span.textContent.trim());
}"""
PAGE_TIMEOUT_MS = 60_000  # a generous bound for a loaded 2-core CI box; the render time is printed


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium for the block's duration; a missing binary is named, with how to install it."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()
