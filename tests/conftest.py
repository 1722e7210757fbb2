"""Shared fixtures, and each test's kind.

Test folders mirror the package (tests/gate/ tests astrospect/gate/, ...). A test's kind is a marker that its
module sets once, ``pytestmark = pytest.mark.<kind>`` (with any other marks in a list): ``unit`` (pure
functions, fast), ``data`` (shards, simulator, expectations), ``model`` (model behaviour) or ``integration``
(real servers, end to end; ``make test-fast`` leaves these out). Collection fails for a test with no kind or
with two.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
KINDS = ("unit", "data", "model", "integration")
pytest_plugins = ("tests.support.fixtures",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    wrong = []
    for item in items:
        kinds = sorted({mark.name for mark in item.iter_markers() if mark.name in KINDS})
        if len(kinds) != 1:
            wrong.append(f"{item.nodeid}: kinds {kinds}")
    if wrong:
        raise pytest.UsageError(
            "every test needs exactly one kind, `pytestmark = pytest.mark.<kind>` in its module, one of "
            f"{', '.join(KINDS)}:\n  " + "\n  ".join(wrong)
        )
