"""Every bash and python block of the README and docs/ runs against a small night, or is skipped with its
reason (tests/support/docs_blocks.py says how a block runs and what its Output block must match).

One night per test session (tests/support/docs_night.py): a landing-zone shard, MLflow on loopback with a
registered champion, and ``astrospect serve``; the docs' ``127.0.0.1:3000`` and ``:5000`` are rewritten to
its ports. Integration: the blocks start commands against real servers.
"""

from __future__ import annotations

import unittest
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.docs_blocks import DocumentRun, documents, run_block_params
from tests.support.docs_night import DocsNight, docs_night

pytestmark = pytest.mark.integration

# This folder's night.md first: it checks the night itself, whatever the docs hold.
NIGHT_PAGE = Path(__file__).with_name("night.md")
BLOCKS = list(run_block_params([NIGHT_PAGE, *documents()]))


# Module scope: one night per test session all the same (no other module asks for it), and its servers stop
# when the blocks are done instead of idling through the rest of `make test`.
@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocsNight]:
    with docs_night(tmp_path_factory.mktemp("docs-night")) as built:
        yield built


@pytest.fixture(scope="module")
def document_runs() -> dict[Path, DocumentRun]:
    return {}


@pytest.mark.parametrize(("path", "line"), [(p, line) for p, line, _ in BLOCKS], ids=[i for *_, i in BLOCKS])
def test_block_runs_or_is_skipped_with_its_reason(
    path: Path, line: int, document_runs: dict[Path, DocumentRun], request: pytest.FixtureRequest
) -> None:
    # The night is built when the first block that is not skipped runs, not for a document of skips.
    if path not in document_runs:
        document_runs[path] = DocumentRun(path, lambda: request.getfixturevalue("night"))
    run = document_runs[path]
    run.night = lambda: request.getfixturevalue("night")  # this item's request: an earlier one's is torn down
    outcome = run.outcome(line)
    if isinstance(outcome, unittest.SkipTest):  # reported here, with the block's page:line as the test's id
        pytest.skip(f"{request.node.callspec.id}: {outcome}")
    if outcome is not None:
        raise outcome
