"""The docs site and what the README shows: the site builds with ``mkdocs build --strict`` (what ``make docs``
runs, so ``make test`` builds it strictly in CI), every image the README and the pages refer to is in the
repository, and the README's measured figures are the results files' (harness/docs/readme.py).

Unit: no server and no data; the build is a few CPU seconds of text (the generated CLI, settings and HTTP
references included), into a temporary folder, so ``make test-fast`` runs it too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from astrospect.settings import PROJECT_ROOT
from harness.docs.hooks import referenced_images
from harness.docs.readme import readme_in_sync
from tests.support.docs_blocks import documents

pytestmark = pytest.mark.unit


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, f"mkdocs build --strict failed:\n{built.stderr[-6000:]}"
    assert (site / "index.html").is_file() and (site / "tutorial" / "first-night" / "index.html").is_file()


# HTML images (a README sizes a picture with <img width=...>), which harness/docs/hooks.py's Markdown scan
# does not read.
HTML_IMAGE = re.compile(r"<img\s[^>]*src=[\"'](?P<target>[^\"']+)[\"']", re.IGNORECASE)


def html_images(pages: list[Path]) -> list[Path]:
    return [
        (page.parent / match["target"]).resolve()
        for page in pages
        for match in HTML_IMAGE.finditer(page.read_text())
        if "://" not in match["target"]
    ]


def test_every_referenced_image_is_in_the_repository() -> None:
    images = sorted({*referenced_images(), *html_images(documents())})
    shown = [image for image in images if image.is_relative_to(PROJECT_ROOT / "docs" / "images")]
    assert shown, "the README and the docs refer to no image under docs/images (the README shows one)"
    missing = [str(image.relative_to(PROJECT_ROOT)) for image in images if not image.is_file()]
    assert not missing, "referenced but not in the repository (make screenshots takes them): " + ", ".join(
        missing
    )


def test_the_readme_figures_are_the_results_files() -> None:
    assert readme_in_sync(), "README.md's generated block is stale: run `make readme`"


def test_html_images_are_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        '<p><img width="600" src="images/a.png" alt="a"></p> <IMG SRC=\'b.png\'> <img src="https://x/c.png">'
    )
    assert html_images([page]) == [tmp_path / "images" / "a.png", tmp_path / "b.png"]
