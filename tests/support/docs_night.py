"""The small night the documentation's shell and Python blocks run against.

A folder that looks like a clone after ``make run``: every top-level entry of the repository (Makefile,
astrospect/, .venv, docs/, ...) linked into it, except ``data/``, which is this night's ASTROSPECT_HOME. That
home holds a landing zone with one shard named and sized as ``make run``'s first one (``sim-s1-0000.h5``,
1000 cutouts with labels and E(B-V), from the serving tests' ``galaxy_shard``: instant, where ``astrospect
synth --n 200`` alone takes 40 s on 2 cores; it has no ``ra``/``dec``/``truth``), a real MLflow server on loopback with a registered champion, and a real ``bentoml serve``
(``astrospect serve``) of it: the serving tests' ``served_champion``, with the PDF champion so that every
route the docs show answers, ``predict_file`` with ``format=qp`` included.

Blocks run in a working folder of their own per document (a subfolder of the night's root, linked the same
way), so relative paths such as ``data/landing/sim-s1-0000.h5`` mean what they mean in a clone. Each working
folder also holds stand-ins for "your own files", in the layouts and names the import guide's commands use
(``your_own_files``): ``cube.npz`` (Pasquet et al. 2019), ``cubes.h5`` (a cube collection with the shard's
dataset names), ``cutouts/`` with ``catalogue.csv`` (five FITS files per galaxy, ``{objid}-{band}.fits``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from astrospect.data.shards import read_shard
from astrospect.settings import PROJECT_ROOT
from harness.import_files import Galaxies, write_fits_folder, write_pasquet_npz
from tests.support.serving_stack import Stack, galaxy_shard, served_champion

LANDING_SHARD = "sim-s1-0000.h5"  # the name of make run's first shard (DEMO_SEED 1)
LANDING_CUTOUTS = 1000  # make run's shard size, so counts the docs show hold
YOUR_OWN_CUTOUTS = 100  # per stand-in file
YOUR_OWN_FILES = ("cube.npz", "cubes.h5", "cutouts", "catalogue.csv")
# Top-level entries of the repository a working folder does not link: the night's own home instead of the
# developer's data/, and what a command must not write into the checkout through a link.
NOT_LINKED = frozenset({".git", "data", "site", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"})
# The ports the docs use (make serve's 3000, make mlflow-up's 5000), on either loopback name.
SERVING_ADDRESS = re.compile(r"\b(?:127\.0\.0\.1|localhost):3000\b")
MLFLOW_ADDRESS = re.compile(r"\b(?:127\.0\.0\.1|localhost):5000\b")


@dataclass(frozen=True)
class DocsNight:
    root: Path  # the clone-like folder
    home: Path  # ASTROSPECT_HOME, root/data
    env: dict[str, str]  # what a block's shell has: the stack's environment, this environment's bin first
    stack: Stack

    def rewrite(self, source: str) -> str:
        """A block's text with the docs' addresses replaced by this night's servers'."""
        return rewrite_addresses(source, self.stack.url, self.stack.registry)

    def workdir(self, name: str) -> Path:
        """A clone-like working folder for one document's blocks (created once), with the stand-in files."""
        folder = self.root / "work" / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        if not folder.exists():
            folder.mkdir(parents=True)
            link_checkout(folder, self.home)
            for stand_in in YOUR_OWN_FILES:
                (folder / stand_in).symlink_to(self.root / "your-own" / stand_in)
        return folder


def rewrite_addresses(source: str, serving_url: str, mlflow_url: str) -> str:
    """``source`` with the docs' serving and MLflow addresses replaced by ``serving_url``'s and ``mlflow_url``'s."""
    serving = serving_url.removeprefix("http://")
    mlflow = mlflow_url.removeprefix("http://")
    return MLFLOW_ADDRESS.sub(mlflow, SERVING_ADDRESS.sub(serving, source))


def link_checkout(folder: Path, home: Path) -> None:
    """Link the repository's top-level entries into ``folder``, and ``folder/data`` to ``home``."""
    for entry in PROJECT_ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (folder / entry.name).symlink_to(entry)
    (folder / "data").symlink_to(home)


def your_own_files(folder: Path, shard: Path, n: int = YOUR_OWN_CUTOUTS) -> None:
    """The stand-ins of ``YOUR_OWN_FILES`` in ``folder``, from the first ``n`` cutouts of ``shard`` under new
    objids (one range per file, none the landing zone's)."""
    cutouts = read_shard(shard)
    redshift, redshift_err, ebv = cutouts.redshift, cutouts.redshift_err, cutouts.ebv
    assert redshift is not None and redshift_err is not None and ebv is not None, (
        f"{shard}: labels and E(B-V)"
    )
    rng = np.random.default_rng(0)

    def galaxies(offset: int) -> Galaxies:
        return Galaxies(
            cutouts.images[:n],
            cutouts.objid[:n] + offset,
            redshift[:n],
            redshift_err[:n],
            rng.uniform(120.0, 240.0, n),
            rng.uniform(0.0, 60.0, n),
            ebv[:n],
        )

    folder.mkdir(parents=True)
    write_pasquet_npz(folder / "cube.npz", galaxies(2_000_000), compressed=False)
    cube = galaxies(3_000_000)
    with h5py.File(folder / "cubes.h5", "w") as handle:  # the shard's own dataset names, band-first
        handle["images"] = np.transpose(cube.images, (0, 3, 1, 2))
        handle["objid"], handle["specz_redshift"] = cube.objid, cube.z
        handle["specz_redshift_err"], handle["ebv"] = cube.z_err, cube.ebv
    catalogue = write_fits_folder(folder / "cutouts", galaxies(4_000_000), per_band=True)
    catalogue.rename(folder / "catalogue.csv")


@contextmanager
def docs_night(root: Path) -> Iterator[DocsNight]:
    """Build the night under ``root`` and serve it; everything stops on exit."""
    home = root / "data"
    (home / "landing").mkdir(parents=True)
    shard = galaxy_shard(home / "landing" / LANDING_SHARD, n=LANDING_CUTOUTS, seed=1, with_ebv=True)
    your_own_files(root / "your-own", shard)
    with served_champion(home, pdf=True) as stack:
        env = dict(stack.env)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["COLUMNS"] = "100"  # a terminal of the width the report is designed for
        env.pop("VIRTUAL_ENV", None)
        yield DocsNight(root, home, env, stack)
