"""Debian's Chromium, headless, for the pages a person looks at (the MLflow UI, the drift report): the launch
itself lives in harness.browser, shared with ``make screenshots``; the tests keep their screenshots here."""

from __future__ import annotations

from astrospect.settings import PROJECT_ROOT
from harness.browser import CHROMIUM, CHROMIUM_FLAGS, PAGE_TIMEOUT_MS

__all__ = ["ARTIFACTS", "CHROMIUM", "CHROMIUM_FLAGS", "PAGE_TIMEOUT_MS"]

ARTIFACTS = PROJECT_ROOT / "test-artifacts"  # screenshots kept as test artifacts
