"""Debian's Chromium, headless, for the pages a person looks at (the MLflow UI, the drift report)."""

from __future__ import annotations

from pathlib import Path

from astrospect.settings import PROJECT_ROOT

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
ARTIFACTS = PROJECT_ROOT / "test-artifacts"  # screenshots kept as test artifacts
PAGE_TIMEOUT_MS = 60_000  # a generous bound for a loaded 2-core CI box; the render time is printed
