"""MkDocs hook (``hooks:`` in mkdocs.yml): the generated parts of the site, made at build time.

Nothing generated is committed. A page names what it wants with a marker:

- ``<!-- cli-reference -->``: the ``astrospect`` CLI, from the typer app (:mod:`harness.docs.cli_reference`);
- ``<!-- settings-reference -->``: every environment variable, from the code (:mod:`harness.docs.settings_reference`);
- ``<!-- dag-diagram -->``: the nightly DAG as a Mermaid flowchart, one training task per challenger of the
  registry's default set, each on its queue (``astrospect.models.registry``);
- ``<!-- make-targets -->``: every make target with its ``##`` comment, from the Makefile;
- ``<!-- openapi-reference -->``: the HTTP API, from ``docs/reference/openapi.json`` (:mod:`harness.docs.openapi`);
- ``<!-- results: NAME -->``, ``<!-- figure: NAME KEY -->``, ``<!-- measured: NAME -->``: measured figures,
  from ``docs/results/NAME.json`` (:mod:`harness.docs.render`);
- ``<!-- screenshot: NAME | caption -->``: ``docs/images/NAME.png`` (``make screenshots`` takes them); until
  it exists, a line saying how to take it. :func:`referenced_images` lists every image the README and the
  pages refer to, for the test that checks each one exists.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.docs import render

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SCREENSHOT_MARKER = re.compile(r"<!--\s*screenshot:\s*(?P<name>[\w.-]+)\s*\|\s*(?P<caption>[^>]*?)\s*-->")
MAKE_TARGET = re.compile(r"^(?P<target>[a-zA-Z_-]+):.*?## (?P<help>.*)$", re.MULTILINE)
MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\((?P<target>[^)\s]+)")


def _screenshot(match: re.Match[str], page_path: str) -> str:
    image = DOCS / "images" / f"{match['name']}.png"
    depth = len(Path(page_path).parts) - 1
    relative = "../" * depth + f"images/{match['name']}.png"
    if image.is_file():
        return f"![{match['caption']}]({relative})\n\n*{match['caption']}*"
    return f"*Screenshot `{match['name']}.png` ({match['caption']}): not taken yet; `make screenshots` takes it.*"


def make_targets_markdown(makefile: Path = ROOT / "Makefile") -> str:
    rows = ["| target | does |", "| --- | --- |"]
    for match in MAKE_TARGET.finditer(makefile.read_text()):
        rows.append(f"| `make {match['target']}` | {match['help'].replace('|', chr(92) + '|')} |")
    return "\n".join(rows)


def dag_mermaid() -> str:
    """The nightly DAG's tasks in order; the training tasks from the registry, as dags/ generates them."""
    from astrospect.models import registry

    lines = [
        "```mermaid",
        "flowchart LR",
        "  ingest --> validate --> snapshot --> drift --> anything_to_train{anything_to_train?}",
        "  anything_to_train -->|yes| start_session",
    ]
    for challenger in registry.for_session():
        queue = "default queue" if challenger.baseline else "gpu queue"
        node = "train_" + challenger.name.replace("-", "_")
        lines.append(
            f'  start_session --> {node}["train_{challenger.name}<br><small>{queue}</small>"] --> promote'
        )
    lines += ["  promote --> deploy", "```"]
    return "\n".join(lines)


def expand_page(markdown: str, page_path: str) -> str:
    """Every marker of one page (``page_path``: relative to docs/) replaced by what it names."""
    if "<!-- cli-reference -->" in markdown:
        from harness.docs.cli_reference import cli_markdown

        markdown = markdown.replace("<!-- cli-reference -->", cli_markdown())
    if "<!-- settings-reference -->" in markdown:
        from harness.docs.settings_reference import settings_markdown

        markdown = markdown.replace("<!-- settings-reference -->", settings_markdown())
    if "<!-- openapi-reference -->" in markdown:
        from harness.docs.openapi import OPENAPI_PATH, openapi_markdown

        markdown = markdown.replace(
            "<!-- openapi-reference -->", openapi_markdown(json.loads(OPENAPI_PATH.read_text()))
        )
    if "<!-- dag-diagram -->" in markdown:
        markdown = markdown.replace("<!-- dag-diagram -->", dag_mermaid())
    if "<!-- make-targets -->" in markdown:
        markdown = markdown.replace("<!-- make-targets -->", make_targets_markdown())
    markdown = SCREENSHOT_MARKER.sub(lambda m: _screenshot(m, page_path), markdown)
    return render.expand(markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return expand_page(markdown, page.file.src_path)


def referenced_images() -> list[Path]:
    """Every image the README and the docs pages refer to (Markdown images and screenshot markers)."""
    found: list[Path] = []
    readme = ROOT / "README.md"
    for match in MARKDOWN_IMAGE.finditer(readme.read_text()):
        if "://" not in match["target"]:
            found.append((ROOT / match["target"]).resolve())
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text()
        found += [DOCS / "images" / f"{m['name']}.png" for m in SCREENSHOT_MARKER.finditer(text)]
        found += [
            (page.parent / m["target"]).resolve()
            for m in MARKDOWN_IMAGE.finditer(text)
            if "://" not in m["target"]
        ]
    return sorted(set(found))
