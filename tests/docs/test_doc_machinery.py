"""The docs tests' own machinery (tests/support/docs_blocks.py) on small Markdown files written here: that a
break of the rules is found, that output is compared as documented, that a failing or unmarked block fails
and a skipped one is skipped with its reason. Unit: bash and python on plain folders, no servers."""

from __future__ import annotations

import functools
import http.server
import os
import textwrap
import threading
import unittest
from pathlib import Path

import pytest
from sybil.example import SybilFailure

from tests.support.docs_blocks import DocumentRun, block_problems, output_matches, run_blocks
from tests.support.docs_night import rewrite_addresses

pytestmark = pytest.mark.unit

FENCE = "```"


def markdown(folder: Path, text: str) -> Path:
    path = folder / "page.md"
    path.write_text(textwrap.dedent(text).replace("~~~", FENCE))
    return path


class PlainFolder:
    """Blocks run in a folder with this process's environment; addresses are left as they are."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = dict(os.environ)

    def rewrite(self, source: str) -> str:
        return source

    def workdir(self, name: str) -> Path:
        return self.folder


def outcomes(path: Path) -> list[BaseException | None]:
    run = DocumentRun(path, lambda: PlainFolder(path.parent))
    return [run.outcome(block.line) for block in run_blocks(path)]


def test_a_clean_page_has_no_problems(tmp_path: Path) -> None:
    page = markdown(
        tmp_path,
        """\
        # Page
        ~~~bash
        echo hi
        ~~~

        ~~~text title="Output"
        hi
        ~~~
        <!-- skip: next "starts a server that runs until stopped" -->
        ~~~bash
        make serve
        ~~~
        ~~~text
        a diagram
        ~~~
        <!-- skip: start "a whole night: 12 minutes" -->
        ~~~bash
        make run
        ~~~
        - in a list:
          ~~~python
          print(1)
          ~~~
        <!-- skip: end -->
        A page may show the convention itself:
        ~~~markdown
        <!-- skip: next "why" -->
        ~~~
        ~~~bash
        echo "run, not skipped"
        ~~~
        """,
    )
    assert block_problems(page) == []
    assert outcomes(page)[-1] is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("~~~\nls\n~~~\n", "page.md:1: a fenced block without a language"),
        ("text\n\n~~~console\n$ ls\n~~~\n", "page.md:3: ```console is not run by the tests"),
        ("~~~sh\nls\n~~~\n", "```sh is not run by the tests: write ```bash"),
        ("~~~pycon\n>>> 1\n~~~\n", "```pycon is not run by the tests: write ```python"),
        (
            "<!-- skip: next -->\n~~~bash\nls\n~~~\n",
            "page.md:1: skip: next needs its reason as a quoted string",
        ),
        ("<!-- skip: next '' -->\n~~~bash\nls\n~~~\n", "skip: next needs its reason"),
        ("<!-- skip: next because -->\n~~~bash\nls\n~~~\n", "skip: next needs its reason"),
        ('<!-- skip: next "why" -->\n~~~text\nls\n~~~\n', "skip: next must be followed by a bash or python"),
        ('<!-- skip: start "why" -->\n~~~bash\nls\n~~~\n', "skip: start without a skip: end"),
        ("<!-- skip: end -->\n", "skip: end without a skip: start"),
        ('~~~text title="Output"\nhi\n~~~\n', "an Output block must follow a bash or python block"),
        ("~~~bash\nmake setup\nmake run\n~~~\n", "page.md:1: `make run` takes minutes or runs until stopped"),
        ("~~~bash\ndocker compose up -d\n~~~\n", "`docker compose up` takes minutes"),
        (
            '<!-- skip: next "x" -->\n~~~bash\nls\n~~~\n~~~bash\nmake serve\n~~~\n',
            "page.md:5: `make serve` takes",
        ),
        ('~~~bash\necho hi\n~~~\nprose\n~~~text title="Output"\nhi\n~~~\n', "an Output block must follow"),
    ],
)
def test_a_break_of_the_rules_is_named_with_its_line(tmp_path: Path, text: str, problem: str) -> None:
    problems = block_problems(markdown(tmp_path, text))
    assert any(problem in found for found in problems), problems


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        ('{"redshift": [0.31, 0.12]}', '{"redshift":[0.2871,0.0954]}', True),  # numbers are placeholders
        (
            '{\n  "model": "astrospect-photoz",\n  "version": "3",\n  "sigma_mad": 0.0153\n}',
            '{"model":"astrospect-photoz","version":"3","sigma_mad":0.01871}',
            True,
        ),
        (
            '{"model": "astrospect-photoz", "version": "3"}',
            '{"model":"astrospect-photoz","version":"1"}',
            False,
        ),
        ("200", "503", False),  # a status code is not a measurement
        (
            "objid 1237660000000000000 at 2026-12-06T20:01:02",
            "objid 1237650000000001234 at 2027-01-31T23:59:59",
            False,
        ),
        ("objid 1237660000000000000 at ...", "objid 1237650000000001234 at 2027-01-31T23:59:59", True),
        ("1e-4 and -0.5", "2.5e-07 and +0.25", True),
        ('{"redshift": [0.31, 0.12]}', '{"redshfit":[0.2871,0.0954]}', False),  # a key is not
        ('{"redshift": [0.31, 0.12]}', '{"redshift":[0.2871]}', False),  # nor how many numbers there are
        ('{"redshift": [0.31, ...]}', '{"redshift":[0.2871,0.0954,0.5]}', True),
        ("sim-s42-0.h5", "sim-s1-0000.h5", False),  # digits inside a name are part of it
        ("run 3f2a9c0d1e2b4a5f8c7d6e5f4a3b2c1d done", "run 0123456789abcdef0123456789abcdef done", True),
        ("first\n...\nlast", "first\nsecond\nthird\nlast", True),
        ("first\n…\nlast", "first\nlast", True),
        ("hi", "hi there", False),
        ("━━━━━━\n sigma_MAD \n━━━", "━━━━━━━━━━━━\nsigma_MAD\n━━━━━━━━", True),
    ],
)
def test_output_is_compared_by_shape(expected: str, actual: str, matches: bool) -> None:
    assert output_matches(expected, actual) is matches


def test_blocks_run_in_order_sharing_a_shell(tmp_path: Path) -> None:
    page = markdown(
        tmp_path,
        """\
        ~~~bash
        export GREETING=hello
        mkdir -p inner && cd inner && touch made-here
        ~~~
        ~~~bash
        echo "$GREETING from $(basename "$PWD")"
        ~~~

        ~~~text title="Output"
        hello from inner
        ~~~
        ~~~python
        import pathlib
        print(sorted(p.name for p in pathlib.Path("inner").iterdir()))
        ~~~

        ~~~text title="Output"
        ['made-here']
        ~~~
        """,
    )
    assert outcomes(page) == [None, None, None]


def test_a_failing_block_fails_with_what_it_printed(tmp_path: Path) -> None:
    page = markdown(tmp_path, "~~~bash\necho to-stderr >&2\nfalse\necho never\n~~~\n")
    (outcome,) = outcomes(page)
    assert isinstance(outcome, SybilFailure)
    assert "exited with 1" in str(outcome) and "to-stderr" in str(outcome)


def test_a_failing_command_in_a_pipe_fails_the_block(tmp_path: Path) -> None:
    page = markdown(tmp_path, "~~~bash\ncat no-such-file | wc -l\n~~~\n")
    (outcome,) = outcomes(page)
    assert isinstance(outcome, SybilFailure) and "no-such-file" in str(outcome)


def test_other_output_than_shown_fails(tmp_path: Path) -> None:
    page = markdown(tmp_path, '~~~python\nprint("bye")\n~~~\n\n~~~text title="Output"\nhi\n~~~\n')
    (outcome,) = outcomes(page)
    assert isinstance(outcome, SybilFailure) and "printed other than its Output block" in str(outcome)


def test_a_skipped_block_is_skipped_with_its_reason_and_not_run(tmp_path: Path) -> None:
    page = markdown(
        tmp_path,
        '<!-- skip: next "runs until stopped" -->\n~~~bash\ntouch ran\n~~~\n~~~bash\ntest ! -e ran\n~~~\n',
    )
    skipped, after = outcomes(page)
    assert isinstance(skipped, unittest.SkipTest) and str(skipped) == "runs until stopped"
    assert after is None


def test_the_docs_addresses_become_the_nights() -> None:
    source = "curl localhost:3000/metadata 127.0.0.1:3000/x; export MLFLOW_TRACKING_URI=http://127.0.0.1:5000 :30001"
    assert rewrite_addresses(source, "http://127.0.0.1:41234", "http://127.0.0.1:40001") == (
        "curl 127.0.0.1:41234/metadata 127.0.0.1:41234/x; export MLFLOW_TRACKING_URI=http://127.0.0.1:40001 :30001"
    )


def test_curl_fails_on_an_http_error_unless_it_asks_for_the_status(tmp_path: Path) -> None:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # 404 for GET, 501 for POST
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        page = markdown(
            tmp_path,
            f"""\
            ~~~bash
            curl -s {url}/no-such-page
            ~~~
            ~~~bash
            curl -s -o /dev/null -w '%{{http_code}}\\n' {url}/no-such-page
            ~~~

            ~~~text title="Output"
            404
            ~~~
            ~~~bash
            curl -s -X POST {url}/page.md -d '{{}}' -H 'Content-Type: application/json' || [ $? -eq 22 ]
            ~~~
            ~~~bash
            curl -sf {url}/no-such-page || [ $? -eq 22 ]
            curl -f -s {url}/no-such-page || [ $? -eq 22 ]
            ~~~
            """,
        )
        not_found, status, post, fail_flag = outcomes(page)
    finally:
        server.shutdown()
    assert isinstance(not_found, SybilFailure) and "exited with 22" in str(not_found)
    assert status is None and post is None and fail_flag is None
