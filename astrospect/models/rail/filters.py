"""SDSS ugriz filter curves for BPZ, from the kcorrect responses the simulator projects its spectra through.

desc-bpz ships LSST (and DES, HSC, Euclid...) curves but not SDSS's. The curves shipped in ``filters/``
(``SDSS_<band>.res``: wavelength in Angstrom, response per photon, BPZ's two-column format) are kcorrect's
``sdss_<band>0.dat`` (the SDSS 2.5 m at airmass 1.3, the curves the simulator uses: astrospect.simulate.spectra),
written by ``python -m astrospect.models.rail.filters astrospect/models/rail/filters``; ``filters/PROVENANCE.md``
names the source and its version, and a test re-derives them.

BPZ also needs a data folder holding SED/, FILTER/ and AB/ (the templates' fluxes through each filter on a
redshift grid, which BPZ computes once and caches): :func:`bpz_data_dir` assembles one.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from astrospect.settings import BANDS

FILTER_DIR = Path(__file__).with_name("filters")
FILTER_NAMES: tuple[str, ...] = tuple(f"SDSS_{band}" for band in BANDS)
KCORRECT_RESPONSES: tuple[str, ...] = tuple(f"sdss_{band}0" for band in BANDS)


def kcorrect_curve(response: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Wavelength (Angstrom) and response of one of kcorrect's bandpasses, sorted by wavelength."""
    import kcorrect.response

    responses = kcorrect.response.ResponseDict()
    responses.load_response(response)
    curve = responses[response]
    return np.asarray(curve.wave, dtype=np.float64), np.asarray(curve.response, dtype=np.float64)


def filter_text(wave: npt.NDArray[np.float64], response: npt.NDArray[np.float64]) -> str:
    """A BPZ ``.res`` file's text: one ``wavelength response`` line per sample."""
    return "".join(f"{w:.1f} {r:.6g}\n" for w, r in zip(wave, response, strict=True))


def write_filters(directory: Path) -> list[Path]:
    """Write ``SDSS_<band>.res`` for ugriz into ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, response in zip(FILTER_NAMES, KCORRECT_RESPONSES, strict=True):
        path = directory / f"{name}.res"
        path.write_text(filter_text(*kcorrect_curve(response)))
        written.append(path)
    return written


def installed_bpz_data() -> Path:
    """The SED (and other) data RAIL's BPZ installs: rail/examples_data/estimation_data/data."""
    from rail.utils.path_utils import RAILDIR

    return Path(RAILDIR) / "rail" / "examples_data" / "estimation_data" / "data"


def bpz_data_dir(root: Path) -> Path:
    """A BPZ data folder at ``root``: SED/ linked to RAIL's installed templates, FILTER/ to the SDSS curves
    shipped here, AB/ a folder of its own (BPZ writes the templates' AB fluxes there on first use).
    Points desc-bpz's module-level paths at it too: they are read from BPZDATAPATH when first imported."""
    from desc_bpz import paths

    root.mkdir(parents=True, exist_ok=True)
    for name, target in (("SED", installed_bpz_data() / "SED"), ("FILTER", FILTER_DIR)):
        link = root / name
        if link.is_symlink() and Path(os.readlink(link)) != target:
            link.unlink()
        if not link.exists():
            link.symlink_to(target, target_is_directory=True)
    (root / "AB").mkdir(exist_ok=True)
    paths.set_data_dir(str(root))
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="where to write SDSS_<band>.res")
    for path in write_filters(parser.parse_args(argv).directory):
        print(path)


if __name__ == "__main__":
    main()
