"""Shared fixtures. Markers (unit, data, model, integration) come from each test folder's name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
TESTS_ROOT = Path(__file__).parent
KINDS = ("unit", "data", "model", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        kind = Path(str(item.fspath)).relative_to(TESTS_ROOT).parts[0]
        if kind in KINDS:
            item.add_marker(getattr(pytest.mark, kind))
