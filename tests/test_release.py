"""Release files: CITATION.cff is valid CFF 1.2.0 and cites what the system builds on; LICENSE is the declared one."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
# CFF 1.2.0's required keys: the file's, and each reference's (https://github.com/citation-file-format/citation-file-format).
CFF_REQUIRED = ("cff-version", "message", "title", "authors")
REFERENCE_REQUIRED = ("type", "title", "authors")


def _citation() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_citation_has_the_required_cff_keys() -> None:
    citation = _citation()
    missing = [key for key in CFF_REQUIRED if key not in citation]
    assert missing == []
    assert citation["cff-version"] == "1.2.0"
    assert citation["authors"] and all(isinstance(author, dict) for author in citation["authors"])
    for reference in citation["references"]:
        assert [key for key in REFERENCE_REQUIRED if key not in reference] == [], reference.get("title")
        assert reference["authors"], reference["title"]


def test_citation_cites_the_seed_cnn_galsim_kcorrect_and_qp() -> None:
    references = _citation()["references"]
    cited = {
        (ref["authors"][0].get("family-names") or ref["authors"][0].get("name"), ref.get("year"))
        for ref in references
    }
    assert {("Pasquet", 2019), ("Rowe", 2015), ("Blanton", 2007), ("Malz", 2018)} <= cited
    software = [ref for ref in references if ref["type"] == "software"]
    assert [ref["repository-code"] for ref in software] == ["https://github.com/LSSTDESC/qp"]
    seed = next(ref for ref in references if ref["authors"][0].get("family-names") == "Pasquet")
    assert (seed["journal"], seed["volume"], seed["start"]) == ("Astronomy & Astrophysics", 621, "A26")


def test_citation_license_and_the_license_file_match_pyproject() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert _citation()["license"] == declared == "BSD-3-Clause"
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("BSD 3-Clause License")
    assert "Copyright (c) 2026, the AstroSpect developers" in license_text


def test_changelog_has_an_unreleased_section_and_the_first_release() -> None:
    headings = [line for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("## ")]
    assert headings[:2] == ["## [Unreleased]", "## [0.1.0] - 2026-12-06"]
