"""The docs' code blocks keep the rules that make them testable (tests/support/docs_blocks.py): a language on
every fence, ``bash``/``python`` for code (run) or a skip with a quoted reason, Output blocks after code.
A new block nobody runs and nobody marked fails here, in ``make test-fast`` too. Unit: text only."""

from __future__ import annotations

from pathlib import Path

import pytest

from astrospect.settings import PROJECT_ROOT
from tests.support.docs_blocks import block_problems, documents

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "path",
    [*documents(), Path(__file__).with_name("night.md")],
    ids=lambda p: str(p.relative_to(PROJECT_ROOT)),
)
def test_every_code_block_is_run_or_skipped_with_a_reason(path: Path) -> None:
    assert path.exists(), f"{path} is missing"
    problems = block_problems(path)
    assert not problems, "\n".join(problems)
