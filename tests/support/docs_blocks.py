"""The README's and docs/'s code blocks as tests: which blocks there are, the rules they follow, running them.

Why sybil (and not pytest-examples or pytest-codeblocks): it lexes Markdown fences wherever they sit (indented
in a list, an admonition or a content tab), it has skip directives that carry a reason,
``<!-- skip: next "starts a server that runs until stopped" -->`` (and ``skip: start`` ... ``skip: end``
around several blocks), a pytest integration, and evaluators are plain callables, so the bash evaluator here
is ours: a block runs the way a reader's terminal runs it. pytest-examples runs Python only; pytest-codeblocks
runs bash but its skips are markers without a place for the reason. sybil's own collection hook
(``Sybil.pytest()``) only sees files under pytest's ``testpaths`` (``tests/``), and the README is not; so
tests/docs parametrizes over the blocks found here and evaluates each through sybil's documents, in order.

The rules (``block_problems``; the unit test ``tests/docs/test_doc_rules.py`` fails on any break):

- every fenced block names its language. ``bash`` and ``python`` blocks run in the tests; any other shell or
  Python spelling (``sh``, ``console``, ``py``, ``pycon``, ...) and a fence without a language are errors,
  so a new block is either run or deliberately not run. Output, diagrams and file listings are ``text``.
- a block that is not run is preceded by ``<!-- skip: next "the reason" -->`` (or sits between
  ``<!-- skip: start "the reason" -->`` and ``<!-- skip: end -->``); the reason is a quoted string, never
  empty. A skip must be followed by a ``bash`` or ``python`` block. A block with a command that takes
  minutes or runs until stopped (``make run``, ``make test``, ``make serve``, ``docker compose up``, ...:
  ``LONG_COMMANDS``) must be skipped.
- a block's expected output is the fence right after it (only blank lines between) opened as
  ```` ```text title="Output" ```` (Material shows the title above it). The command's stdout must match it:
  compared without whitespace (so a pretty-printed JSON matches curl's compact one); every measured number
  (a decimal, an exponent, an integer of 4 digits or more: each night's values differ, the shape, keys and
  words must not) is one placeholder, and so is an MLflow id; integers up to 3 digits (an HTTP status, an
  exit code, a count, a model version) must be equal; ``...`` (or ``…``) matches anything.

How a block runs (``run_block``): in the fixture night of tests/support/docs_night.py, in a clone-like
working folder of its own document, with that night's environment (ASTROSPECT_HOME, MLFLOW_TRACKING_URI,
this environment's bin/ first on PATH, COLUMNS=100). Before it runs, the docs' addresses are replaced by
the night's servers': ``127.0.0.1:3000`` or ``localhost:3000`` (make serve) by the served bento's port, and
``127.0.0.1:5000`` or ``localhost:5000`` (make mlflow-up) by the MLflow server's. ``bash`` blocks run with
``set -euo pipefail`` (so ``cmd | head`` fails when ``cmd`` dies of the closed pipe: show the whole
output and elide it with ``...`` in the Output block instead), and ``curl`` fails on an HTTP error status
(``--fail-with-body``: the answer is still printed) unless the command asks for the status itself (``-w``)
or says ``-f``; the variables a block exports and the folder it ``cd``s into carry over to the document's
next bash block, as in one terminal. ``python`` blocks run as scripts (``python -``), each on its own, as
pasted into a fresh interpreter. A block has ``BLOCK_TIMEOUT_S`` (180 s).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import unittest
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sybil import Document, Example, Region
from sybil.example import SybilFailure
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer
from sybil.parsers.markdown.skip import SkipParser

from astrospect.settings import PROJECT_ROOT

RUN_LANGUAGES = ("bash", "python")
SHELL_SPELLINGS = frozenset(
    {"sh", "shell", "console", "zsh", "shell-session", "shellsession", "bash-session"}
)
PYTHON_SPELLINGS = frozenset({"py", "py3", "python3", "pycon", "ipython", "pytb"})
OUTPUT_TITLE = "Output"
BLOCK_TIMEOUT_S = 180
# The whole info string of a fence (sybil's FencedCodeBlockLexer takes it all as the language).
INFO_STRING = re.compile(r"(?P<info>[^\n]*)$\n", re.MULTILINE)
TITLE = re.compile(r'title="(?P<title>[^"]*)"')
# At the start of a line, as sybil's skip parser reads it.
SKIP_DIRECTIVE = re.compile(
    r"^[ \t]*<!--+\s*skip:?\s*(?P<action>\w+)(?P<reason>.*?)\s*--+>", re.DOTALL | re.MULTILINE
)
# A measured value: a decimal, an exponent, or an integer of four digits or more (objids, timestamps). Shorter
# integers (status codes, exit codes, counts, versions) are compared as they are.
NUMBER = re.compile(
    r"(?<![A-Za-z_\d.])[-+]?(?:\d+\.\d*|\.\d+|\d+(?=[eE])|\d{4,})(?:[eE][-+]?\d+)?(?![A-Za-z_\d])"
)
MLFLOW_ID = re.compile(r"\b[0-9a-f]{32}\b")
ELLIPSIS = ("...", "\u2026")
# Commands that take minutes or run until stopped: a block with one must be skipped (with its reason).
LONG_COMMANDS = re.compile(
    r"^\s*(?:make\s+(?:run|test|integration|up|serve|mlflow-up|docs-serve|airflow|fuzz|bench\S*|learning-curve|"
    r"drift-study|synth-check)\b|docker\s+compose\s+up|docker-compose\s+up|astrospect\s+serve\b|mlflow\s+server\b|"
    r"bentoml\s+serve\b|airflow\s+standalone\b)",
    re.MULTILINE,
)


def documents(root: Path = PROJECT_ROOT) -> list[Path]:
    """The Markdown the tests hold to these rules: the README and everything under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


@dataclass(frozen=True)
class Fence:
    line: int  # of the opening fence, 1-based (sybil's example line)
    start: int  # character offsets in the document
    end: int
    info: str  # the whole info string: `bash`, `text title="Output"`, ...
    source: str

    @property
    def language(self) -> str:
        return self.info.split()[0].lstrip("{.").rstrip("}") if self.info.strip() else ""

    @property
    def is_run(self) -> bool:
        return self.language in RUN_LANGUAGES

    @property
    def is_output(self) -> bool:
        title = TITLE.search(self.info)
        return self.language == "text" and title is not None and title["title"] == OUTPUT_TITLE


@dataclass(frozen=True)
class RunBlock:
    """A block the tests run, and the output the document shows for it (None when it shows none)."""

    path: Path
    line: int
    language: str
    source: str
    expected: str | None


def fences(text: str, path: Path) -> list[Fence]:
    """Every fenced block of a Markdown text, in order."""
    document = Document(text, str(path))
    lexer = RawFencedCodeBlockLexer(info_pattern=INFO_STRING, mapping={"info": "info", "source": "source"})
    found = []
    for region in lexer(document):
        line = text.count("\n", 0, region.start) + 1
        found.append(
            Fence(line, region.start, region.end, region.lexemes["info"], str(region.lexemes["source"]))
        )
    return sorted(found, key=lambda fence: fence.start)


def _output_of(all_fences: list[Fence], index: int, text: str) -> str | None:
    if index + 1 < len(all_fences):
        following = all_fences[index + 1]
        if following.is_output and not text[all_fences[index].end : following.start].strip():
            return following.source
    return None


def run_blocks(path: Path) -> list[RunBlock]:
    """The bash and Python blocks of a document, each with the output it shows."""
    text = path.read_text()
    found = fences(text, path)
    return [
        RunBlock(path, fence.line, fence.language, fence.source, _output_of(found, i, text))
        for i, fence in enumerate(found)
        if fence.is_run
    ]


def block_problems(path: Path, root: Path = PROJECT_ROOT) -> list[str]:
    """Every break of the rules above in one document, each as ``file:line: what and what to do``."""
    text = path.read_text()
    name = path.relative_to(root) if path.is_relative_to(root) else path
    found = fences(text, path)
    problems = []
    for i, fence in enumerate(found):
        where = f"{name}:{fence.line}"
        if not fence.language:
            problems.append(
                f"{where}: a fenced block without a language: `bash` or `python` (run by the tests, or "
                'skipped with <!-- skip: next "reason" -->), `text` for output, diagrams and listings'
            )
        elif fence.language in SHELL_SPELLINGS:
            problems.append(
                f"{where}: ```{fence.language} is not run by the tests: write ```bash (or ```text)"
            )
        elif fence.language in PYTHON_SPELLINGS:
            problems.append(
                f"{where}: ```{fence.language} is not run by the tests: write ```python (or ```text)"
            )
        if fence.is_output and (i == 0 or not found[i - 1].is_run or _output_of(found, i - 1, text) is None):
            problems.append(
                f"{where}: an Output block must follow a bash or python block (blank lines between)"
            )
    skipped = _skipped_starts(text, found)
    for fence in found:
        long_command = LONG_COMMANDS.search(fence.source) if fence.is_run else None
        if long_command and fence.start not in skipped:
            problems.append(
                f"{name}:{fence.line}: `{long_command.group(0).strip()}` takes minutes or runs until stopped: "
                'precede the block with <!-- skip: next "why" -->'
            )
    open_skip = None
    for directive in _skip_directives(text, found):
        line = text.count("\n", 0, directive.start()) + 1
        where = f"{name}:{line}"
        action, reason = directive["action"], directive["reason"].strip()
        if action not in ("next", "start", "end"):
            problems.append(f"{where}: skip: {action}: the actions are next, start and end")
            continue
        if action == "end":
            if open_skip is None:
                problems.append(f"{where}: skip: end without a skip: start")
            open_skip = None
            continue
        if not _is_reason(reason):
            problems.append(
                f'{where}: skip: {action} needs its reason as a quoted string: skip: {action} "why"'
            )
        following = next((fence for fence in found if fence.start > directive.end()), None)
        if following is None or not following.is_run:
            problems.append(f"{where}: skip: {action} must be followed by a bash or python block")
        if action == "start":
            open_skip = where
    if open_skip is not None:
        problems.append(f"{open_skip}: skip: start without a skip: end")
    return problems


def _skip_directives(text: str, found: list[Fence]) -> list[re.Match[str]]:
    """The skip directives outside code blocks (a page may show one inside a fence, as an example)."""
    return [d for d in SKIP_DIRECTIVE.finditer(text) if not any(f.start <= d.start() < f.end for f in found)]


def _skipped_starts(text: str, found: list[Fence]) -> set[int]:
    """Where the run blocks a skip directive covers start (``next``: the first after it; start ... end)."""
    covered: set[int] = set()
    start_at: int | None = None
    for directive in _skip_directives(text, found):
        action = directive["action"]
        if action == "next":
            following = next(
                (fence for fence in found if fence.is_run and fence.start > directive.end()), None
            )
            if following is not None:
                covered.add(following.start)
        elif action == "start":
            start_at = directive.end()
        elif action == "end" and start_at is not None:
            covered |= {f.start for f in found if f.is_run and start_at < f.start < directive.start()}
            start_at = None
    if start_at is not None:
        covered |= {f.start for f in found if f.is_run and f.start > start_at}
    return covered


def _is_reason(text: str) -> bool:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return False
    return isinstance(value, str) and bool(value.strip())


# ---- comparing output ----


def _normalised(text: str) -> str:
    text = MLFLOW_ID.sub("<id>", text)
    text = NUMBER.sub("0", text)
    text = re.sub(r"[\u2500-\u257f]+", "\u2500", text)  # table rules are as wide as their columns
    return re.sub(r"\s+", "", text)


def output_matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` is what the document shows as ``expected`` (rules in the module docstring)."""
    expected_text = expected
    for ellipsis in ELLIPSIS[1:]:
        expected_text = expected_text.replace(ellipsis, ELLIPSIS[0])
    pieces = [re.escape(_normalised(piece)) for piece in expected_text.split(ELLIPSIS[0])]
    return re.fullmatch(".*?".join(pieces), _normalised(actual), re.DOTALL) is not None


# ---- running ----


class Night(Protocol):
    """Where blocks run: tests/support/docs_night.py's ``DocsNight`` (a plain folder in the unit tests)."""

    @property
    def env(self) -> dict[str, str]: ...

    def rewrite(self, source: str) -> str: ...

    def workdir(self, name: str) -> Path: ...


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str
    source: str  # what ran, after the address substitution


# curl answers an HTTP error status with exit 22 (--fail-with-body, the answer still printed), where a reader
# would see the error; a command that asks for the status code (-w) or already says --fail/-f checks it itself.
CURL_FAILS_ON_ERROR = r"""curl() {
  local arg
  for arg in "$@"; do
    case "$arg" in -w|--write-out|--fail*|-f*|-[!-]*f*) command curl "$@"; return;; esac
  done
  command curl --fail-with-body "$@"
}
"""
BASH_PROLOGUE = (
    'set -euo pipefail\nif [ -f "$DOCS_SHELL_STATE" ]; then source "$DOCS_SHELL_STATE"; fi\n'
    + CURL_FAILS_ON_ERROR
)
# On exit, the block's exported variables (less the read-only ones bash keeps) and its folder, for the next.
BASH_SAVE_STATE = (
    'trap \'{ export -p | grep -v "^declare -[a-zA-Z]*r"; printf "cd %q\\n" "$PWD"; } > "$DOCS_SHELL_STATE"\' '
    "EXIT\n"
)


def run_block(block: RunBlock, night: Night, workdir: Path) -> Ran:
    """Run one block in ``workdir`` with the night's environment (bash: the document's shell state)."""
    source = night.rewrite(block.source)
    env = dict(night.env, DOCS_SHELL_STATE=str(workdir / ".docs-shell-state"))
    if block.language == "bash":
        command = ["bash", "-c", BASH_PROLOGUE + BASH_SAVE_STATE + source]
        stdin = None
    else:
        command = [sys.executable, "-"]
        stdin = source
    done = subprocess.run(
        command, cwd=workdir, env=env, input=stdin, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
    )
    return Ran(done.returncode, done.stdout, done.stderr, source)


def failure(block: RunBlock, ran: Ran) -> str | None:
    """What is wrong with a block's run (None when nothing is)."""
    if ran.returncode != 0:
        return (
            f"exited with {ran.returncode}\n--- ran:\n{ran.source}\n--- stdout:\n{_tail(ran.stdout)}\n"
            f"--- stderr:\n{_tail(ran.stderr)}"
        )
    if block.expected is not None and not output_matches(block.expected, ran.stdout):
        return (
            f"printed other than its Output block\n--- expected:\n{block.expected}\n--- printed:\n"
            f"{_tail(ran.stdout)}\n--- stderr:\n{_tail(ran.stderr)}"
        )
    return None


def _tail(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


# ---- sybil: the document, its skips, evaluated in order ----


class RunBlockParser:
    """A sybil parser: one region per bash or python block, evaluated by ``evaluate``."""

    def __init__(self, evaluate: Callable[[RunBlock], str | None]) -> None:
        self.evaluate = evaluate

    def __call__(self, document: Document) -> Iterable[Region]:
        path = Path(document.path)
        by_line = {block.line: block for block in run_blocks(path)}
        for fence in fences(document.text, path):
            if fence.is_run:
                block = by_line[fence.line]
                yield Region(fence.start, fence.end, block, self._evaluator)

    def _evaluator(self, example: Example) -> str | None:
        return self.evaluate(example.parsed)


class SkipOutsideFences(SkipParser):
    """sybil's skip parser, less the directives a page shows inside a code block."""

    def __call__(self, document: Document) -> Iterable[Region]:
        found = fences(document.text, Path(document.path))
        for region in super().__call__(document):
            if not any(fence.start <= region.start < fence.end for fence in found):
                yield region


class DocumentRun:
    """One document's examples (its blocks and skip directives) evaluated once each, in document order.

    A test item asks for its block's outcome; the blocks before it are evaluated first (their variables and
    files may be what it uses), whichever item asks first. The night is asked for only when a block runs.
    """

    def __init__(self, path: Path, night: Callable[[], Night]) -> None:
        self.path = path
        self.night = night
        self.document = Document.parse(str(path), RunBlockParser(self._evaluate), SkipOutsideFences())
        self.examples = list(self.document.examples())
        self.outcomes: dict[int, BaseException | None] = {}
        self.evaluated = 0

    def _evaluate(self, block: RunBlock) -> str | None:
        night = self.night()
        name = (
            self.path.relative_to(PROJECT_ROOT) if self.path.is_relative_to(PROJECT_ROOT) else self.path.name
        )
        ran = run_block(block, night, night.workdir(str(name)))
        return failure(block, ran)

    def outcome(self, line: int) -> BaseException | None:
        """The block at ``line``: None if it passed, else what it raised (a skip, a failure)."""
        while line not in self.outcomes:
            if self.evaluated >= len(self.examples):
                raise LookupError(f"{self.path}:{line} is not a bash or python block")
            example = self.examples[self.evaluated]
            self.evaluated += 1
            try:
                example.evaluate()
                result: BaseException | None = None
            except (SybilFailure, unittest.SkipTest, subprocess.TimeoutExpired) as raised:  # for its own item
                result = raised
            if isinstance(example.parsed, RunBlock):
                self.outcomes[example.line] = result
            elif result is not None:  # a malformed skip directive: the blocks after it cannot be trusted
                raise result
        return self.outcomes[line]


def run_block_params(paths: Iterable[Path], root: Path = PROJECT_ROOT) -> Iterator[tuple[Path, int, str]]:
    """(document, line, test id) of every bash and python block of ``paths``."""
    for path in paths:
        if path.exists():
            for block in run_blocks(path):
                yield path, block.line, f"{path.relative_to(root)}:{block.line}"
