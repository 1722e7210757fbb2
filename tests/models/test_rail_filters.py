"""The SDSS filter curves shipped for BPZ are kcorrect's, re-derived here, and their provenance says so."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest

from astrospect.models.rail.filters import (
    FILTER_DIR,
    FILTER_NAMES,
    KCORRECT_RESPONSES,
    kcorrect_curve,
    write_filters,
)

pytestmark = pytest.mark.unit


def test_the_shipped_curves_are_rederived_from_kcorrect(tmp_path: Path) -> None:
    written = write_filters(tmp_path)
    assert [path.name for path in written] == [f"{name}.res" for name in FILTER_NAMES]
    for path in written:
        assert (FILTER_DIR / path.name).read_text() == path.read_text(), (
            f"{path.name} differs from kcorrect's"
        )


def test_the_curves_are_in_bpz_format_and_in_order_of_wavelength() -> None:
    centres = []
    for name, response in zip(FILTER_NAMES, KCORRECT_RESPONSES, strict=True):
        table = np.loadtxt(FILTER_DIR / f"{name}.res")
        assert table.shape[1] == 2 and np.all(np.diff(table[:, 0]) > 0)  # BPZ needs ascending wavelengths
        wave, curve = kcorrect_curve(response)
        np.testing.assert_allclose(table[:, 0], wave, atol=0.05)
        np.testing.assert_allclose(table[:, 1], curve, rtol=1e-5, atol=1e-9)
        centres.append(np.sum(table[:, 0] * table[:, 1]) / np.sum(table[:, 1]))
    # ugriz: about 3550, 4680, 6170, 7480 and 8930 Angstrom
    np.testing.assert_allclose(centres, [3550, 4680, 6170, 7480, 8930], rtol=0.03)


def test_the_provenance_names_the_installed_kcorrect_and_the_command() -> None:
    provenance = (FILTER_DIR / "PROVENANCE.md").read_text()
    assert f"kcorrect {importlib.metadata.version('kcorrect')}" in provenance
    assert "python -m astrospect.models.rail.filters astrospect/models/rail/filters" in provenance
    for response in KCORRECT_RESPONSES:
        assert f"{response}.dat" in provenance
